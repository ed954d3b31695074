//! Test support: starts the real components (the oidc-provider identity
//! provider under node, an in-process upstream that records what it
//! receives, and tollgate as a separate process from the built binary) and a
//! small browser with a cookie jar that fills in the provider's login form.
#![allow(dead_code)]

pub mod evil;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

pub const BASIC_SECRET: &str = "s3:cr%t+&= x";
pub const POST_SECRET: &str = "post-secret";
pub const MACHINE_SECRET: &str = "machine-secret";
pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Results of a table of cases: one printed line per case
/// (`<group> <id> pass|FAIL: <what>`), a summary, and a failing test if any
/// case failed.
pub struct Report {
    group: String,
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
            passed: 0,
            failed: Vec::new(),
        }
    }

    pub fn record(&mut self, id: &str, what: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("{} {id} pass: {what}", self.group);
            }
            Err(e) => {
                println!("{} {id} FAIL: {what}: {e}", self.group);
                self.failed.push(format!("{id} ({what}): {e}"));
            }
        }
    }

    pub fn finish(self) {
        println!(
            "{}: {} passed, {} failed",
            self.group,
            self.passed,
            self.failed.len()
        );
        assert!(self.failed.is_empty(), "{:#?}", self.failed);
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

// === identity provider ===

/// What the test provider is started with.
#[derive(Default)]
pub struct IdpOptions {
    /// Ports of the tollgate instances whose callback URLs are registered.
    pub tollgate_ports: Vec<u16>,
    /// 0: any free port.
    pub idp_port: u16,
    /// Seconds an access token lives (default: the library's hour).
    pub access_token_ttl: Option<u64>,
    pub rotate_refresh_tokens: bool,
    /// Where the provider POSTs logout tokens for the basic client.
    pub backchannel_logout_uri: Option<String>,
    /// Public URLs (other than tollgate's own ports) whose callbacks are
    /// registered: an nginx or Caddy in front of tollgate.
    pub front_urls: Vec<String>,
}

pub struct Idp {
    child: Child,
    pub issuer: String,
    pub output: Output,
}

impl Idp {
    /// Starts oidc-provider with the three test clients registered for
    /// `redirect_uri` (and `post_logout` as the post-logout URI).
    pub fn start(tollgate_port: u16) -> Self {
        Self::with(IdpOptions {
            tollgate_ports: vec![tollgate_port],
            ..IdpOptions::default()
        })
    }

    /// As [`Idp::start`], on a chosen port (0: any).
    pub fn start_on(tollgate_port: u16, idp_port: u16) -> Self {
        Self::with(IdpOptions {
            tollgate_ports: vec![tollgate_port],
            idp_port,
            ..IdpOptions::default()
        })
    }

    pub fn with(o: IdpOptions) -> Self {
        let mut bases: Vec<String> = o
            .tollgate_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        bases.extend(o.front_urls.iter().cloned());
        let redirects: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/oauth2/callback"))
            .collect();
        let post_logout: Vec<String> = bases.iter().map(|b| format!("{b}/")).collect();
        let client = |id: &str, secret: Option<&str>, method: &str| {
            let mut c = json!({
                "client_id": id,
                "token_endpoint_auth_method": method,
                "redirect_uris": redirects,
                "post_logout_redirect_uris": post_logout,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            });
            if let Some(s) = secret {
                c["client_secret"] = json!(s);
            }
            if let Some(uri) = &o.backchannel_logout_uri {
                c["backchannel_logout_uri"] = json!(uri);
                c["backchannel_logout_session_required"] = json!(true);
            }
            c
        };
        let mut ttl = json!({});
        if let Some(at) = o.access_token_ttl {
            ttl["AccessToken"] = json!(at);
        }
        let config = json!({
            "ttl": ttl,
            "rotateRefreshToken": o.rotate_refresh_tokens,
            "port": o.idp_port,
            "clients": [
                client("tollgate-basic", Some(BASIC_SECRET), "client_secret_basic"),
                client("tollgate-post", Some(POST_SECRET), "client_secret_post"),
                client("tollgate-public", None, "none"),
                {"client_id": "machine", "client_secret": MACHINE_SECRET, "token_endpoint_auth_method": "client_secret_basic",
                 "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []},
            ],
            "accounts": {
                "alice": {"email": "alice@example.com", "email_verified": true, "name": "Alice",
                          "preferred_username": "alice", "groups": ["admins", "dev"]}
            },
        });
        let output = Output::default();
        // Large ID tokens travel in `id_token_hint` on logout: raise node's
        // 16 KiB header limit as a real provider behind a proxy would have.
        let mut child = Command::new("node")
            .arg("--max-http-header-size=131072")
            .arg(repo().join("tests/idp/server.mjs"))
            .env("IDP_CONFIG_JSON", config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node (is node installed and `npm ci --prefix tests/idp` done?)");
        output.capture(child.stdout.take().expect("stdout"));
        output.capture(child.stderr.take().expect("stderr"));
        let ready = output
            .wait_for("IDP_READY ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("identity provider did not start:\n{}", output.text()));
        let issuer = ready.trim_start_matches("IDP_READY ").trim().to_string();
        Self {
            child,
            issuer,
            output,
        }
    }

    /// The provider's request counters (`token_requests`, ...).
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__stats", self.issuer))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// A client-credentials access token for the `machine` client: a JWT
    /// with `aud` = `resource` when one is given, opaque otherwise.
    pub async fn machine_token(&self, resource: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "api")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let v: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("machine", Some(MACHINE_SECRET))
            .form(&form)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn token_requests(&self) -> u64 {
        self.stats().await["token_requests"]
            .as_u64()
            .expect("count")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

// === raw HTTP ===

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it (or 5 s pass, which fails the caller's checks, never passes them).
pub async fn raw(port: u16, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // The server may answer and close before reading everything (a 413 or
    // 400 for an oversized request): a failed write is not a failure.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Status codes of every response in `text`, in order.
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

// === upstream ===

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An HTTP upstream that records every request and answers `ok`; `/ws`
/// is a WebSocket echo; `/hang` never answers.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// `/gate` answers only once this is notified.
    pub gate: Arc<tokio::sync::Notify>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let gate = Arc::new(tokio::sync::Notify::new());
        let record = seen.clone();
        let gate2 = gate.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                let gate = gate2.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, record.clone(), gate.clone())
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen, gate }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the upstream saw no request")
    }
}

async fn handle(
    mut req: Request<Incoming>,
    record: Arc<Mutex<Vec<Seen>>>,
    gate: Arc<tokio::sync::Notify>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: header_pairs(req.headers()),
        body: String::new(),
    };
    if req.uri().path() == "/ws" {
        record.lock().expect("lock").push(seen);
        let key = req.headers().get("sec-websocket-key").cloned();
        let Some(key) = key else {
            return Ok(Response::builder()
                .status(400)
                .body(Full::default())
                .expect("resp"));
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            use futures_util::{SinkExt, StreamExt};
            let Ok(upgraded) = upgrade.await else { return };
            let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        return Ok(Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", accept)
            .body(Full::default())
            .expect("resp"));
    }
    let path = seen.path.clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.body = String::from_utf8_lossy(&body).into_owned();
    record.lock().expect("lock").push(seen);
    if path == "/gate" {
        gate.notified().await;
    }
    if path == "/hang" {
        std::future::pending::<()>().await;
    }
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            json!({"upstream": "ok", "path": path}).to_string(),
        )))
        .expect("resp"))
}

