//! Regression tests for the security review of December 2026, through the
//! running binary with the real provider (oidc-provider) or, where a real
//! provider will not misbehave on demand, the in-process one. Each test
//! names the behaviour it holds; the finding it closes is in its doc.

mod support;

use support::*;

const RULES: &str = r#"
[[routes.public]]
path = "/static/.*"

[[authorization.rules]]
name = "admins only"
path_regex = "/admin/?"
allow_groups = ["admins"]

[[authorization.rules]]
name = "everyone else"
paths = ["/"]
allow_any = true
"#;

fn get(target: &str, cookie: &str) -> Vec<u8> {
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    format!("GET {target} HTTP/1.1\r\nHost: app.test\r\n{cookie}Connection: close\r\n\r\n")
        .into_bytes()
}

/// Paths from pieces that make normalizers disagree, deterministically.
fn tricky_paths(count: usize) -> Vec<String> {
    const PIECES: [&str; 22] = [
        "/", "//", ".", "..", "%2e", "%2E%2e", ".%2e", ";", "..;", "admin", "static", "%61dmin",
        "%73tatic", "x", "%2f", "%25", "%", "ADMIN", "%7E", "~", "%C3%A9", "/.",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..count)
        .map(|_| {
            let n = 1 + (next() % 7) as usize;
            let mut p = String::from("/");
            for _ in 0..n {
                p.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            p
        })
        .collect()
}

/// Finding 1: a path whose normal form is a prefix of it (`/static/%2e%2e`,
/// `/admin/%2e`) was judged and forwarded raw. Public routes, rules and the
/// upstream now all see the one normalized path.
#[tokio::test]
async fn dot_segments_cannot_reach_a_path_that_was_not_judged() {
    let (_idp, upstream, tollgate) = direct(RULES, "").await;
    let port = tollgate.port;

    // Anonymous: `/static/%2e%2e` is `/`, which needs a login.
    for target in [
        "/static/%2e%2e?page=admin",
        "/static/..",
        "/static/.%2e/",
        "/static//..",
    ] {
        let before = upstream.count();
        let got = statuses(&raw(port, &get(target, "")).await);
        assert_eq!(got.first(), Some(&302), "{target}: {got:?}");
        assert_eq!(upstream.count(), before, "{target} reached the upstream");
    }
    // A public path that normalizes inside the route goes through, as its
    // normal form.
    let before = upstream.count();
    let got = statuses(&raw(port, &get("/static/a/./b/%2e%2e/c?q=1", "")).await);
    assert_eq!(got.first(), Some(&200));
    assert_eq!(upstream.seen()[before].path, "/static/a/c?q=1");

    // bob is not an admin: no spelling of `/admin/` lets him in.
    let mut bob = Browser::new();
    assert_eq!(bob.login(&tollgate.url("/"), "bob").await.status, 200);
    let cookie = bob.cookie_header(&tollgate.url("/"));
    for target in [
        "/admin/x/%2e%2e",
        "/admin/%2e",
        "/admin//.",
        "/admin/.",
        "/x/../admin/",
    ] {
        let before = upstream.count();
        let got = statuses(&raw(port, &get(target, &cookie)).await);
        assert_eq!(got.first(), Some(&403), "{target}: {got:?}");
        assert_eq!(upstream.count(), before, "{target} reached the upstream");
    }

    // Differential: whatever the upstream receives is a normalized path
    // that the decision allowed: never `/admin` for bob, and for an
    // anonymous client only paths under `/static/`.
    for path in tricky_paths(400) {
        for (who, cookie) in [("anonymous", ""), ("bob", cookie.as_str())] {
            let before = upstream.count();
            let got = statuses(&raw(port, &get(&path, cookie)).await);
            let status = got.first().copied().unwrap_or(0);
            let seen: Vec<Seen> = upstream.seen().into_iter().skip(before).collect();
            assert!(
                seen.len() <= 1,
                "{who} {path}: {} upstream requests",
                seen.len()
            );
            let Some(sent) = seen.first() else {
                assert_ne!(status, 200, "{who} {path}: 200 without the upstream");
                continue;
            };
            let sent = sent.path.as_str();
            let renormalized = tollgate::proxy::path::normalize(sent).map(|p| p.into_owned());
            assert_eq!(
                renormalized.as_deref(),
                Ok(sent),
                "{who} {path}: sent {sent}"
            );
            assert!(
                sent.trim_end_matches('/') != "/admin",
                "{who} {path} reached {sent}"
            );
            if who == "anonymous" {
                assert!(
                    sent.starts_with("/static/"),
                    "{path} reached {sent} without a login"
                );
            }
        }
    }
}

/// Finding 1 over HTTP/2 (`:path` carries the same target).
#[tokio::test]
async fn http2_paths_are_judged_as_forwarded() {
    let (_idp, upstream, tollgate) = direct(RULES, "").await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tollgate.port))
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    for target in ["/static/%2e%2e?page=admin", "/static/.%2E", "/static//.."] {
        let before = upstream.count();
        let req = hyper::Request::get(format!("http://127.0.0.1:{}{target}", tollgate.port))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = send.send_request(req).await.expect("response");
        assert_eq!(resp.status(), 302, "{target}");
        assert_eq!(upstream.count(), before, "{target} reached the upstream");
    }
}

