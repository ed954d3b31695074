//! The browser login flow against the real provider (oidc-provider), a real
//! upstream and the tollgate binary.

mod support;

use support::*;

struct World {
    idp: Idp,
    upstream: Upstream,
    tollgate: Tollgate,
}

async fn world_with(client_id: &str, secret: Option<&str>, auth: &str, extra: &str) -> World {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let setup = Setup {
        port,
        issuer: &idp.issuer,
        upstream: &upstream.url(),
        client_id,
        client_secret: secret,
        client_auth: auth,
        extra,
        session: "",
        server: "",
        public_url: None,
    };
    let tollgate = Tollgate::start(&setup).await;
    World {
        idp,
        upstream,
        tollgate,
    }
}

async fn world() -> World {
    world_with(
        "tollgate-basic",
        Some(BASIC_SECRET),
        "client_secret_basic",
        "",
    )
    .await
}

/// A session cookie was set with a value (not a removal).
fn sets_session(page: &Page) -> bool {
    page.set_cookies().iter().any(|c| {
        (c.starts_with("_tollgate=") || c.starts_with("_tollgate_0=")) && !c.contains("Max-Age=0")
    })
}

/// A refused callback: a 400 page, no session, nothing reached the upstream.
async fn assert_refused(w: &World, page: &Page, upstream_before: usize) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        !sets_session(page),
        "a session cookie was set: {:?}",
        page.set_cookies()
    );
    assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    assert_eq!(
        w.upstream.count(),
        upstream_before,
        "the upstream was called"
    );
}

async fn login_lands_on_upstream(client_id: &str, secret: Option<&str>, auth: &str) {
    let w = world_with(client_id, secret, auth, "").await;
    let mut b = Browser::new();
    b.set_cookie("app_pref", "dark");
    let page = b.login(&w.tollgate.url("/dashboard?tab=1"), "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.url.ends_with("/dashboard?tab=1"),
        "landed on {}",
        page.url
    );
    let seen = w.upstream.last();
    assert_eq!(seen.path, "/dashboard?tab=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-forwarded-preferred-username"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,dev"));
    assert!(seen
        .header("x-forwarded-access-token")
        .is_some_and(|t| t.len() > 10));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{}", w.tollgate.port).as_str())
    );
    let cookie = seen.header("cookie").unwrap_or_default();
    assert!(
        cookie.contains("app_pref=dark"),
        "app cookie lost: {cookie}"
    );
    assert!(
        !cookie.contains("_tollgate"),
        "tollgate's cookie went upstream: {cookie}"
    );
    assert_eq!(w.idp.token_requests().await, 1);
}

#[tokio::test]
async fn login_with_client_secret_basic_and_a_secret_full_of_separators() {
    // The secret holds `:`, `%`, `+`, `&`, `=` and a space; the provider
    // answers 400 to a Basic header that does not form-urlencode it.
    login_lands_on_upstream("tollgate-basic", Some(BASIC_SECRET), "client_secret_basic").await;
}

#[tokio::test]
async fn login_with_client_secret_post() {
    login_lands_on_upstream("tollgate-post", Some(POST_SECRET), "client_secret_post").await;
}

#[tokio::test]
async fn login_as_public_client_with_pkce_only() {
    login_lands_on_upstream("tollgate-public", None, "none").await;
}

#[tokio::test]
async fn two_logins_in_parallel_tabs_both_complete() {
    let w = world().await;
    let mut b = Browser::new();
    // Both tabs are sent to the provider before either comes back.
    let first = b.get(&w.tollgate.url("/first")).await;
    let second = b.get(&w.tollgate.url("/second")).await;
    assert_eq!((first.status, second.status), (302, 302));
    let logins = b
        .cookie_names()
        .iter()
        .filter(|n| n.contains("_login_"))
        .count();
    assert_eq!(logins, 2, "each tab has its own login cookie");
    let cb_second = b
        .until_callback(second.location().expect("loc"), "alice")
        .await;
    let cb_first = b
        .until_callback(first.location().expect("loc"), "alice")
        .await;
    let done_second = b.follow(&cb_second).await;
    let done_first = b.follow(&cb_first).await;
    assert!(
        done_second.url.ends_with("/second") && done_second.status == 200,
        "{done_second:?}"
    );
    assert!(
        done_first.url.ends_with("/first") && done_first.status == 200,
        "{done_first:?}"
    );
    assert!(
        b.cookie_names().iter().all(|n| !n.contains("_login_")),
        "login cookies are spent"
    );
}

