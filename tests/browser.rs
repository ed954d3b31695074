//! A person's view: headless Chromium (Debian's, driven by playwright-core)
//! logs in at the real provider, uses the app, reloads, signs out, and sees
//! tollgate's error page. Screenshots land in target/browser-shots/.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// The node echo upstream (renders the request headers as HTML, which is
/// what a person sees in the screenshots).
struct EchoUpstream {
    child: std::process::Child,
    url: String,
}

impl EchoUpstream {
    fn start() -> Self {
        let mut child = Command::new("node")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/upstream/echo.mjs"
            ))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node echo upstream");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        let url = line
            .trim()
            .strip_prefix("UPSTREAM_READY ")
            .expect("UPSTREAM_READY")
            .to_string();
        Self { child, url }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_person_logs_in_uses_the_app_and_signs_out_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (.ci/run does)"
    );
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = EchoUpstream::start();
    let mut tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url)).await;
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-shots");
    std::fs::create_dir_all(&shots).expect("shots dir");

    let started = Instant::now();
    let out = tokio::task::spawn_blocking({
        let tollgate_url = tollgate.url("");
        let issuer = idp.issuer.clone();
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/browser/login.mjs"
                ))
                .env("TOLLGATE_URL", tollgate_url)
                .env("ISSUER", issuer)
                .env("LOGIN", "alice")
                .env("SHOTS_DIR", shots)
                .env("CHROMIUM", chromium)
                .output()
                .expect("run the browser script")
        }
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("BROWSER_OK"),
        "browser run failed after {:?}:\n{stdout}\n{}\ntollgate:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr),
        tollgate.output.text()
    );
    for shot in [
        "01-provider-login.png",
        "02-app.png",
        "03-signed-out.png",
        "04-error-page.png",
    ] {
        let meta = std::fs::metadata(shots.join(shot)).unwrap_or_else(|_| panic!("{shot} missing"));
        assert!(meta.len() > 1000, "{shot} is empty");
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(tollgate.terminate().code(), Some(0));
}
