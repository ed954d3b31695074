//! Real front proxies: nginx (auth_request), Caddy (forward_auth) and
//! Traefik (forwardAuth), for one site or several.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

// === front proxies ===

/// One site a front proxy serves: its host name and its upstream.
pub struct Site<'a> {
    pub host: &'a str,
    pub upstream: &'a str,
}

/// nginx or Caddy in front of tollgate, from a generated config.
pub struct Front {
    child: Child,
    pub port: u16,
    pub output: Output,
    _dir: tempfile::TempDir,
}

impl Front {
    /// nginx with `auth_request` to tollgate's `/oauth2/auth`, for one
    /// site on 127.0.0.1.
    pub async fn nginx(port: u16, tollgate: u16, upstream: &str) -> Self {
        let site = Site {
            host: "127.0.0.1",
            upstream,
        };
        Self::nginx_sites(port, tollgate, "127.0.0.1", &[site]).await
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
        Self::caddy_with(conf, port, dir).await
    }

    /// nginx serving several sites (`server_name`s), each `auth_request`
    /// to tollgate; signing in starts on `auth_host` (`server.public_url`'s
    /// host), as oauth2-proxy's nginx guide has it. The upstream gets the
    /// identity as `X-User`, `X-Email`, `X-Groups`.
    pub async fn nginx_sites(
        port: u16,
        tollgate: u16,
        auth_host: &str,
        sites: &[Site<'_>],
    ) -> Self {
        let servers: String = sites
            .iter()
            .map(|site| {
                let (host, up) = (site.host, site.upstream.trim_start_matches("http://"));
                format!(
                    r#"
  server {{
    listen 127.0.0.1:{port};
    server_name {host};
    location /oauth2/ {{
      proxy_pass http://127.0.0.1:{tollgate};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
    }}
    location = /oauth2/auth {{
      internal;
      proxy_pass http://127.0.0.1:{tollgate};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Uri $request_uri;
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
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
      return 302 http://{auth_host}:{port}/oauth2/start?rd=$scheme://$http_host$request_uri;
    }}
  }}"#
                )
            })
            .collect();
        let servers = format!(
            r#"
  server {{
    listen 127.0.0.1:{port} default_server;
    return 421;
  }}
{servers}"#
        );
        Self::nginx_http(port, &servers).await
    }

    /// nginx with `servers` (server blocks, or anything else the `http`
    /// block takes; `{dir}` in them is nginx's own directory), answering on
    /// `port`.
    pub async fn nginx_http(port: u16, servers: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let servers = servers.replace("{dir}", &d.to_string());
        let conf = format!(
            r#"
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
{servers}
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

    /// Caddy serving several sites, each `forward_auth` to tollgate's
    /// `/oauth2/auth?mode=redirect`; the upstream gets the identity as
    /// `X-Auth-Request-*`.
    pub async fn caddy_sites(port: u16, tollgate: u16, sites: &[Site<'_>]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocks: String = sites
            .iter()
            .map(|site| {
                let (host, up) = (site.host, site.upstream.trim_start_matches("http://"));
                format!(
                    r#"
http://{host}:{port} {{
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
}}"#
                )
            })
            .collect();
        let conf = format!(
            "{{\n  admin off\n  auto_https off\n  storage file_system {}\n}}\n{blocks}\n",
            dir.path().display()
        );
        Self::caddy_with(conf, port, dir).await
    }

    /// Traefik v3 (the binary `tests/traefik/build.sh` builds) serving
    /// several sites from its file provider: `/oauth2/` on each host to
    /// tollgate, everything else through a `forwardAuth` middleware to
    /// `/oauth2/auth?mode=redirect`; the upstream gets the identity as
    /// `X-Auth-Request-*`.
    pub async fn traefik_sites(
        binary: &Path,
        port: u16,
        tollgate: u16,
        sites: &[Site<'_>],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut routers = String::new();
        let mut services =
            format!("    tollgate:\n      loadBalancer:\n        servers:\n          - url: \"http://127.0.0.1:{tollgate}\"\n");
        for (i, site) in sites.iter().enumerate() {
            let host = site.host;
            routers.push_str(&format!(
                "    site{i}-oauth2:\n      rule: \"Host(`{host}`) && PathPrefix(`/oauth2/`)\"\n      entryPoints: [web]\n      service: tollgate\n      priority: 1000\n\
                 \x20   site{i}:\n      rule: \"Host(`{host}`)\"\n      entryPoints: [web]\n      middlewares: [tollgate]\n      service: site{i}\n"
            ));
            services.push_str(&format!(
                "    site{i}:\n      loadBalancer:\n        servers:\n          - url: \"{}\"\n",
                site.upstream
            ));
        }
        let dynamic = format!(
            "http:\n  middlewares:\n    tollgate:\n      forwardAuth:\n        address: \"http://127.0.0.1:{tollgate}/oauth2/auth?mode=redirect\"\n        trustForwardHeader: false\n        authResponseHeaders: [X-Auth-Request-User, X-Auth-Request-Email, X-Auth-Request-Groups]\n  routers:\n{routers}  services:\n{services}"
        );
        let file = dir.path().join("dynamic.yml");
        std::fs::write(&file, dynamic).expect("write dynamic.yml");
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--entryPoints.web.address=127.0.0.1:{port}"))
            .arg(format!("--providers.file.filename={}", file.display()))
            .args([
                "--log.level=ERROR",
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
            ]);
        let front = Self::spawn(cmd, port, dir).await;
        // The file provider loads after the listener opens: wait until the
        // first site's tollgate route answers.
        let probe = reqwest::Client::builder()
            .resolve(
                sites[0].host,
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            )
            .build()
            .expect("client");
        // tollgate's page (Traefik's own answer before then is a 404).
        let url = format!("http://{}:{port}/oauth2/signed_out", sites[0].host);
        let start = Instant::now();
        while probe
            .get(&url)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "traefik did not load its routes:\n{}",
                front.output.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        front
    }

    async fn caddy_with(conf: String, port: u16, dir: tempfile::TempDir) -> Self {
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

    /// The directory the front proxy's config and files are in.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        // The whole process group: the master and its workers.
        end_group(&mut self.child);
    }
}