#[tokio::test]
async fn websocket_is_authenticated_then_tunnelled() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

    let w = world().await;
    let url = format!("ws://127.0.0.1:{}/ws", w.tollgate.port);

    // Without a session the handshake is refused and nothing reaches the upstream.
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    assert!(refused.is_err());
    assert_eq!(w.upstream.count(), 0);

    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let mut req = url.as_str().into_client_request().expect("request");
    req.headers_mut().insert(
        "cookie",
        b.cookie_header(&w.tollgate.url("/ws"))
            .parse()
            .expect("cookie"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake through tollgate");
    ws.send(Message::text("hello through tollgate"))
        .await
        .expect("send");
    let echo = ws.next().await.expect("a message").expect("ok");
    assert_eq!(
        echo.into_text().expect("text").as_str(),
        "hello through tollgate"
    );
    assert_eq!(w.upstream.last().header("x-forwarded-user"), Some("alice"));
}

#[tokio::test]
async fn session_larger_than_a_cookie_is_chunked_and_reassembled() {
    let w = world().await;
    let mut b = Browser::new();
    let page = b.login(&w.tollgate.url("/"), "biggroups").await;
    assert_eq!(page.status, 200);
    let chunks: Vec<String> = b
        .cookie_names()
        .into_iter()
        .filter(|n| n.starts_with("_tollgate_"))
        .collect();
    assert!(chunks.len() >= 2, "expected chunks, got {chunks:?}");
    assert!(b.cookie("_tollgate").is_none());
    // Each of the 150 group names is an LDAP DN (which itself holds commas).
    let groups = w
        .upstream
        .last()
        .header("x-forwarded-groups")
        .map(|g| g.matches("cn=").count());
    assert_eq!(groups, Some(150));

    // Another request works from the reassembled cookie.
    let again = b.get(&w.tollgate.url("/again")).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        w.upstream.last().header("x-forwarded-user"),
        Some("biggroups")
    );
}

#[tokio::test]
async fn sign_out_ends_the_session_here_and_at_the_provider() {
    let w = world().await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let out = b
        .sign_out(&w.tollgate.url("/oauth2/sign_out?rd=/bye"))
        .await;
    assert_eq!(out.status, 302);
    let loc = out.location().expect("location");
    assert!(
        loc.starts_with(&format!("{}/session/end", w.idp.issuer)),
        "{loc}"
    );
    assert!(
        loc.contains("id_token_hint=") && loc.contains("post_logout_redirect_uri="),
        "{loc}"
    );
    assert!(
        b.cookie_names().iter().all(|n| !n.starts_with("_tollgate")),
        "{:?}",
        b.cookie_names()
    );

    let before = w.upstream.count();
    let next = b.get(&w.tollgate.url("/")).await;
    assert_eq!(next.status, 302);
    assert!(
        next.location().expect("loc").starts_with(&w.idp.issuer),
        "not sent to login"
    );
    assert_eq!(w.upstream.count(), before);
}

#[tokio::test]
async fn signed_out_page_offers_a_new_sign_in() {
    let w = world().await;
    let page = Browser::new()
        .get(&w.tollgate.url("/oauth2/signed_out"))
        .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("signed out") && page.body.contains("/oauth2/start"),
        "{}",
        page.body
    );
}

