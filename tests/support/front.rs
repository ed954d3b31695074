//! Real front proxies: nginx (auth_request) and Caddy (forward_auth).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

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
        use std::os::unix::process::CommandExt;
        let output = Output::default();
        // A group of its own, so that ending it ends nginx's workers too
        // (killing only the master orphans them).
        let mut child = cmd
            .process_group(0)
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
        // The whole process group: the master and its workers.
        end_group(&mut self.child);
    }
}
