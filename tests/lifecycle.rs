//! The binary as an operator meets it: CLI, config errors, readiness,
//! graceful shutdown, upstream failures.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

fn valid_toml() -> String {
    format!(
        r#"
[server]
public_url = "https://app.example.com"
[upstream]
url = "http://127.0.0.1:8080"
[provider]
issuer = "https://idp.example.com"
client_id = "my-app"
client_secret = "{BASIC_SECRET}"
[session]
secret = "{SESSION_KEY}"
"#
    )
}

#[test]
fn bad_config_exits_64_naming_the_key_and_the_file() {
    let (_d, path) =
        write_config(&valid_toml().replace("[upstream]", "[upstream]\ntimout = \"5s\""));
    let out = Command::new(binary())
        .arg("--config")
        .arg(&path)
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("upstream.timout") && err.contains("did you mean `timeout`"),
        "{err}"
    );
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn missing_named_config_file_exits_64() {
    for (args, env) in [
        (vec!["--config", "/nonexistent/tollgate.toml"], None),
        (vec![], Some("/nonexistent/from-env.toml")),
    ] {
        let mut cmd = Command::new(binary());
        cmd.args(&args).env_remove("TOLLGATE_CONFIG");
        if let Some(e) = env {
            cmd.env("TOLLGATE_CONFIG", e);
        }
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(64));
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    }
}

#[test]
fn environment_overrides_and_errors_name_the_variable() {
    let (_d, path) = write_config(&valid_toml());
    let out = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .env("TOLLGATE_PROVIDER__ISSUER", "http://idp.example.com")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("provider.issuer")
            && err.contains("TOLLGATE_PROVIDER__ISSUER")
            && err.contains("non-loopback"),
        "{err}"
    );
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let (_d, path) = write_config(&valid_toml());
    let out = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("client_id = \"my-app\"") && text.contains("lifetime = \"12h\""),
        "{text}"
    );
    assert!(
        !text.contains(BASIC_SECRET) && !text.contains(SESSION_KEY),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
}

/// A newcomer's first steps: with nothing configured tollgate says so (and
/// how to start), `init` writes a config that checks, and never overwrites.
#[test]
fn init_writes_a_working_config_and_an_empty_directory_says_how_to_start() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("dir");
    let bare = Command::new(binary())
        .arg("check-config")
        .current_dir(dir.path())
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(
        err.contains("no configuration")
            && err.contains("tollgate init")
            && !err.contains("is required"),
        "{err}"
    );
    let init = || {
        let mut child = Command::new(binary())
            .args([
                "init",
                "--issuer",
                "https://idp.example.com",
                "--client-id",
                "my-app",
                "--upstream",
                "http://127.0.0.1:8080",
                "--public-url",
                "https://app.example.com",
            ])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"the-client-secret\n")
            .expect("write");
        child.wait_with_output().expect("wait")
    };
    let first = init();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("/oauth2/callback"));
    let check = Command::new(binary())
        .arg("check-config")
        .current_dir(dir.path())
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .expect("run");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!String::from_utf8_lossy(&check.stdout).contains("the-client-secret"));
    let again = init();
    assert_eq!(again.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));
}

#[test]
fn generate_secret_prints_32_random_bytes() {
    use base64::Engine as _;
    let run = || {
        let out = Command::new(binary())
            .arg("generate-secret")
            .output()
            .expect("run");
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&a)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    // And it is accepted as a session secret.
    let (_d, path) = write_config(&valid_toml().replace(SESSION_KEY, &a));
    let out = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(out.status.success());
}