/// The page does not claim "signed out" while the session is valid: it
/// says who is still signed in and offers the sign-out button; after
/// signing out it says "signed out".
#[tokio::test]
async fn signed_out_page_tells_the_truth_about_a_live_session() {
    let w = world().await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let page = b.get(&w.tollgate.url("/oauth2/signed_out")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("still signed in as alice@example.com")
            && page.body.contains("action=\"/oauth2/sign_out"),
        "{}",
        page.body
    );
    b.sign_out(&w.tollgate.url("/oauth2/sign_out")).await;
    let page = b.get(&w.tollgate.url("/oauth2/signed_out")).await;
    assert!(page.body.contains("You are signed out"), "{}", page.body);
}

/// security-cases LO-06 / D-8: another site cannot sign the user out.
#[tokio::test]
async fn sign_out_needs_proof_it_comes_from_this_site() {
    let w = world().await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let url = w.tollgate.url("/oauth2/sign_out?rd=/bye");
    let signed_in = |p: &Page| !p.set_cookies().iter().any(|c| c.starts_with("_tollgate"));
    for (what, method, headers) in [
        (
            "an <img> on another site",
            reqwest::Method::GET,
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "a same-site sibling",
            reqwest::Method::GET,
            vec![("sec-fetch-site", "same-site")],
        ),
        (
            "a client without fetch metadata",
            reqwest::Method::GET,
            vec![],
        ),
    ] {
        let page = b.request(method, &url, None, &headers).await;
        assert_eq!(page.status, 200, "{what}");
        assert!(
            page.body
                .contains(r#"<form method="post" action="/oauth2/sign_out?rd=%2Fbye">"#),
            "{what}: {}",
            page.body
        );
        assert!(signed_in(&page), "{what}: cookies cleared");
    }
    for (what, headers) in [
        ("a cross-site form", vec![("sec-fetch-site", "cross-site")]),
        ("a foreign Origin", vec![("origin", "https://evil.test")]),
    ] {
        let page = b
            .request(reqwest::Method::POST, &url, Some(&[]), &headers)
            .await;
        assert_eq!(page.status, 403, "{what}");
        assert!(signed_in(&page), "{what}: cookies cleared");
    }
    assert_eq!(b.get(&w.tollgate.url("/still-in")).await.status, 200);
    // The confirmation page's button: a same-origin POST.
    let page = b
        .request(
            reqwest::Method::POST,
            &url,
            Some(&[]),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(
        b.get(&w.tollgate.url("/after")).await.status,
        302,
        "signed out"
    );
}

#[tokio::test]
async fn api_request_without_session_gets_401_json() {
    let w = world().await;
    let mut b = Browser::new();
    for headers in [
        vec![("accept", "application/json")],
        vec![("x-requested-with", "XMLHttpRequest")],
        vec![("sec-fetch-mode", "cors"), ("accept", "*/*")],
    ] {
        let page = b
            .request(
                reqwest::Method::GET,
                &w.tollgate.url("/api/items"),
                None,
                &headers,
            )
            .await;
        assert_eq!(page.status, 401, "{headers:?}");
        let body: serde_json::Value = serde_json::from_str(&page.body).expect("json body");
        assert_eq!(body["error"], "unauthorized");
    }
    // `Accept: */*` is a browser: redirect to login.
    b.accept = "*/*";
    assert_eq!(b.get(&w.tollgate.url("/api/items")).await.status, 302);
    assert_eq!(w.upstream.count(), 0);

    let me = b
        .request(
            reqwest::Method::GET,
            &w.tollgate.url("/oauth2/userinfo"),
            None,
            &[],
        )
        .await;
    assert_eq!(me.status, 401);
}

#[tokio::test]
async fn userinfo_returns_the_session_identity() {
    let w = world().await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let page = b.get(&w.tollgate.url("/oauth2/userinfo")).await;
    assert_eq!(page.status, 200);
    let v: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["email"], "alice@example.com");
    assert_eq!(v["preferredUsername"], "alice");
    assert_eq!(v["groups"], serde_json::json!(["admins", "dev"]));
}

// === refused callbacks ===

#[tokio::test]
async fn callback_with_a_different_state_is_refused_before_the_code_is_redeemed() {
    let w = world().await;
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/")).await;
    let cb = b
        .until_callback(start.location().expect("loc"), "alice")
        .await;
    let mut url = url::Url::parse(&cb).expect("url");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in pairs {
            // Same 16-character prefix, so the login cookie is found; the rest differs.
            let v = if k == "state" {
                format!("{}{}", &v[..16], "x".repeat(v.len() - 16))
            } else {
                v
            };
            q.append_pair(&k, &v);
        }
    }
    let tokens = w.idp.token_requests().await;
    let page = b.get(url.as_str()).await;
    assert_refused(&w, &page, 0).await;
    assert_eq!(
        w.idp.token_requests().await,
        tokens,
        "the code was redeemed"
    );
    assert!(w.tollgate.output.has("state_mismatch"));
}

