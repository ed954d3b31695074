//! A real gRPC server and client (Python `grpcio`, the C-core
//! implementation), from `tests/grpc`: `./test.sh` installs them into
//! `tests/grpc/.venv`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpc")
}

fn python() -> PathBuf {
    let p = dir().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: ./test.sh installs it (python3 -m venv tests/grpc/.venv && tests/grpc/.venv/bin/pip install -r tests/grpc/requirements.txt)",
        p.display()
    );
    p
}

/// `server.py`: `echo.Echo` over h2c on 127.0.0.1.
pub struct GrpcServer {
    child: Child,
    pub port: u16,
    pub output: Output,
}

impl GrpcServer {
    pub fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(python())
            .arg(dir().join("server.py"))
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gRPC server");
        let output = Output::default();
        output.capture(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let _ = stdout.read_line(&mut first);
        let port = first.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the gRPC server did not start (`{first}`):\n{}",
                output.text()
            )
        });
        output.capture(stdout);
        Self {
            child,
            port,
            output,
        }
    }

    /// `h2c://127.0.0.1:<port>`, as `upstream.url` takes it.
    pub fn url(&self) -> String {
        format!("h2c://127.0.0.1:{}", self.port)
    }

    /// How many calls reached the server.
    pub fn calls(&self) -> usize {
        self.output.count("call ")
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        end_group(&mut self.child);
    }
}

/// One call by `client.py` (`unary` or `chat`) to `target` (`host:port`,
/// plain HTTP/2), with a bearer token or none: its outcome as JSON
/// (`code`, `replies`, `initial` and `trailing` metadata, or `details`).
pub async fn grpc_call(target: &str, mode: &str, token: Option<&str>) -> Value {
    grpc_call_to(target, None, mode, token).await
}

/// [`grpc_call`] with `:authority` set to `authority`.
pub async fn grpc_call_to(
    target: &str,
    authority: Option<&str>,
    mode: &str,
    token: Option<&str>,
) -> Value {
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(dir().join("client.py")).arg(target).arg(mode);
    if let Some(a) = authority {
        cmd.env("GRPC_AUTHORITY", a);
    }
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .expect("run the gRPC client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "the gRPC client failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