/// Finding 7: forward-auth from a peer outside `trusted_proxies` was judged
/// as `GET /`, so a public `/` answered 202 for everything. Without a
/// believed original URI, public routes are not consulted and rules allow
/// only users they allow everywhere; the case is logged and counted.
#[tokio::test]
async fn forward_auth_without_a_trusted_uri_never_answers_from_public_routes() {
    let metrics_port = free_port();
    let extra = format!(
        "[[routes.public]]\npath = \"/\"\n{}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
        RULES.replace("[[routes.public]]\npath = \"/static/.*\"\n", "")
    );
    let (_idp, upstream, tollgate) = direct(&extra, "").await;
    let auth = |cookie: &str| {
        let cookie = if cookie.is_empty() {
            String::new()
        } else {
            format!("Cookie: {cookie}\r\n")
        };
        format!(
            "GET /oauth2/auth HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Uri: /\r\n\
             X-Original-URI: /\r\nAccept: application/json\r\n{cookie}Connection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let anonymous = statuses(&raw(tollgate.port, &auth("")).await);
    assert_eq!(
        anonymous.first(),
        Some(&401),
        "a claimed public URI from an untrusted peer"
    );

    let mut bob = Browser::new();
    assert_eq!(bob.login(&tollgate.url("/x"), "bob").await.status, 200);
    let bob_cookie = bob.cookie_header(&tollgate.url("/"));
    let got = statuses(&raw(tollgate.port, &auth(&bob_cookie)).await);
    assert_eq!(got.first(), Some(&403), "bob is not allowed on every path");

    let mut alice = Browser::new();
    assert_eq!(alice.login(&tollgate.url("/x"), "alice").await.status, 200);
    let alice_cookie = alice.cookie_header(&tollgate.url("/"));
    let got = statuses(&raw(tollgate.port, &auth(&alice_cookie)).await);
    assert_eq!(got.first(), Some(&202), "alice is allowed on every path");

    assert!(tollgate.output.has("without a trusted X-Forwarded-Uri"));
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_forward_auth_untrusted_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(count, Some(3), "{text}");
    let _ = upstream;
}

/// The `Cookie` header(s) the upstream received since `before`.
fn upstream_cookies(upstream: &Upstream, before: usize) -> Vec<Vec<String>> {
    upstream
        .seen()
        .iter()
        .skip(before)
        .map(|s| {
            s.header_all("cookie")
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Finding 3: one non-ASCII byte in `Cookie` made tollgate ignore the whole
/// header: the user could not log in, sign-out could not revoke, and on
/// public routes the sealed session went upstream. Cookies are now read and
/// stripped from bytes, a bad pair skipped alone.
#[tokio::test]
async fn a_non_ascii_cookie_neither_hides_the_session_nor_leaks_it() {
    let (_idp, upstream, tollgate) = direct(RULES, "").await;
    let mut alice = Browser::new();
    alice.set_cookie("lang", "café");
    let page = alice.login(&tollgate.url("/x"), "alice").await;
    assert_eq!(
        page.status, 200,
        "login with a UTF-8 cookie beside: {}",
        page.body
    );
    // (The provider's own cookies share the host 127.0.0.1, so they come
    // along, as they would in a browser.)
    let seen = upstream.last().header_all("cookie").join("; ");
    assert!(seen.starts_with("lang=café"), "{seen}");
    assert!(!seen.contains("_tollgate"), "session leaked: {seen}");

    let session = alice.cookie_header(&tollgate.url("/"));
    let before = upstream.count();
    // Latin-1 (not UTF-8), and the cookies split over two headers as
    // HTTP/2 clients send them.
    let mut req = b"GET /x HTTP/1.1\r\nHost: app.test\r\nCookie: lang=caf\xe9; ".to_vec();
    req.extend_from_slice(session.as_bytes());
    req.extend_from_slice(b"\r\nCookie: theme=dark\r\nConnection: close\r\n\r\n");
    assert_eq!(
        statuses(&raw(tollgate.port, &req).await).first(),
        Some(&200)
    );
    // A public route: the session is stripped there too.
    let mut req = b"GET /static/a HTTP/1.1\r\nHost: app.test\r\nCookie: lang=caf\xe9; ".to_vec();
    req.extend_from_slice(session.as_bytes());
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    assert_eq!(
        statuses(&raw(tollgate.port, &req).await).first(),
        Some(&200)
    );
    let sent = upstream_cookies(&upstream, before);
    assert_eq!(sent.len(), 2);
    for cookies in &sent {
        assert_eq!(cookies.len(), 1, "one Cookie header upstream: {cookies:?}");
        assert!(
            !cookies[0].contains("_tollgate"),
            "session leaked: {cookies:?}"
        );
        assert!(cookies[0].starts_with("lang=caf"), "{cookies:?}");
    }
    assert!(sent[0][0].ends_with("; theme=dark"), "{:?}", sent[0]);

    // Sign-out with the café cookie present revokes the session.
    let out = alice.sign_out(&tollgate.url("/oauth2/sign_out")).await;
    assert_eq!(out.status, 302);
    let replay = format!(
        "GET /x HTTP/1.1\r\nHost: app.test\r\nCookie: lang=café; {session}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        statuses(&raw(tollgate.port, replay.as_bytes()).await).first(),
        Some(&302)
    );
}

// === against the in-process provider ===

mod evil_world {
    use super::support::evil::{Client, ClientCheck, EvilOp, World, WorldSetup};
    use super::support::*;

    pub const CLIENT: &str = "tollgate";
    /// Long enough for HS256 (RFC 7518 §3.2: at least 32 bytes).
    pub const SECRET: &str = "a-client-secret-that-is-32-bytes-or-more";

    /// The misbehaving provider (well-behaved by default), the recording
    /// upstream and tollgate with `provider` keys added to `[provider]` and
    /// `extra` TOML at the end.
    pub async fn start(provider: &str, extra: &str) -> (EvilOp, Upstream, Tollgate) {
        start_with(provider, extra, "", "").await
    }

    /// As [`start`], with `session` keys in `[session]` and `server` keys
    /// in `[server]`.
    pub async fn start_with(
        provider: &str,
        extra: &str,
        session: &str,
        server: &str,
    ) -> (EvilOp, Upstream, Tollgate) {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{SECRET}"));
        let client = Client {
            check: ClientCheck::Basic(format!("Basic {basic}")),
            id: CLIENT,
            secret: Some(SECRET),
            auth: "client_secret_basic",
        };
        let setup = WorldSetup {
            provider,
            session,
            server,
            extra,
            ..WorldSetup::default()
        };
        let w = World::start(client, setup).await;
        (w.op, w.upstream, w.tollgate)
    }
}

fn access_claims(issuer: &str, aud: &str) -> serde_json::Map<String, serde_json::Value> {
    let t = support::evil::now();
    serde_json::json!({
        "iss": issuer, "sub": "mallory", "aud": aud, "iat": t, "exp": t + 300,
        "groups": ["admins"], "email": "mallory@example.com",
    })
    .as_object()
    .cloned()
    .expect("map")
}

async fn bearer(tollgate: &Tollgate, token: &str) -> u16 {
    tollgate.bearer_status("/api", token).await
}

/// Finding 4: with `HS256` among the ID-token algorithms, a bearer JWT MAC'd
/// with the client secret (which every replica holds) was accepted as any
/// user. Bearer tokens now have their own list, asymmetric only.
#[tokio::test]
async fn bearer_tokens_never_accept_a_mac_keyed_with_the_client_secret() {
    use support::evil::Sign;
    let (op, upstream, tollgate) = evil_world::start(
        "id_token_algorithms = [\"RS256\", \"HS256\"]",
        "[authorization]\nbearer_audiences = [\"api\"]\n",
    )
    .await;
    let claims = access_claims(&op.issuer, "api");
    let forged = op.jwt(
        |_| {},
        &claims,
        &Sign::Hs256(evil_world::SECRET.as_bytes().to_vec()),
    );
    let before = upstream.count();
    assert_eq!(bearer(&tollgate, &forged).await, 401);
    assert_eq!(
        upstream.count(),
        before,
        "a forged token reached the upstream"
    );
    let line = tollgate.output.new_lines("bearer_refused", 0).concat();
    assert!(
        line.contains("bearer token: algorithm `HS256` is not allowed"),
        "{line}"
    );
    assert!(
        !line.contains("ID token"),
        "the audit line names the wrong token: {line}"
    );

    let genuine = op.jwt(|_| {}, &claims, &Sign::K1);
    assert_eq!(bearer(&tollgate, &genuine).await, 200);
}

/// Finding 9: anyone could spend the one JWKS refetch per 10 s with a
/// bearer token naming a made-up `kid`, so logins failed after a real key
/// rotation. ID tokens from the token endpoint now always get their
/// refetch; bearer and logout tokens have a budget of their own.
#[tokio::test]
async fn made_up_key_ids_cannot_hold_back_a_key_rotation() {
    use support::evil::{sign_in, Behaviour, Sign};
    let (op, upstream, tollgate) =
        evil_world::start("", "[authorization]\nbearer_audiences = [\"api\"]\n").await;
    let claims = access_claims(&op.issuer, "api");
    let made_up = |kid: &str| {
        let kid = kid.to_string();
        op.jwt(
            move |h| {
                h.insert("kid".into(), kid.clone().into());
            },
            &claims,
            &Sign::K1,
        )
    };
    let fetched = op.count("jwks");
    assert_eq!(bearer(&tollgate, &made_up("nobody-1")).await, 401);
    assert_eq!(
        op.count("jwks"),
        fetched + 1,
        "one refetch for an unknown kid"
    );
    assert_eq!(bearer(&tollgate, &made_up("nobody-2")).await, 401);
    assert_eq!(op.count("jwks"), fetched + 1, "the bearer budget is spent");

    // The provider rotates to k2; the next login's ID token names it.
    op.set(Behaviour {
        sign: Sign::Key("k2"),
        jwks: Some(std::sync::Arc::new(
            |k: &support::evil::Keys| serde_json::json!({"keys": [k.k2.jwk()]}),
        )),
        ..Behaviour::default()
    });
    let mut b = Browser::new();
    let callback = sign_in(&mut b, &tollgate.url("/after-rotation")).await;
    assert_eq!(callback.status, 302, "{}", tollgate.output.text());
    assert_eq!(b.get(&tollgate.url("/after-rotation")).await.status, 200);
    assert_eq!(upstream.last().path, "/after-rotation");
    assert_eq!(op.count("jwks"), fetched + 2);
}

/// Suspected in the review, confirmed: a logout token with `"nonce": null`
/// was read as having none (OIDC Back-Channel Logout §2.4: it MUST NOT
/// contain one). And logout tokens, which anyone can post, never accept a
/// MAC keyed with the client secret.
#[tokio::test]
async fn logout_tokens_with_a_null_nonce_or_a_mac_are_refused() {
    use support::evil::Sign;
    let (op, _upstream, tollgate) =
        evil_world::start("id_token_algorithms = [\"RS256\", \"HS256\"]", "").await;
    let t = support::evil::now();
    let claims = |nonce: bool| {
        let mut m = serde_json::json!({
            "iss": op.issuer, "sub": "alice", "aud": evil_world::CLIENT, "jti": random_hex(),
            "sid": "s1", "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            "iat": t, "exp": t + 120,
        });
        if nonce {
            m["nonce"] = serde_json::Value::Null;
        }
        m.as_object().cloned().expect("map")
    };
    let typed = |h: &mut serde_json::Map<String, serde_json::Value>| {
        h.insert("typ".into(), "logout+jwt".into());
    };
    let post = |token: String| {
        let url = tollgate.url("/oauth2/backchannel_logout");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("logout_token={token}"))
                .send()
                .await
                .expect("post");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (status, body) = post(op.jwt(typed, &claims(true), &Sign::K1)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nonce"), "{body}");
    let mac = Sign::Hs256(evil_world::SECRET.as_bytes().to_vec());
    let (status, body) = post(op.jwt(typed, &claims(false), &mac)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("logout token: algorithm `HS256` is not allowed"),
        "{body}"
    );
    let (status, body) = post(op.jwt(typed, &claims(false), &Sign::K1)).await;
    assert_eq!(status, 200, "a good logout token still passes: {body}");
}

/// Finding 6: with two `Authorization` headers only the first was checked
/// and both were forwarded. RFC 9110 §11.6.2 allows one set of credentials.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let (_op, upstream, tollgate) =
        evil_world::start("", "[[routes.public]]\npath = \"/static/.*\"\n").await;
    let before = upstream.count();
    for target in ["/static/a", "/x"] {
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer a\r\n\
             Authorization: Basic Yjpj\r\nConnection: close\r\n\r\n"
        );
        let got = statuses(&raw(tollgate.port, req.as_bytes()).await);
        assert_eq!(got.first(), Some(&400), "{target}");
    }
    assert_eq!(upstream.count(), before);
}

/// Finding 8: forwarding-style headers from the client reached the
/// upstream, and `Connection: Host` removed the `Host` header.
#[tokio::test]
async fn forwarding_headers_from_the_client_never_reach_the_upstream() {
    let (_op, upstream, tollgate) =
        evil_world::start("", "[[routes.public]]\npath = \"/static/.*\"\n").await;
    const SPOOFED: [&str; 16] = [
        "X-Forwarded-Prefix",
        "X-Original-URI",
        "X-Forwarded-Method",
        "X-Forwarded-Uri",
        "X-Forwarded-Port",
        "Forwarded",
        "X-Original-Method",
        "X-Original-Host",
        "X-Forwarded-Server",
        "X-Forwarded-Ssl",
        "X-Forwarded-Scheme",
        "X-Client-IP",
        "True-Client-IP",
        "CF-Connecting-IP",
        "X-Scheme",
        "Front-End-Https",
    ];
    let mut req = String::from("GET /static/a HTTP/1.1\r\nHost: app.test\r\n");
    for h in SPOOFED {
        req.push_str(&format!("{h}: evil\r\n"));
    }
    req.push_str("Connection: close, Host, X-Request-Id, Content-Length\r\n");
    req.push_str("X-Request-Id: r-1\r\n\r\n");
    let text = raw(tollgate.port, req.as_bytes()).await;
    assert_eq!(statuses(&text).first(), Some(&200), "{text}");
    let seen = upstream.last();
    for h in SPOOFED {
        for v in seen.header_all(h) {
            assert_ne!(v, "evil", "{h} reached the upstream");
        }
    }
    assert_eq!(seen.header("host"), Some("app.test"));
    assert_eq!(seen.header("x-forwarded-host"), Some("app.test"));
    assert_eq!(seen.header("x-request-id"), Some("r-1"));
    assert_eq!(
        seen.header_all("forwarded"),
        vec!["for=127.0.0.1;host=\"app.test\";proto=http"]
    );
    let port = tollgate.port.to_string();
    assert_eq!(seen.header("x-forwarded-port"), Some(port.as_str()));
}

/// Finding 5: sign-out deleted the Redis record without the refresh lock,
/// and a refresh already under way wrote it back. Refreshes now rewrite a
/// record only while it exists (`SET … XX`). Each round holds the
/// provider's refresh answer until the sign-out has completed, so the race
/// is decided the same way every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_under_way_cannot_bring_a_signed_out_session_back() {
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;
    use support::evil::{hook, sign_in, Behaviour};
    let redis = Redis::start().await;
    let session = format!(
        "store = \"redis\"\n[session.redis]\nurl = \"{}\"",
        redis.url()
    );
    let (op, upstream, tollgate) = evil_world::start_with("", "", &session, "").await;
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    op.set(Behaviour {
        // Every access token is due for refresh (session.refresh_before 60s).
        expires_in: Some(30),
        // Held on this worker thread; `block_in_place` hands the worker's
        // other tasks (the provider's other connections) to the rest.
        refresh_claims: hook(move |_| {
            tokio::task::block_in_place(|| {
                let _ = held
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_secs(10)));
            });
        }),
        ..Behaviour::default()
    });
    for round in 0..10 {
        let mut b = Browser::new();
        assert_eq!(sign_in(&mut b, &tollgate.url("/x")).await.status, 302);
        let cookie = b.cookie_header(&tollgate.url("/"));
        let grants = op.count("token");
        let before = upstream.count();
        let port = tollgate.port;
        let pending = tokio::spawn(async move { raw(port, &get("/x", &cookie)).await });
        // The refresh has reached the provider, which now holds its answer.
        for _ in 0..1000 {
            if op.count("token") > grants {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            op.count("token"),
            grants + 1,
            "round {round}: no refresh began"
        );
        assert_eq!(
            b.sign_out(&tollgate.url("/oauth2/sign_out")).await.status,
            302
        );
        release.send(()).expect("release");
        let answer = pending.await.expect("request");
        assert_ne!(
            statuses(&answer).first(),
            Some(&200),
            "round {round}: {answer}\n{}",
            tollgate.output.text()
        );
        assert_eq!(
            upstream.count(),
            before,
            "round {round}: reached the upstream"
        );
        let cookie = b.cookie_header(&tollgate.url("/"));
        let again = statuses(&raw(port, &get("/x", &cookie)).await);
        assert_eq!(
            again.first(),
            Some(&302),
            "round {round}: the session came back"
        );
    }
}

/// Finding 2: a connection that sent nothing was never closed (no timer on
/// the first byte or on protocol detection; HTTP/2 connections answering
/// PINGs lived forever), so `max_connections` silent sockets locked
/// everyone out. Now: the first request within `header_read_timeout`, an
/// idle limit between requests, and a per-client connection cap. The read
/// bounds below only turn a hang into a failure.
#[tokio::test]
async fn silent_connections_are_closed_and_cannot_lock_everyone_out() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let server = "header_read_timeout = \"1s\"\nidle_timeout = \"1s\"\n\
                  max_connections = 20\nmax_connections_per_client = 4";
    let (_op, upstream, tollgate) =
        evil_world::start_with("", "[[routes.public]]\npath = \"/static/.*\"\n", "", server).await;
    let connect = || tokio::net::TcpStream::connect(("127.0.0.1", tollgate.port));
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .is_ok()
    };
    // Four silent sockets fill this client's share; a fifth is closed at
    // once, unanswered.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(connect().await.expect("connect"));
    }
    let fifth = connect().await.expect("connect");
    assert!(
        closed(fifth).await,
        "the per-client cap did not close a fifth socket"
    );
    // The silent ones are closed by the server, with nothing sent.
    for s in silent {
        assert!(closed(s).await, "a silent connection was never closed");
    }
    // And the client is served again.
    let got = statuses(&raw(tollgate.port, &get("/static/a", "")).await);
    assert_eq!(got.first(), Some(&200));

    // HTTP/2: one request, then an idle connection whose client answers
    // every PING: closed (GOAWAY) once idle.
    let tcp = connect().await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(format!("http://127.0.0.1:{}/static/b", tollgate.port))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    assert_eq!(
        send.send_request(req).await.expect("response").status(),
        200
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection was never closed");
    assert_eq!(upstream.count(), 2);
}