#[test]
fn version_flag() {
    let out = Command::new(binary())
        .arg("--version")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn not_ready_until_the_provider_answers_then_ready() {
    let port = free_port();
    let idp_port = free_port();
    let upstream = Upstream::start().await;
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let setup = Setup {
        port,
        issuer: &issuer,
        upstream: &upstream.url(),
        client_id: "tollgate-basic",
        client_secret: Some(BASIC_SECRET),
        client_auth: "client_secret_basic",
        extra: "",
        session: "",
        server: "",
        public_url: None,
    };
    let mut tollgate = Tollgate::spawn(&setup.toml(), port);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Alive but not ready, and logins wait with a clean 503.
    let start = Instant::now();
    let health = loop {
        if let Ok(r) = client.get(tollgate.url("/healthz")).send().await {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tollgate never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health.status(), 200);
    assert_eq!(
        client
            .get(tollgate.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        503
    );
    let page = client
        .get(tollgate.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    assert_eq!(upstream.count(), 0);

    // The provider comes up; discovery retries and tollgate becomes ready.
    let _idp = Idp::start_on(port, idp_port);
    tollgate.wait_ready().await;
    let page = client.get(tollgate.url("/")).send().await.expect("page");
    assert_eq!(page.status(), 302);
}

#[tokio::test]
async fn sigterm_stops_accepting_lets_in_flight_requests_finish_and_exits_zero() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;

    // A request that the upstream holds until we say so.
    let in_flight = held_at_gate(&tollgate, &upstream, &b).await;

    let pid_exit = tokio::task::spawn_blocking(move || tollgate.terminate());
    // New connections are refused once the listener closes.
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    upstream.gate.notify_one();
    assert_eq!(
        in_flight
            .await
            .expect("join")
            .expect("in-flight request completed"),
        200
    );
    let status = pid_exit.await.expect("join");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn upstream_refusing_is_502_and_hanging_is_504() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let page = b.get(&tollgate.url("/hang")).await;
    assert_eq!(page.status, 504, "{}", page.body);
    assert!(page.body.contains("took too long"));
    drop(tollgate);

    let port = free_port();
    let idp = Idp::start(port);
    let tollgate = Tollgate::start(&Setup::basic(port, &idp, &closed)).await;
    let mut b = Browser::new();
    let page = b.login(&tollgate.url("/"), "alice").await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("not answering"));
}

#[tokio::test]
async fn metrics_on_their_own_port_and_request_ids_end_to_end() {
    let port = free_port();
    let metrics_port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    let extra = format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    setup.extra = &extra;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;

    // A client's sane request id travels upstream and comes back; an odd one is replaced.
    let page = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/traced"),
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(
        page.headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    assert_eq!(upstream.last().header("x-request-id"), Some("abc-123"));
    let odd = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/traced"),
            None,
            &[("x-request-id", "bad id\twith spaces")],
        )
        .await;
    let replaced = odd
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(!replaced.is_empty() && !replaced.contains(' '));
    // Error pages name the request id.
    let err = Browser::new()
        .get(&tollgate.url("/oauth2/callback?state=bogus"))
        .await;
    let id = err
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("id")
        .to_string();
    assert!(err.body.contains(&id), "{}", err.body);
    assert!(tollgate.output.has("request_id=abc-123"));

    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for needle in [
        "tollgate_requests_total{outcome=\"proxied\",class=\"2xx\",code=\"200\",method=\"GET\"}",
        "tollgate_requests_total{outcome=\"login_redirect\",class=\"3xx\",code=\"302\",method=\"GET\"}",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "tollgate_logins_total{stage=\"completed\",reason=\"\"} 1",
        "tollgate_logins_total{stage=\"failed\",reason=\"login_cookie_missing\"} 1",
        "tollgate_provider_request_duration_seconds_count{endpoint=\"token\"} 1",
        "tollgate_upstream_duration_seconds_count",
        "tollgate_open_connections",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    // Never on the proxied port.
    assert_eq!(
        b.get(&tollgate.url("/metrics")).await.status,
        200,
        "proxied to the upstream like any path"
    );
    assert_eq!(upstream.last().path, "/metrics");
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn make_cert(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    make_cert_for(dir, name, "serverAuth")
}

fn make_cert_for(
    dir: &std::path::Path,
    name: &str,
    eku: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ext = p("ext.cnf");
    std::fs::write(
        &ext,
        format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={eku}\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("ext");
    let s = |x: std::path::PathBuf| x.display().to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(p("ca.key")),
        "-out",
        &s(p("ca.crt")),
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}-ca"),
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &s(p("tls.key")),
        "-out",
        &s(p("tls.csr")),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &s(p("tls.csr")),
        "-CA",
        &s(p("ca.crt")),
        "-CAkey",
        &s(p("ca.key")),
        "-CAcreateserial",
        "-out",
        &s(p("tls.crt")),
        "-days",
        "2",
        "-extfile",
        &s(ext),
    ]);
    (
        p("tls.crt"),
        p("tls.key"),
        std::fs::read(p("ca.crt")).expect("ca"),
    )
}

#[tokio::test]
async fn https_with_http2_and_certificates_reloaded_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (crt1, key1, ca1) = make_cert(dir.path(), "one");
    let (crt2, key2, ca2) = make_cert(dir.path(), "two");
    // The served files, replaced by rename as Kubernetes does.
    let crt = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::copy(&crt1, &crt).expect("copy");
    std::fs::copy(&key1, &key).expect("copy");

    let port = free_port();
    let config = format!(
        "{}\n[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        valid_toml()
            .replace(
                "https://app.example.com",
                &format!("https://127.0.0.1:{port}")
            )
            .replace("https://idp.example.com", "http://127.0.0.1:1")
            .replace(
                "[server]",
                &format!("[server]\nlisten = \"127.0.0.1:{port}\"")
            ),
        crt.display(),
        key.display()
    );
    let _tollgate = Tollgate::spawn(&config, port);
    let client = |ca: &[u8], h2: bool| {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca).expect("ca")]);
        if !h2 {
            b = b.http1_only();
        }
        b.build().expect("client")
    };
    let url = format!("https://127.0.0.1:{port}/healthz");
    let start = Instant::now();
    let resp = loop {
        if let Ok(r) = client(&ca1, true).get(&url).send().await {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "https never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
    let h1 = client(&ca1, false)
        .get(&url)
        .send()
        .await
        .expect("http/1.1");
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert!(
        client(&ca2, true).get(&url).send().await.is_err(),
        "CA two does not trust the first certificate"
    );

    // Swap in the second certificate; new handshakes get it, no restart.
    let tmp_crt = dir.path().join("tls.crt.new");
    let tmp_key = dir.path().join("tls.key.new");
    std::fs::copy(&key2, &tmp_key).expect("copy");
    std::fs::copy(&crt2, &tmp_crt).expect("copy");
    std::fs::rename(&tmp_key, &key).expect("rename");
    std::fs::rename(&tmp_crt, &crt).expect("rename");
    let start = Instant::now();
    loop {
        if let Ok(r) = client(&ca2, true).get(&url).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        client(&ca1, true).get(&url).send().await.is_err(),
        "the old certificate is gone"
    );
}

#[test]
fn unreadable_tls_files_are_a_config_error_naming_the_key() {
    let (_d, path) = write_config(&format!(
        "{}\n[server.tls]\ncert_file = \"/nonexistent.crt\"\nkey_file = \"/nonexistent.key\"\n",
        valid_toml()
    ));
    let out = Command::new(binary())
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.tls.cert_file"));
}

#[tokio::test]
async fn sigterm_sends_http2_clients_goaway_and_finishes_their_streams() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let cookie = b.cookie_header(&tollgate.url("/"));

    // One HTTP/2 connection (h2c, prior knowledge) with a stream held open.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let warm = h2
        .get(tollgate.url("/warm"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("h2 request");
    assert_eq!(warm.version(), reqwest::Version::HTTP_2);
    let held = tokio::spawn({
        let (h2, url, cookie) = (h2.clone(), tollgate.url("/gate"), cookie.clone());
        async move {
            h2.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    let start = Instant::now();
    while !upstream.seen().iter().any(|s| s.path == "/gate") {
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let exit = tokio::task::spawn_blocking(move || tollgate.terminate());
    // After the signal no new stream is served, on this connection or a new one.
    let start = Instant::now();
    loop {
        match h2
            .get(format!("http://127.0.0.1:{port}/after"))
            .header("cookie", &cookie)
            .send()
            .await
        {
            Err(_) => break,
            Ok(_) => assert!(
                start.elapsed() < Duration::from_secs(30),
                "still serving new streams"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    upstream.gate.notify_one();
    assert_eq!(
        held.await
            .expect("join")
            .expect("the held stream completes"),
        200
    );
    assert_eq!(exit.await.expect("join").code(), Some(0));
}

#[tokio::test]
async fn https_upstream_with_a_private_ca_and_a_client_certificate() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let (srv_crt, srv_key, srv_ca) = make_cert(dir.path(), "upstream");
    let (cli_crt, cli_key, cli_ca) = make_cert_for(dir.path(), "client", "clientAuth");

    // An HTTPS upstream that demands a client certificate from the client CA.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&cli_ca) {
            roots.add(c.expect("ca")).expect("add");
        }
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let server_key = tollgate::server::tls::load(&srv_crt, &srv_key).expect("server cert");
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(server_key)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up_port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let user = req
                            .headers()
                            .get("x-forwarded-user")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(format!(
                                "tls upstream saw {user}"
                            ))),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });

    let port = free_port();
    let idp = Idp::start(port);
    let up_url = format!("https://127.0.0.1:{up_port}");
    let ca_path = dir.path().join("upstream-ca.crt");
    std::fs::write(&ca_path, &srv_ca).expect("ca");
    let toml = Setup::basic(port, &idp, &up_url).toml().replace(
        "[upstream]\n",
        &format!(
            "[upstream]\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            ca_path.display(),
            cli_crt.display(),
            cli_key.display()
        ),
    );
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    let page = b.login(&tollgate.url("/"), "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body, "tls upstream saw alice");

    // Without the client certificate the upstream refuses: a clean 502.
    let toml = Setup::basic(port, &idp, &up_url).toml().replace(
        "[upstream]\n",
        &format!("[upstream]\nca_file = \"{}\"\n", ca_path.display()),
    );
    drop(tollgate);
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    let page = b.login(&tollgate.url("/"), "alice").await;
    assert_eq!(page.status, 502, "{}", page.body);
}

#[tokio::test]
async fn config_reloads_on_a_kubernetes_style_symlink_swap_and_on_sighup_keeping_sessions() {
    use std::os::unix::fs::symlink;
    let port = free_port();
    let metrics_port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let rule = |group: &str| {
        let mut s = Setup::basic(port, &idp, &up_url);
        let extra = format!(
            "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n[[authorization.rules]]\npaths = [\"/admin\"]\nallow_groups = [\"{group}\"]\n[[authorization.rules]]\npaths = [\"/\"]\nallow_any = true\n"
        );
        s.extra = Box::leak(extra.into_boxed_str());
        s.toml()
    };
    // The layout kubelet makes: tollgate.toml -> ..data/tollgate.toml, ..data -> ..v1
    let dir = tempfile::tempdir().expect("tempdir");
    let version = |name: &str, text: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).expect("dir");
        std::fs::write(d.join("tollgate.toml"), text).expect("write");
    };
    let point_data_at = |name: &str| {
        let tmp = dir.path().join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(name, &tmp).expect("symlink");
        std::fs::rename(&tmp, dir.path().join("..data")).expect("swap");
    };
    version("..v1", &rule("nobody"));
    point_data_at("..v1");
    symlink("..data/tollgate.toml", dir.path().join("tollgate.toml")).expect("symlink");

    let mut t = Tollgate::spawn_at(&dir.path().join("tollgate.toml"), port);
    t.wait_ready().await;
    let mut b = Browser::new();
    b.login(&t.url("/"), "alice").await;
    assert_eq!(b.get(&t.url("/admin")).await.status, 403);
    let cookie = b.cookie("_tollgate").expect("session");

    let reloads = |result: &'static str| {
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        async move {
            let text = reqwest::get(url)
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text");
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "tollgate_config_reloads_total{{result=\"{result}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let wait_for = |what: &str, cond: bool, start: Instant| {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} never happened"
        );
        !cond
    };

    // New version: /admin is now for admins (alice is one). Same session.
    version("..v2", &rule("admins"));
    point_data_at("..v2");
    let start = Instant::now();
    while wait_for(
        "the reload",
        b.get(&t.url("/admin")).await.status == 200,
        start,
    ) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        b.cookie("_tollgate").as_deref(),
        Some(cookie.as_str()),
        "no new login was needed"
    );
    assert_eq!(reloads("ok").await, 1);

    // A broken version is refused and the running one kept.
    version("..v3", "[server]\nlisten = 12\n");
    point_data_at("..v3");
    let start = Instant::now();
    while wait_for("the failed reload", reloads("failed").await == 1, start) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.get(&t.url("/admin")).await.status, 200);

    // SIGHUP reloads on demand.
    point_data_at("..v2");
    let start = Instant::now();
    while wait_for("the reload back", reloads("ok").await == 2, start) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.signal("HUP");
    let start = Instant::now();
    while wait_for("the SIGHUP reload", t.output.has("cause=\"SIGHUP\""), start) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.get(&t.url("/admin")).await.status, 200);
    assert_eq!(t.terminate().code(), Some(0));
}

