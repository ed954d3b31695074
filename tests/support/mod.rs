//! Test support: starts the real components (the oidc-provider identity
//! provider under node, an in-process upstream that records what it
//! receives, and tollgate as a separate process from the built binary) and a
//! small browser with a cookie jar that fills in the provider's login form.
#![allow(dead_code)]

pub mod browser;
pub mod cases;
pub mod evil;
pub mod front;
pub mod grpc;
pub mod idp;
pub mod keycloak;
pub mod raw;
pub mod redis_server;
pub mod tollgate_bin;
pub mod upstream;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use {
    browser::*, front::*, grpc::*, idp::*, raw::*, redis_server::*, tollgate_bin::*, upstream::*,
};

use std::io::{BufRead, BufReader};
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BASIC_SECRET: &str = "s3:cr%t+&= x";
pub const POST_SECRET: &str = "post-secret";
pub const MACHINE_SECRET: &str = "machine-secret";
pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Results of a group of cases: one printed line per case as it is
/// recorded (`<group> <id> pass|FAIL: <what>`); the named-case harness
/// ([`cases`]) then reports each as a test of its own.
pub struct Report {
    group: String,
    cases: Vec<Case>,
}

/// One recorded case.
pub struct Case {
    pub id: String,
    pub what: String,
    pub result: Result<(), String>,
}

impl Report {
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
            cases: Vec::new(),
        }
    }

    pub fn record(&mut self, id: &str, what: &str, r: Result<(), String>) {
        match &r {
            Ok(()) => println!("{} {id} pass: {what}", self.group),
            Err(e) => println!("{} {id} FAIL: {what}: {e}", self.group),
        }
        self.cases.push(Case {
            id: id.to_string(),
            what: what.to_string(),
            result: r,
        });
    }

    /// The recorded cases.
    pub fn into_cases(self) -> Vec<Case> {
        self.cases
    }
}

/// Header names and values as text, in order, for recording requests.
pub fn header_pairs(headers: &hyper::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// 64 random bits as hex, for unique test values.
pub fn random_hex() -> String {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free loopback port for a component that binds it next. Ports come
/// from a per-process counter below the kernel's ephemeral range (32768+),
/// so neither a parallel test nor an outgoing connection can take the port
/// between this check and the component's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 400) as u16 * 25,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "ran out of test ports");
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Collects a child's output lines, and tells when one matching a prefix
/// arrives.
#[derive(Clone, Default)]
pub struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn capture(&self, stream: impl std::io::Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().expect("lock").join("\n")
    }

    /// Whether a line containing `needle` arrives (within 10 s): output is
    /// read by another thread, so a line tollgate wrote just before
    /// answering may not be here yet when the answer is.
    /// Lines so far that start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    pub fn has(&self, needle: &str) -> bool {
        let start = Instant::now();
        loop {
            if self
                .0
                .lock()
                .expect("lock")
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            if start.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The lines containing `needle` so far.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits (within 10 s) until more than `seen` lines contain `needle`,
    /// then returns the new ones.
    pub fn new_lines(&self, needle: &str, seen: usize) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines_with(needle);
            if lines.len() > seen || start.elapsed() > Duration::from_secs(10) {
                return lines.into_iter().skip(seen).collect();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for(&self, prefix: &str, limit: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(l) = self
                .0
                .lock()
                .expect("lock")
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

// === worlds ===

/// The real provider, a recording upstream and tollgate between them, with
/// `extra` TOML appended and `server` keys in `[server]`.
pub async fn direct(extra: &str, server: &str) -> (Idp, Upstream, Tollgate) {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.extra = extra;
    setup.server = server;
    let tollgate = Tollgate::start(&setup).await;
    (idp, upstream, tollgate)
}

/// The CA of `tests/data/mtls` (the HTTPS provider's server certificate
/// and the mutual-TLS client certificate), for clients that must trust it.
pub fn test_ca() -> reqwest::Certificate {
    reqwest::Certificate::from_pem(include_bytes!("../data/mtls/ca.pem")).expect("test CA")
}

/// Ends a child started with `process_group(0)` and everything it
/// started (workers, a JVM), then reaps it.
pub fn end_group(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