/// Finding 2, the other half: `max_requests_per_connection` closes a
/// keep-alive connection after that many requests.
#[tokio::test]
async fn a_connection_carries_at_most_max_requests() {
    let server = "max_requests_per_connection = 3";
    let (_op, _upstream, tollgate) =
        evil_world::start_with("", "[[routes.public]]\npath = \"/static/.*\"\n", "", server).await;
    let one = "GET /static/a HTTP/1.1\r\nHost: app.test\r\n\r\n";
    let text = raw(tollgate.port, one.repeat(5).as_bytes()).await;
    assert_eq!(statuses(&text), vec![200, 200, 200], "{text}");
}

/// Suspected in the review, confirmed: when the cookie store's logout
/// memory was full it forgot the entry closest to expiry, so a user looping
/// login → sign-out could push out a victim's recent sign-out and revive a
/// cookie copied before it. A live entry is now never forgotten.
#[tokio::test]
async fn a_login_loop_cannot_push_out_another_users_sign_out() {
    use serde_json::{json, Map, Value};
    use support::evil::{hook, sign_in, Behaviour};
    let (op, _upstream, tollgate) =
        evil_world::start_with("", "", "max_remembered_logouts = 20", "").await;
    let as_user = |sub: &'static str| {
        let set = move |m: &mut Map<String, Value>| {
            m.insert("sub".into(), json!(sub));
        };
        Behaviour {
            claims: hook(set),
            userinfo: hook(set),
            ..Behaviour::default()
        }
    };
    op.set(as_user("victim"));
    let mut victim = Browser::new();
    assert_eq!(sign_in(&mut victim, &tollgate.url("/x")).await.status, 302);
    let copied = victim.cookie_header(&tollgate.url("/"));
    assert_eq!(
        statuses(&raw(tollgate.port, &get("/x", &copied)).await).first(),
        Some(&200)
    );
    let out = victim.sign_out(&tollgate.url("/oauth2/sign_out")).await;
    assert_eq!(out.status, 302);

    op.set(as_user("mallory"));
    for _ in 0..40 {
        let mut b = Browser::new();
        assert_eq!(sign_in(&mut b, &tollgate.url("/x")).await.status, 302);
        assert_eq!(
            b.sign_out(&tollgate.url("/oauth2/sign_out")).await.status,
            302
        );
    }
    let replay = statuses(&raw(tollgate.port, &get("/x", &copied)).await);
    assert_eq!(
        replay.first(),
        Some(&302),
        "the victim's sign-out was forgotten"
    );
    assert!(tollgate.output.has("revocation_merged"));
}