#[tokio::test]
async fn sigterm_gives_open_websockets_the_grace_period() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "cookie",
        b.cookie_header(&tollgate.url("/ws"))
            .parse()
            .expect("cookie"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake");
    ws.send(Message::text("before")).await.expect("send");
    assert_eq!(
        ws.next()
            .await
            .expect("msg")
            .expect("ok")
            .into_text()
            .expect("text")
            .as_str(),
        "before"
    );

    let exit = tokio::task::spawn_blocking(move || tollgate.terminate());
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        assert!(start.elapsed() < Duration::from_secs(30), "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Shutting down, yet the open WebSocket still works…
    ws.send(Message::text("during shutdown"))
        .await
        .expect("send");
    assert_eq!(
        ws.next()
            .await
            .expect("msg")
            .expect("ok")
            .into_text()
            .expect("text")
            .as_str(),
        "during shutdown"
    );
    // …and once it closes, tollgate exits cleanly.
    ws.close(None).await.expect("close");
    drop(ws);
    assert_eq!(exit.await.expect("join").code(), Some(0));
}

/// One `GET /healthz` on a connection that stays open; `None` if tollgate
/// closed it instead of answering.
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn max_connections_holds_across_all_worker_threads() {
    // Each worker thread accepts on its own; the limit must count them all
    // together, not per worker.
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let upstream_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &upstream_url);
    setup.server = "max_connections = 3";
    let tollgate = Tollgate::start(&setup).await;

    let mut held = Vec::new();
    let mut answered = 0;
    for _ in 0..8 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        if let Some(head) = healthz_on(&mut s).await {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            answered += 1;
        }
        held.push(s); // kept open, so each answered one keeps its slot
    }
    assert!(
        (1..=3).contains(&answered),
        "{answered} connections served at once with max_connections = 3"
    );
    assert!(tollgate.output.has("connection limit reached"));
}