#[tokio::test]
async fn callback_without_the_login_cookie_is_refused() {
    let w = world().await;
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/")).await;
    let cb = b
        .until_callback(start.location().expect("loc"), "alice")
        .await;
    b.remove_cookies(|n| n.contains("_login_"));
    let tokens = w.idp.token_requests().await;
    let page = b.get(&cb).await;
    assert_refused(&w, &page, 0).await;
    assert_eq!(w.idp.token_requests().await, tokens);
    // A different browser (the attacker's) cannot use the callback either.
    let page = Browser::new().get(&cb).await;
    assert_refused(&w, &page, 0).await;
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let w = world().await;
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/")).await;
    let cb = b
        .until_callback(start.location().expect("loc"), "alice")
        .await;
    let login_cookie: Vec<(String, String)> = b
        .cookie_names()
        .into_iter()
        .filter(|n| n.contains("_login_"))
        .map(|n| (n.clone(), b.cookie(&n).expect("value")))
        .collect();
    let ok = b.follow(&cb).await;
    assert_eq!(ok.status, 200);
    let upstream = w.upstream.count();

    // The login cookie is spent: replaying the callback is refused.
    let mut replay = Browser::new();
    let page = replay.get(&cb).await;
    assert_refused(&w, &page, upstream).await;

    // Even with a copy of the login cookie, the code is single-use.
    for (n, v) in &login_cookie {
        replay.set_cookie(n, v);
    }
    let page = replay.get(&cb).await;
    assert_refused(&w, &page, upstream).await;
    assert!(w.tollgate.output.has("code_refused"));
}

#[tokio::test]
async fn callback_with_a_wrong_issuer_is_refused_before_the_code_is_redeemed() {
    let w = world().await;
    let mut b = Browser::new();
    let mut tokens = 0;
    // A wrong `iss`, and none at all (the provider promises to send it).
    for (from, to) in [
        ("iss=", "iss=https%3A%2F%2Fevil.test&x="),
        ("iss=", "xiss="),
    ] {
        let start = b.get(&w.tollgate.url("/")).await;
        let cb = b
            .until_callback(start.location().expect("loc"), "alice")
            .await;
        tokens = w.idp.token_requests().await;
        let forged = cb.replacen(from, to, 1);
        let page = b.get(&forged).await;
        assert_refused(&w, &page, 0).await;
    }
    assert_eq!(
        w.idp.token_requests().await,
        tokens,
        "the code was redeemed"
    );
    assert!(
        w.tollgate.output.has("iss_mismatch") && w.tollgate.output.has("iss_missing"),
        "{}",
        w.tollgate.output.text()
    );
}

#[tokio::test]
async fn provider_error_in_the_callback_is_a_clean_page() {
    let w = world().await;
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/")).await;
    let state = url::Url::parse(start.location().expect("loc"))
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let iss: String = url::form_urlencoded::byte_serialize(w.idp.issuer.as_bytes()).collect();
    let page = b
        .get(&w.tollgate.url(&format!(
            "/oauth2/callback?error=access_denied<script>&state={state}&iss={iss}"
        )))
        .await;
    assert_refused(&w, &page, 0).await;
    assert!(
        page.body.contains("access_denied") && !page.body.contains("<script>"),
        "{}",
        page.body
    );
}