/// Suspected in the review, confirmed: a `__Host-` cookie name could not be
/// used, because login cookies had `Path=/oauth2/callback` and browsers
/// drop `__Host-` cookies without `Path=/`. Login cookies now take `Path=/`
/// with such a name, and the configuration refuses what browsers would
/// drop. The test browser's jar enforces the prefixes as browsers do.
#[tokio::test]
async fn a_host_prefixed_cookie_name_logs_in_and_out() {
    use serde_json::json;
    use support::evil::{hook, sign_in, Behaviour};
    let (op, upstream, tollgate) =
        evil_world::start_with("", "", "cookie_name = \"__Host-tg\"\nsecure = true", "").await;
    // Enough groups to split the session over several cookies.
    let groups: Vec<String> = (0..150)
        .map(|i| format!("group-with-a-long-name-{i:03}"))
        .collect();
    op.set(Behaviour {
        claims: hook(move |m: &mut serde_json::Map<String, serde_json::Value>| {
            m.insert("groups".into(), json!(groups));
        }),
        ..Behaviour::default()
    });
    let mut b = Browser::new();
    let start = b.get(&tollgate.url("/x")).await;
    for c in start.set_cookies() {
        assert!(
            c.starts_with("__Host-tg_login_") && c.contains("Path=/;"),
            "{c}"
        );
    }
    let callback = sign_in(&mut b, &tollgate.url("/x")).await;
    assert_eq!(callback.status, 302, "{}", tollgate.output.text());
    let names = b.cookie_names();
    assert!(
        names.iter().any(|n| n == "__Host-tg_0") && names.iter().any(|n| n == "__Host-tg_1"),
        "{names:?}"
    );
    assert_eq!(b.get(&tollgate.url("/x")).await.status, 200);
    let sent = upstream.last().header_all("cookie").join("; ");
    assert!(
        !sent.contains("__Host-tg"),
        "tollgate's cookies reached the upstream: {sent}"
    );
    assert_eq!(
        b.sign_out(&tollgate.url("/oauth2/sign_out")).await.status,
        302
    );
    assert_eq!(b.get(&tollgate.url("/x")).await.status, 302);
}

/// The keep-alive limit must not spoil a WebSocket upgrade: a 101 that is
/// a connection's last allowed request keeps its `Connection: upgrade`.
#[tokio::test]
async fn an_upgrade_at_the_request_limit_still_upgrades() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (_op, _upstream, tollgate) = evil_world::start_with(
        "",
        "[[routes.public]]\npath = \"/ws\"\n",
        "",
        "max_requests_per_connection = 1",
    )
    .await;
    let url = format!("ws://127.0.0.1:{}/ws", tollgate.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the upgrade on a connection's only request");
    ws.send(Message::text("ping")).await.expect("send");
    let echo = ws.next().await.expect("an answer").expect("a message");
    assert_eq!(echo.into_text().expect("text").as_str(), "ping");
}