/// `tollgate convert --from-oauth2-proxy FILE -- FLAGS`: tollgate's TOML on
/// stdout (which `check-config` accepts), the report on stderr, with no
/// secret in it.
#[test]
fn convert_turns_an_oauth2_proxy_config_into_one_that_checks() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("oauth2-proxy.cfg");
    std::fs::write(
        &cfg,
        "http_address = \"127.0.0.1:4180\"\nupstreams = [\"http://127.0.0.1:8080/\"]\nprovider = \"oidc\"\n\
         oidc_issuer_url = \"https://idp.example.com\"\nclient_id = \"app\"\nclient_secret = \"the-client-secret\"\n\
         cookie_secret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\nemail_domains = [\"example.com\"]\n\
         redirect_url = \"https://app.example.com/oauth2/callback\"\n",
    )
    .expect("write");
    let out = Command::new(binary())
        .args(["convert", "--from-oauth2-proxy"])
        .arg(&cfg)
        .args(["--", "--cookie-expire=24h", "--not-an-option=1"])
        .env("OAUTH2_PROXY_ALLOWED_GROUPS", "ops")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("cookie_expire: mapped"), "{report}");
    assert!(report.contains("not_an_option: not mapped"), "{report}");
    assert!(!report.contains("the-client-secret"), "{report}");
    let converted = dir.path().join("tollgate.toml");
    std::fs::write(&converted, &out.stdout).expect("write");
    let check = Command::new(binary())
        .args(["check-config", "--config"])
        .arg(&converted)
        .output()
        .expect("run");
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The alpha YAML configuration, given as the file itself or by
/// `--alpha-config` beside a legacy file: converted into a config that
/// checks.
#[test]
fn convert_reads_the_alpha_yaml_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    let yaml = dir.path().join("alpha.yaml");
    std::fs::write(
        &yaml,
        "upstreamConfig:\n  upstreams:\n  - id: app\n    path: /\n    uri: http://127.0.0.1:8080\n\
         server:\n  BindAddress: 127.0.0.1:4180\n\
         providers:\n- provider: oidc\n  clientID: app\n  clientSecret: the-client-secret\n\
         \x20 oidcConfig:\n    issuerURL: https://idp.example.com\n",
    )
    .expect("write");
    let legacy = dir.path().join("oauth2-proxy.cfg");
    std::fs::write(
        &legacy,
        "cookie_secret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\nemail_domains = [\"example.com\"]\n\
         redirect_url = \"https://app.example.com/oauth2/callback\"\n",
    )
    .expect("write");
    let flag = format!("--alpha-config={}", yaml.display());
    for args in [
        vec![yaml.clone().into_os_string()],
        vec![legacy.into_os_string(), "--".into(), flag.into()],
    ] {
        let out = Command::new(binary())
            .args(["convert", "--from-oauth2-proxy"])
            .args(&args)
            .output()
            .expect("run");
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{report}");
        assert!(report.contains("client_id: mapped"), "{report}");
        assert!(!report.contains("the-client-secret"), "{report}");
        let toml = String::from_utf8_lossy(&out.stdout);
        assert!(toml.contains("url = \"http://127.0.0.1:8080\""), "{toml}");
        assert!(
            toml.contains("issuer = \"https://idp.example.com\""),
            "{toml}"
        );
    }
}