// === sessions that must not open ===

#[tokio::test]
async fn tampered_truncated_foreign_and_expired_session_cookies_mean_login() {
    use tollgate::config::Secret;
    use tollgate::session::{Codec, Session, SessionCookies};

    let w = world().await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/"), "alice").await;
    let good = b.cookie("_tollgate").expect("session cookie");
    let upstream = w.upstream.count();

    let cfg = tollgate::config::SessionConfig::cookie_store(
        vec![Secret::new(
            tollgate::config::decode_key(SESSION_KEY).expect("key"),
        )],
        "_tollgate",
        std::time::Duration::from_secs(3600),
        false,
    );
    let forge = |secret: Vec<u8>, expires_at: i64| {
        let session = Session {
            sub: "mallory".into(),
            email: None,
            name: None,
            preferred_username: None,
            groups: vec!["admins".into()],
            access_token: "forged".into(),
            access_expires_at: None,
            refresh_token: None,
            id_token: None,
            sid: None,
            email_verified: None,
            claims: Default::default(),
            issued_at: 0,
            expires_at,
            nonce: None,
            auth_time: None,
            provider: None,
        };
        let set = SessionCookies::new(&cfg)
            .write(&Codec::new(&[Secret::new(secret)]), &session, &[])
            .expect("fits");
        cookie::Cookie::parse(set[0].clone())
            .expect("cookie")
            .value()
            .to_string()
    };
    let right_key = tollgate::config::decode_key(SESSION_KEY).expect("key");
    let mut flipped = good.clone().into_bytes();
    flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
    let cases = [
        ("tampered", String::from_utf8(flipped).expect("ascii")),
        ("truncated", good[..good.len() / 2].to_string()),
        (
            "other secret",
            forge(vec![9; 32], tollgate::session::now() + 3600),
        ),
        (
            "expired",
            forge(right_key.clone(), tollgate::session::now() - 1),
        ),
        ("empty", String::new()),
    ];
    for (what, value) in cases {
        let mut evil = Browser::new();
        evil.set_cookie("_tollgate", &value);
        let page = evil.get(&w.tollgate.url("/admin")).await;
        assert_eq!(page.status, 302, "{what}: {}", page.body);
        assert!(
            page.location().expect("loc").starts_with(&w.idp.issuer),
            "{what}: not sent to login"
        );
        assert!(
            page.set_cookies()
                .iter()
                .any(|c| c.starts_with("_tollgate=;")),
            "{what}: stale cookie not cleared"
        );
        assert_eq!(w.upstream.count(), upstream, "{what}: upstream called");
    }
    // The same forgery with the right key is accepted: the checks above are
    // the key and the expiry, not a broken forger.
    let mut ok = Browser::new();
    ok.set_cookie(
        "_tollgate",
        &forge(right_key, tollgate::session::now() + 3600),
    );
    assert_eq!(ok.get(&w.tollgate.url("/admin")).await.status, 200);
    assert_eq!(
        w.upstream.last().header("x-forwarded-user"),
        Some("mallory")
    );
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_upstream() {
    let w = world().await;
    let forged = [
        ("X-Forwarded-User", "admin"),
        ("X-Forwarded-Email", "admin@corp.test"),
        ("X_Forwarded_User", "admin"),
        ("X-Forwarded_Email", "admin@corp.test"),
        ("X-Forwarded-Groups", "admins,root"),
        ("X-Forwarded-Access-Token", "forged"),
        ("X-Auth-Request-User", "admin"),
        ("X-Forwarded-For", "10.0.0.5"),
        ("Connection", "X-Forwarded-User"),
    ];
    let mut b = Browser::new();
    // Unauthenticated: nothing reaches the upstream at all.
    let page = b
        .request(reqwest::Method::GET, &w.tollgate.url("/"), None, &forged)
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(w.upstream.count(), 0);

    b.login(&w.tollgate.url("/"), "alice").await;
    let page = b
        .request(
            reqwest::Method::GET,
            &w.tollgate.url("/whoami"),
            None,
            &forged,
        )
        .await;
    assert_eq!(page.status, 200);
    let seen = w.upstream.last();
    assert_eq!(seen.header_all("x-forwarded-user"), vec!["alice"]);
    assert_eq!(
        seen.header_all("x-forwarded-email"),
        vec!["alice@example.com"]
    );
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,dev"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_ne!(seen.header("x-forwarded-access-token"), Some("forged"));
    assert!(seen.header("x-auth-request-user").is_none());
    assert!(
        seen.headers.iter().all(|(k, _)| !k.contains('_')),
        "{:?}",
        seen.headers
    );
}

#[tokio::test]
async fn open_redirect_payloads_in_rd_land_on_the_root() {
    let w = world().await;
    let payloads: Vec<String> = include_str!("data/open_redirects.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(unescape)
        .collect();
    assert!(payloads.len() >= 20);
    let mut b = Browser::new();
    let mut checked = 0;
    for p in &payloads {
        let rd: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
        let start = b
            .get(&w.tollgate.url(&format!("/oauth2/start?rd={rd}")))
            .await;
        assert_eq!(start.status, 302, "{p:?}");
        let cb = b
            .until_callback(start.location().expect("loc"), "alice")
            .await;
        let done = b.get(&cb).await;
        assert_eq!(done.status, 302, "{p:?}: {}", done.body);
        assert_eq!(
            done.location(),
            Some("/"),
            "payload {p:?} was used as a redirect target"
        );
        checked += 1;
    }
    assert_eq!(checked, payloads.len());
    // A safe target is kept.
    let start = b
        .get(&w.tollgate.url("/oauth2/start?rd=%2Freports%3Fq%3D1"))
        .await;
    let cb = b
        .until_callback(start.location().expect("loc"), "alice")
        .await;
    assert_eq!(b.get(&cb).await.location(), Some("/reports?q=1"));
}

/// The escapes documented at the top of tests/data/open_redirects.txt.
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == '\\' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                't' => {
                    out.push('\t');
                    i += 2;
                    continue;
                }
                'n' => {
                    out.push('\n');
                    i += 2;
                    continue;
                }
                'r' => {
                    out.push('\r');
                    i += 2;
                    continue;
                }
                'x' if i + 3 < bytes.len() => {
                    let hex: String = bytes[i + 2..i + 4].iter().collect();
                    if let Ok(b) = u8::from_str_radix(&hex, 16) {
                        out.push(b as char);
                        i += 4;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[tokio::test]
async fn logs_never_contain_tokens_secrets_codes_or_cookies() {
    let w = world().await;
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/")).await;
    let cb = b
        .until_callback(start.location().expect("loc"), "alice")
        .await;
    let code = url::Url::parse(&cb)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let state = url::Url::parse(&cb)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    b.follow(&cb).await;
    b.get(&w.tollgate.url("/page")).await;
    let access_token = w
        .upstream
        .last()
        .header("x-forwarded-access-token")
        .expect("token")
        .to_string();
    let session_cookie = b.cookie("_tollgate").expect("cookie");
    b.sign_out(&w.tollgate.url("/oauth2/sign_out")).await;

    // The sign-out's access line is the last one written: once it is
    // here, everything before it is too.
    assert!(
        w.tollgate.output.has("login succeeded") && w.tollgate.output.has("path=/oauth2/sign_out"),
        "the log is not being captured:\n{}",
        w.tollgate.output.text()
    );
    let log = w.tollgate.output.text();
    for (what, secret) in [
        ("access token", access_token.as_str()),
        ("session cookie", &session_cookie[..40]),
        ("authorization code", code.as_str()),
        ("state", state.as_str()),
        ("client secret", BASIC_SECRET),
        ("session key", SESSION_KEY),
        ("ID token header", "eyJ"),
    ] {
        assert!(!log.contains(secret), "the log contains the {what}");
    }
}