// === redis ===

/// A real redis-server on a free port, persisting to a temporary directory
/// (append-only, fsync always) so it can be stopped and started again with
/// its data.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.run().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed?)");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not start");
    }

    async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn ping(&self) -> bool {
        match self.connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// Every key with its raw string value (other types: their members).
    pub async fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection().await.expect("connect");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .expect("keys");
        let mut out = Vec::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut c)
                .await
                .expect("type");
            let value: Vec<u8> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&k)
                    .query_async(&mut c)
                    .await
                    .expect("get"),
                "set" => {
                    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
                        .arg(&k)
                        .query_async(&mut c)
                        .await
                        .expect("smembers");
                    members.concat()
                }
                _ => Vec::new(),
            };
            out.push((k, value));
        }
        out
    }
}

/// A three-master Redis Cluster (no replicas).
pub struct Cluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    pub async fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut children = Vec::new();
        let mut dirs = Vec::new();
        for p in &ports {
            let dir = tempfile::tempdir().expect("tempdir");
            children.push(
                Command::new("redis-server")
                    .args([
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &p.to_string(),
                        "--save",
                        "",
                    ])
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start redis-server"),
            );
            dirs.push(dir);
        }
        for p in &ports {
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "cluster node did not start"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli --cluster create");
        assert!(status.success(), "cluster create failed");
        let start = Instant::now();
        loop {
            let ok = ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "cluster never became ok"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            children,
            ports,
            _dirs: dirs,
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Keys across all masters.
    pub fn keys(&self) -> Vec<String> {
        self.ports
            .iter()
            .flat_map(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "--scan"])
                    .output()
                    .map(|o| {
                        String::from_utf8_lossy(&o.stdout)
                            .lines()
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A redis-sentinel watching one master.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub async fn start(master: &Redis, name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {name} 127.0.0.1 {} 1\n",
                dir.path().display(),
                master.port
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        let url = format!("redis://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if let Ok(client) = redis::Client::open(url.as_str()) {
                if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                    let addr: redis::RedisResult<Vec<String>> = redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(name)
                        .query_async(&mut c)
                        .await;
                    if addr.is_ok_and(|a| a.len() == 2) {
                        break;
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sentinel did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

// === front proxies ===

/// nginx or Caddy in front of tollgate, from a generated config.
pub struct Front {
    child: Child,
    pub port: u16,
    pub output: Output,
    _dir: tempfile::TempDir,
}

impl Front {
    /// nginx with `auth_request` to tollgate's `/oauth2/auth`.
    pub async fn nginx(port: u16, tollgate: u16, upstream: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let up = upstream.trim_start_matches("http://");
        let conf = format!(
            r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    location /oauth2/ {{
      proxy_pass http://127.0.0.1:{tollgate};
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host:$server_port;
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
    location = /oauth2/auth {{
      internal;
      proxy_pass http://127.0.0.1:{tollgate};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $host:$server_port;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host:$server_port;
    }}
    location / {{
      auth_request /oauth2/auth;
      error_page 401 = @login;
      auth_request_set $user $upstream_http_x_auth_request_user;
      auth_request_set $email $upstream_http_x_auth_request_email;
      auth_request_set $groups $upstream_http_x_auth_request_groups;
      auth_request_set $auth_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $auth_cookie;
      proxy_set_header X-User $user;
      proxy_set_header X-Email $email;
      proxy_set_header X-Groups $groups;
      proxy_pass http://{up};
    }}
    location @login {{
      return 302 /oauth2/start?rd=$request_uri;
    }}
  }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut cmd = Command::new("nginx");
        cmd.arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"]);
        Self::spawn(cmd, port, dir).await
    }

    /// Caddy with `forward_auth` to tollgate's `/oauth2/auth?mode=redirect`.
    pub async fn caddy(port: u16, tollgate: u16, upstream: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let up = upstream.trim_start_matches("http://");
        let conf = format!(
            r#"{{
  admin off
  auto_https off
  storage file_system {}
}}
http://127.0.0.1:{port} {{
  handle /oauth2/* {{
    reverse_proxy 127.0.0.1:{tollgate}
  }}
  handle {{
    forward_auth 127.0.0.1:{tollgate} {{
      uri /oauth2/auth?mode=redirect
      copy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Groups
    }}
    reverse_proxy {up}
  }}
}}
"#,
            dir.path().display()
        );
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, conf).expect("write Caddyfile");
        let mut cmd = Command::new("caddy");
        cmd.arg("run")
            .arg("--config")
            .arg(&file)
            .args(["--adapter", "caddyfile"]);
        cmd.env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path());
        Self::spawn(cmd, port, dir).await
    }

    async fn spawn(mut cmd: Command, port: u16, dir: tempfile::TempDir) -> Self {
        let output = Output::default();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        output.capture(child.stdout.take().expect("stdout"));
        output.capture(child.stderr.take().expect("stderr"));
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("front proxy exited with {status}:\n{}", output.text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "front proxy did not listen:\n{}",
                output.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            child,
            port,
            output,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === tollgate ===

pub struct Tollgate {
    child: Option<Child>,
    pub port: u16,
    pub output: Output,
    _dir: tempfile::TempDir,
}

/// What a test tollgate is pointed at.
pub struct Setup<'a> {
    pub port: u16,
    pub issuer: &'a str,
    pub upstream: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
    pub client_auth: &'a str,
    /// Extra TOML appended to the generated config.
    pub extra: &'a str,
    /// Extra keys of the `[session]` table.
    pub session: &'a str,
    /// Extra keys of the `[server]` table.
    pub server: &'a str,
    /// `server.public_url` when browsers reach tollgate through a proxy.
    pub public_url: Option<&'a str>,
}

impl<'a> Setup<'a> {
    pub fn basic(port: u16, idp: &'a Idp, upstream: &'a str) -> Self {
        Self {
            port,
            issuer: &idp.issuer,
            upstream,
            client_id: "tollgate-basic",
            client_secret: Some(BASIC_SECRET),
            client_auth: "client_secret_basic",
            extra: "",
            session: "",
            server: "",
            public_url: None,
        }
    }

    pub fn toml(&self) -> String {
        let secret = self
            .client_secret
            .map(|s| format!("client_secret = {}\n", toml_str(s)))
            .unwrap_or_default();
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{public_url}"
shutdown_grace = "5s"
{server}

[upstream]
url = "{upstream}"
timeout = "2s"

[provider]
issuer = "{issuer}"
client_id = "{client_id}"
{secret}client_auth = "{client_auth}"

[session]
secret = "{SESSION_KEY}"
secure = false
{session}

[log]
level = "debug"
{extra}
"#,
            port = self.port,
            upstream = self.upstream,
            issuer = self.issuer,
            client_id = self.client_id,
            client_auth = self.client_auth,
            extra = self.extra,
            session = self.session,
            server = self.server,
            public_url = self
                .public_url
                .map(str::to_string)
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.port)),
        )
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tollgate"))
}

impl Tollgate {
    /// Starts tollgate and waits until `/readyz` answers 200.
    pub async fn start(setup: &Setup<'_>) -> Self {
        let mut t = Self::spawn(&setup.toml(), setup.port);
        t.wait_ready().await;
        t
    }

    /// Starts tollgate without waiting for readiness.
    pub fn spawn(config: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut t = Self::spawn_at(&path, port);
        t._dir = dir;
        t
    }

    /// Starts tollgate with a config file the test manages.
    pub fn spawn_at(path: &Path, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Output::default();
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(path)
            .env_remove("TOLLGATE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tollgate");
        output.capture(child.stdout.take().expect("stdout"));
        output.capture(child.stderr.take().expect("stderr"));
        Self {
            child: Some(child),
            port,
            output,
            _dir: dir,
        }
    }

    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("tollgate exited with {status}:\n{}", self.output.text());
            }
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tollgate did not become ready:\n{}", self.output.text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends a signal (`HUP`, `TERM`, …) without waiting.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tollgate did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// === browser ===

#[derive(Debug, Clone)]
struct StoredCookie {
    name: String,
    value: String,
    path: String,
}

/// A browser-like client: cookie jar (host-wide, path-matched, as browsers
/// do on localhost), manual redirects.
/// Cookie name prefixes as browsers enforce them (RFC 6265bis §4.1.3,
/// ignoring case): `__Secure-` needs `Secure`; `__Host-` needs `Secure`,
/// `Path=/` and no `Domain`. (Like browsers on localhost, the jar otherwise
/// keeps `Secure` cookies over plain http.)
fn prefix_allows(c: &cookie::Cookie<'_>) -> bool {
    let name = c.name().to_ascii_lowercase();
    let secure = c.secure() == Some(true);
    if name.starts_with("__host-") {
        return secure && c.path() == Some("/") && c.domain().is_none();
    }
    !name.starts_with("__secure-") || secure
}

pub struct Browser {
    http: reqwest::Client,
    jar: Vec<StoredCookie>,
    pub accept: &'static str,
}

/// One response, its body read.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: Vec::new(),
            accept: "text/html,application/xhtml+xml,*/*;q=0.8",
        }
    }

    pub fn cookie_header(&self, url: &str) -> String {
        let path = url::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        self.jar
            .iter()
            .filter(|c| path.starts_with(&c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
    }

    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.iter().map(|c| c.name.clone()).collect()
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.retain(|c| c.name != name);
        self.jar.push(StoredCookie {
            name: name.into(),
            value: value.into(),
            path: "/".into(),
        });
    }

    pub fn remove_cookies(&mut self, pred: impl Fn(&str) -> bool) {
        self.jar.retain(|c| !pred(&c.name));
    }

    fn store(&mut self, url: &str, set_cookies: &[String]) {
        for s in set_cookies {
            let Ok(c) = cookie::Cookie::parse(s.clone()) else {
                continue;
            };
            if !prefix_allows(&c) {
                continue;
            }
            let default_path = url::Url::parse(url)
                .map(|u| {
                    let p = u.path();
                    p[..p.rfind('/').unwrap_or(0).max(1)].to_string()
                })
                .unwrap_or_else(|_| "/".into());
            let path = c.path().map(str::to_string).unwrap_or(default_path);
            self.jar.retain(|x| !(x.name == c.name() && x.path == path));
            let expired = c.max_age().is_some_and(|m| m.is_zero() || m.is_negative())
                || c.expires_datetime()
                    .is_some_and(|e| e < cookie::time::OffsetDateTime::now_utc());
            if !expired {
                self.jar.push(StoredCookie {
                    name: c.name().into(),
                    value: c.value().into(),
                    path,
                });
            }
        }
    }

    /// One request, cookies sent and stored, no redirect followed.
    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.request(method, url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header("accept", self.accept);
        }
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let page = Page {
            url: url.to_string(),
            status,
            headers,
            body,
        };
        self.store(url, &page.set_cookies());
        page
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.request(reqwest::Method::GET, url, None, &[]).await
    }

    /// Follows a sign-out link on the site itself, as a browser does
    /// (`Sec-Fetch-Site: same-origin`).
    pub async fn sign_out(&mut self, url: &str) -> Page {
        self.request(
            reqwest::Method::GET,
            url,
            None,
            &[("sec-fetch-site", "same-origin")],
        )
        .await
    }

    /// Submits the first form on `page` with its inputs (hidden ones
    /// included), as a browser would; returns the response, not followed.
    pub async fn submit_form(&mut self, page: &Page) -> Page {
        let form = page.body.split("<form").nth(1).expect("a form");
        let action = form
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("action");
        let mut fields: Vec<(String, String)> = Vec::new();
        for input in form.split("<input").skip(1) {
            let attr = |name: &str| {
                input
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(str::to_string)
            };
            if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                fields.push((n, v));
            }
        }
        let target = url::Url::parse(&page.url)
            .and_then(|b| b.join(action))
            .expect("action url")
            .to_string();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.request(reqwest::Method::POST, &target, Some(&pairs), &[])
            .await
    }

    /// Follows redirects (at most 20) from `url`; returns the last page.
    pub async fn follow(&mut self, url: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..20 {
            match (page.status, page.location()) {
                (301 | 302 | 303 | 307 | 308, Some(loc)) => {
                    let next = url::Url::parse(&page.url)
                        .and_then(|b| b.join(loc))
                        .expect("location")
                        .to_string();
                    page = self.get(&next).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Follows redirects from `url`; when the provider's login form shows
    /// up, signs in as `user`; returns the first page that is not a
    /// redirect after that.
    pub async fn login(&mut self, url: &str, user: &str) -> Page {
        let page = self.follow(url).await;
        self.submit_login(page, user).await
    }

    /// Fills in the login form on `page` (if it is one) and follows on.
    pub async fn submit_login(&mut self, page: Page, user: &str) -> Page {
        if page.status != 200 || !page.body.contains("name=\"login\"") {
            return page;
        }
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("form action");
        let target = url::Url::parse(&page.url)
            .and_then(|b| b.join(action))
            .expect("action url")
            .to_string();
        let posted = self
            .request(
                reqwest::Method::POST,
                &target,
                Some(&[("login", user), ("password", "any")]),
                &[],
            )
            .await;
        let next = posted.location().expect("redirect after login").to_string();
        let next = url::Url::parse(&target)
            .and_then(|b| b.join(&next))
            .expect("url")
            .to_string();
        self.follow(&next).await
    }

    /// Follows redirects from `url` but stops at the callback, returning
    /// the callback URL the provider produced (not yet visited).
    pub async fn until_callback(&mut self, url: &str, user: &str) -> String {
        let mut page = self.get(url).await;
        for _ in 0..20 {
            if page.status == 200 && page.body.contains("name=\"login\"") {
                let action = page
                    .body
                    .split("action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("form action")
                    .to_string();
                let target = url::Url::parse(&page.url)
                    .and_then(|b| b.join(&action))
                    .expect("url")
                    .to_string();
                page = self
                    .request(
                        reqwest::Method::POST,
                        &target,
                        Some(&[("login", user), ("password", "any")]),
                        &[],
                    )
                    .await;
                continue;
            }
            let loc = page.location().unwrap_or_else(|| {
                panic!("stuck at {} ({}): {}", page.url, page.status, page.body)
            });
            let next = url::Url::parse(&page.url)
                .and_then(|b| b.join(loc))
                .expect("location")
                .to_string();
            if next.contains("/oauth2/callback") {
                return next;
            }
            page = self.get(&next).await;
        }
        panic!("never reached the callback");
    }
}