/// `upstream.max_in_flight`: with the one slot held by a request the
/// upstream has not answered, the next one is shed at once (queue_timeout
/// zero) with 503, `Retry-After` and nothing sent upstream; once the slot
/// frees, requests flow again. gRPC callers get `UNAVAILABLE`.
#[tokio::test]
async fn requests_over_the_upstream_limit_are_shed_with_503_and_retry_after() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let setup = Setup::basic(port, &idp, &up_url);
    let toml = setup.toml().replace(
        "timeout = \"2s\"\n",
        "timeout = \"30s\"\nmax_in_flight = 1\nqueue_timeout = \"0s\"\n",
    );
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    assert_eq!(b.login(&tollgate.url("/"), "alice").await.status, 200);
    let seen_before = upstream.count();

    let held = held_at_gate(&tollgate, &upstream, &b).await;
    let shed = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/shed"),
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(shed.status, 503, "{}", shed.body);
    assert_eq!(
        shed.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(shed.body.contains("\"upstream_busy\""), "{}", shed.body);
    let grpc = b
        .request(
            reqwest::Method::POST,
            &tollgate.url("/svc/Method"),
            None,
            &[("content-type", "application/grpc")],
        )
        .await;
    assert_eq!(
        grpc.headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"14"[..])
    );
    assert_eq!(
        upstream.count(),
        seen_before + 1,
        "only the held request went upstream"
    );

    upstream.gate.notify_one();
    assert_eq!(held.await.expect("join").expect("held request"), 200);
    assert_eq!(b.get(&tollgate.url("/after")).await.status, 200);
}

