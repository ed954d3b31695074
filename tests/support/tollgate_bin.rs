//! tollgate itself, the built binary, as a separate process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

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
        Self::spawn_at_with(path, port, &[])
    }

    /// Starts tollgate with `config` and environment variables `env`.
    pub fn spawn_with(config: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut t = Self::spawn_at_with(&path, port, env);
        t._dir = dir;
        t
    }

    fn spawn_at_with(path: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Output::default();
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(path)
            .envs(env.iter().copied())
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
            // The default probe path, or oauth2-proxy's when configured so.
            // As an API client: where "/ready" is not a probe it is proxied,
            // and a browser would be sent to log in (a PAR push, a login
            // cookie) that tests would then count.
            for probe in ["/readyz", "/ready"] {
                let req = client
                    .get(self.url(probe))
                    .header("accept", "application/json");
                if let Ok(r) = req.send().await {
                    if r.status() == 200 && r.text().await.is_ok_and(|t| t == "ready\n") {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tollgate did not become ready:\n{}", self.output.text());
    }

    /// The status of a GET of `path` with `Authorization: Bearer <token>`.
    pub async fn bearer_status(&self, path: &str, token: &str) -> u16 {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
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