/// A request with `b`'s cookies to `/gate`, which the upstream holds until
/// `upstream.gate` is notified; returns once the upstream has it.
async fn held_at_gate(
    tollgate: &Tollgate,
    upstream: &Upstream,
    b: &Browser,
) -> tokio::task::JoinHandle<Result<u16, reqwest::Error>> {
    let url = tollgate.url("/gate");
    let cookie = b.cookie_header(&url);
    let held = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let start = Instant::now();
    while !upstream.seen().iter().any(|s| s.path == "/gate") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held
}

/// `pages.template_file` renders tollgate's pages: the example template
/// shipped in `config/pages/page.html`, with its values, under the same
/// Content-Security-Policy as the built-in page.
#[tokio::test]
async fn a_page_template_renders_the_pages() {
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pages/page.html");
    let extra = format!(
        "[pages]\nproduct_name = \"Acme <Portal>\"\ntemplate_file = \"{}\"\n",
        template.display()
    );
    let (_idp, _upstream, tollgate) = direct(&extra, "").await;
    let page = Browser::new()
        .get(&tollgate.url("/oauth2/signed_out"))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Signed out</h1>"), "{}", page.body);
    assert!(
        page.body.contains("Signed out · Acme &lt;Portal&gt;"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"href="&#x2f;oauth2&#x2f;start?rd=%2F">Sign in</a>"#),
        "{}",
        page.body
    );
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
}
