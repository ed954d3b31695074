//! Sessions that last and end: refresh, the Redis store, sign-out
//! revocation, back-channel logout, secret rotation. Real provider, real
//! Redis, the tollgate binary.

// A few end-to-end scenarios read best as one story each.
#![allow(clippy::too_many_lines)]

mod support;

use std::time::{Duration, Instant};

use support::*;

/// Access tokens live 30 s and tollgate refreshes 60 s before expiry, so
/// every request after a login or refresh is due for a refresh: no test
/// here waits for a clock.
const DUE: &str = "refresh_before = \"60s\"";

fn options(ports: &[u16]) -> IdpOptions {
    IdpOptions {
        tollgate_ports: ports.to_vec(),
        access_token_ttl: Some(30),
        rotate_refresh_tokens: true,
        ..IdpOptions::default()
    }
}

/// Rewrites a Redis session so its access token is due for refresh, as
/// only the passage of time would otherwise do. Uses tollgate's own store
/// code with the ticket from the browser's cookie.
async fn make_due(redis: &Redis, cookie_value: &str) {
    use tollgate::config::{Secret, SessionConfig};
    use tollgate::session::{Codec, RequestCookies, SessionCookies};
    let secrets = vec![Secret::new(
        tollgate::config::decode_key(SESSION_KEY).expect("key"),
    )];
    let cfg = SessionConfig::cookie_store(
        secrets.clone(),
        "_tollgate",
        Duration::from_secs(3600),
        false,
    );
    let header = format!("_tollgate={cookie_value}");
    let (ticket, _, _) = SessionCookies::new(&cfg).read_ticket(
        &Codec::new(&secrets),
        &RequestCookies::parse([header.as_bytes()]),
    );
    let ticket = ticket.expect("ticket");
    let store = standalone_store(redis);
    store.connect().await.expect("connect");
    let mut session = store.get(&ticket).await.expect("get").expect("session");
    session.access_expires_at = Some(tollgate::session::now());
    store.put(&ticket, &session).await.expect("put");
}

/// The session store on `redis`, as tollgate makes it (not connected yet).
fn standalone_store(redis: &Redis) -> tollgate::session::redis::RedisStore {
    use tollgate::config::{RedisConfig, RedisMode};
    tollgate::session::redis::RedisStore::new(
        RedisConfig {
            url: redis.url(),
            mode: RedisMode::Standalone,
            nodes: vec![],
            sentinel_master: String::new(),
            username: None,
            password: None,
            tls: false,
            key_prefix: "tollgate:".into(),
            timeout: Duration::from_secs(2),
        },
        Duration::from_secs(3600),
    )
}

/// A replica that has just started is sent requests by a load balancer
/// that does not wait for readiness: a command issued before the store's
/// first connection waits for it (within the store timeout) instead of
/// failing. Found by the chaos soak (a rolling restart answered a burst of
/// 503s). Deterministic: the runtime is single-threaded, so the command has
/// started waiting before `connect` runs.
#[tokio::test]
async fn a_store_command_issued_before_the_first_connection_waits_for_it() {
    let redis = Redis::start().await;
    let store = std::sync::Arc::new(standalone_store(&redis));
    let early = tokio::spawn({
        let store = store.clone();
        async move { store.ping().await }
    });
    tokio::task::yield_now().await;
    assert!(!early.is_finished(), "the command waits for a connection");
    store.connect().await.expect("connect");
    assert!(early.await.expect("join"), "and succeeds once there is one");
}

fn redis_session(redis: &Redis) -> String {
    format!(
        "{DUE}\nstore = \"redis\"\n[session.redis]\nurl = \"{}\"\n",
        redis.url()
    )
}

async fn concurrent_gets(urls: Vec<String>, cookie: String) -> Vec<(u16, Vec<String>)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|u| {
            let client = client.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move {
                let r = client
                    .get(u)
                    .header("cookie", cookie)
                    .header("accept", "text/html")
                    .send()
                    .await
                    .expect("request");
                let set: Vec<String> = r
                    .headers()
                    .get_all("set-cookie")
                    .iter()
                    .filter_map(|v| v.to_str().ok().map(str::to_string))
                    .collect();
                (r.status().as_u16(), set)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    out
}

fn access_tokens(up: &Upstream, last: usize) -> Vec<String> {
    let seen = up.seen();
    seen[seen.len() - last..]
        .iter()
        .map(|s| {
            s.header("x-forwarded-access-token")
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn fifty_concurrent_requests_at_expiry_make_one_refresh_cookie_store() {
    let port = free_port();
    let idp = Idp::with(options(&[port]));
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = DUE;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let first_token = access_tokens(&upstream, 1).remove(0);
    // The code exchange, then the landing request's refresh (already due).
    let n0 = idp.token_requests().await;
    assert_eq!(n0, 2);

    let cookie = b.cookie_header(&tollgate.url("/"));
    let urls = (0..50)
        .map(|i| tollgate.url(&format!("/burst/{i}")))
        .collect();
    let results = concurrent_gets(urls, cookie).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(
        idp.token_requests().await,
        n0 + 1,
        "50 concurrent requests must share one refresh"
    );
    let tokens = access_tokens(&upstream, 50);
    assert!(
        tokens.iter().all(|t| t == &tokens[0] && t != &first_token),
        "every request carries the one new token"
    );
    assert!(
        results
            .iter()
            .all(|(_, set)| set.iter().any(|c| c.starts_with("_tollgate="))),
        "each response carries the new cookie"
    );

    // The new cookie holds the rotated refresh token, and the provider takes it.
    let fresh = results[0]
        .1
        .iter()
        .find(|c| c.starts_with("_tollgate="))
        .expect("cookie");
    let value = cookie::Cookie::parse(fresh.clone())
        .expect("cookie")
        .value()
        .to_string();
    let mut next = Browser::new();
    next.set_cookie("_tollgate", &value);
    assert_eq!(next.get(&tollgate.url("/next")).await.status, 200);
    assert_eq!(idp.token_requests().await, n0 + 2);
    assert_ne!(access_tokens(&upstream, 1)[0], tokens[0]);
    assert!(tollgate.output.has("access token refreshed"));
}

#[tokio::test]
async fn sign_out_revokes_the_refresh_token_so_a_copied_cookie_is_useless() {
    let port = free_port();
    let idp = Idp::with(options(&[port]));
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = DUE;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let copy = b.cookie("_tollgate").expect("cookie");
    b.sign_out(&tollgate.url("/oauth2/sign_out")).await;
    assert_eq!(idp.stats().await["revocation_requests"], 1);

    // The copy still opens, but its refresh is refused: the session ends.
    let before = upstream.count();
    let mut thief = Browser::new();
    thief.set_cookie("_tollgate", &copy);
    let page = thief.get(&tollgate.url("/")).await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(page.location().expect("location").starts_with(&idp.issuer));
    assert!(
        page.set_cookies()
            .iter()
            .any(|c| c.starts_with("_tollgate=;")),
        "the dead cookie is cleared"
    );
    let api = thief
        .request(
            reqwest::Method::GET,
            &tollgate.url("/api"),
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(api.status, 401);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn redis_sessions_are_shared_by_replicas_survive_restarts_and_refresh_once() {
    let redis = Redis::start().await;
    let (pa, pb) = (free_port(), free_port());
    // Fresh tokens are not due (120 s > 60 s); the test makes them due.
    let idp = Idp::with(IdpOptions {
        access_token_ttl: Some(120),
        ..options(&[pa, pb])
    });
    let upstream = Upstream::start().await;
    let session = redis_session(&redis);
    let up_url = upstream.url();
    let mut sa = Setup::basic(pa, &idp, &up_url);
    sa.session = &session;
    let mut sb = Setup::basic(pb, &idp, &up_url);
    sb.session = &session;
    let mut a = Tollgate::start(&sa).await;
    let b_replica = Tollgate::start(&sb).await;

    let mut browser = Browser::new();
    browser.login(&a.url("/"), "alice").await;
    let cookie = browser.cookie("_tollgate").expect("ticket cookie");
    assert!(cookie.len() < 200, "the cookie holds only a ticket");
    let n0 = idp.token_requests().await;
    assert_eq!(n0, 1, "the code exchange");
    make_due(&redis, &cookie).await;

    // 25 requests to each replica at once: one refresh in all.
    let mut urls: Vec<String> = (0..25).map(|i| a.url(&format!("/a/{i}"))).collect();
    urls.extend((0..25).map(|i| b_replica.url(&format!("/b/{i}"))));
    let results = concurrent_gets(urls, browser.cookie_header(&a.url("/"))).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    assert_eq!(
        idp.token_requests().await,
        n0 + 1,
        "two replicas, fifty requests, one refresh"
    );
    let tokens = access_tokens(&upstream, 50);
    assert!(tokens.iter().all(|t| t == &tokens[0]));

    // A restarted replica still knows the session (and refreshes it with
    // the rotated token the other one stored).
    a.terminate();
    let a = Tollgate::start(&sa).await;
    make_due(&redis, &cookie).await;
    let page = browser.get(&a.url("/after-restart")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(idp.token_requests().await, n0 + 2);

    // A dump of Redis reveals no token and no identity.
    let access = upstream
        .last()
        .header("x-forwarded-access-token")
        .expect("token")
        .to_string();
    let dump = redis.dump().await;
    assert!(!dump.is_empty());
    for (key, value) in &dump {
        let text = String::from_utf8_lossy(value);
        for secret in [access.as_str(), "alice@example.com", "eyJ", "admins"] {
            assert!(
                !text.contains(secret) && !key.contains(secret),
                "{key} reveals {secret}"
            );
        }
    }

    // Sign-out deletes the record: the same ticket no longer works anywhere.
    browser.sign_out(&b_replica.url("/oauth2/sign_out")).await;
    let mut thief = Browser::new();
    thief.set_cookie("_tollgate", &cookie);
    assert_eq!(thief.get(&a.url("/")).await.status, 302);
}

#[tokio::test]
async fn redis_outage_is_a_503_and_service_recovers_by_itself() {
    let mut redis = Redis::start().await;
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let session = format!(
        "store = \"redis\"\n[session.redis]\nurl = \"{}\"\ntimeout = \"1s\"\n",
        redis.url()
    );
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = &session;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let before = upstream.count();

    redis.stop();
    let page = b.get(&tollgate.url("/during-outage")).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
    assert_eq!(b.get(&tollgate.url("/readyz")).await.status, 503);
    assert_eq!(upstream.count(), before);

    redis.restart().await;
    // The connection comes back by itself; the session survived in Redis.
    let start = Instant::now();
    loop {
        let page = b.get(&tollgate.url("/after-outage")).await;
        if page.status == 200 {
            break;
        }
        assert_eq!(
            page.status, 503,
            "only 503 while reconnecting: {}",
            page.body
        );
        assert!(start.elapsed() < Duration::from_secs(30), "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(b.get(&tollgate.url("/readyz")).await.status, 200);
}

#[tokio::test]
async fn backchannel_logout_ends_the_session_and_forged_or_replayed_tokens_end_nothing() {
    let redis = Redis::start().await;
    let port = free_port();
    let upstream = Upstream::start().await;
    // The provider's logout tokens go to the recording upstream first, so
    // the test holds a real, provider-signed token to deliver (and replay).
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![port],
        backchannel_logout_uri: Some(format!("{}/captured-logout", upstream.url())),
        ..IdpOptions::default()
    });
    let session = redis_session(&redis).replace(DUE, "");
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = &session;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let mut other = Browser::new();
    other.login(&tollgate.url("/"), "bob").await;

    // End alice's session at the provider, the way a user would.
    let page = b
        .get(&format!(
            "{}/session/end?client_id=tollgate-basic",
            idp.issuer
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let confirmed = b.submit_form(&page).await;
    assert!(confirmed.status < 400, "{}", confirmed.body);
    let start = Instant::now();
    let token = loop {
        if let Some(s) = upstream
            .seen()
            .iter()
            .find(|s| s.path == "/captured-logout")
        {
            break url::form_urlencoded::parse(s.body.as_bytes())
                .find(|(k, _)| k == "logout_token")
                .map(|(_, v)| v.into_owned())
                .expect("logout_token");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the provider sent no logout token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        b.get(&tollgate.url("/still-in")).await.status,
        200,
        "not ended before delivery"
    );

    let post = |body: String| {
        let url = tollgate.url("/oauth2/backchannel_logout");
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("post")
        }
    };
    let form = |t: &str| {
        format!(
            "logout_token={}",
            url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()
        )
    };

    // Forged: a flipped signature byte, alg none, garbage, no token at all.
    let (head_body, sig) = token.rsplit_once('.').expect("jws");
    let mut sig_bytes = sig.as_bytes().to_vec();
    sig_bytes[5] = if sig_bytes[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{head_body}.{}",
        String::from_utf8(sig_bytes).expect("ascii")
    );
    let body = head_body.split('.').nth(1).expect("claims");
    let none = format!("eyJhbGciOiJub25lIn0.{body}.");
    for bad in [
        form(&flipped),
        form(&none),
        form("garbage"),
        String::new(),
        format!("{}&{}", form(&token), form(&token)),
    ] {
        let r = post(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap_or("")),
            Some("no-store")
        );
    }
    assert_eq!(
        b.get(&tollgate.url("/still-in-after-forgeries"))
            .await
            .status,
        200
    );

    // The real token ends alice's session and only hers; a replay is refused.
    let r = post(form(&token)).await;
    assert_eq!(r.status(), 200);
    let page = b.get(&tollgate.url("/after-logout")).await;
    assert_eq!(page.status, 302, "alice must log in again");
    assert_eq!(other.get(&tollgate.url("/bob-still-in")).await.status, 200);
    assert_eq!(post(form(&token)).await.status(), 400, "replayed jti");
    assert!(tollgate.output.has("provider ended the session"));
}

#[tokio::test]
async fn rotated_secret_keeps_sessions_and_reseals_them() {
    const NEW_KEY: &str = "bmV3LWtleS1tYXRlcmlhbC0wMTIzNDU2Nzg5YWJjZGVm";
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let mut t = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let mut b = Browser::new();
    b.login(&t.url("/"), "alice").await;
    let old = b.cookie("_tollgate").expect("cookie");
    t.terminate();

    // New secret first, the old one kept for decryption only.
    let rotated = Setup::basic(port, &idp, &upstream.url()).toml().replace(
        &format!("secret = \"{SESSION_KEY}\""),
        &format!("secret = \"{NEW_KEY}\"\nprevious_secrets = [\"{SESSION_KEY}\"]"),
    );
    let mut t = Tollgate::spawn(&rotated, port);
    t.wait_ready().await;
    let page = b.get(&t.url("/rotated")).await;
    assert_eq!(page.status, 200);
    let resealed = b.cookie("_tollgate").expect("cookie");
    assert_ne!(
        resealed, old,
        "the cookie comes back sealed with the new secret"
    );
    drop(t);

    // Only the new secret now: the resealed cookie works, the old one does not.
    let only_new = Setup::basic(port, &idp, &upstream.url())
        .toml()
        .replace(SESSION_KEY, NEW_KEY);
    let mut t = Tollgate::spawn(&only_new, port);
    t.wait_ready().await;
    assert_eq!(b.get(&t.url("/new-only")).await.status, 200);
    let mut stale = Browser::new();
    stale.set_cookie("_tollgate", &old);
    assert_eq!(stale.get(&t.url("/old-cookie")).await.status, 302);
}

#[tokio::test]
async fn redis_sentinel_mode_finds_the_master() {
    let redis = Redis::start().await;
    let sentinel = Sentinel::start(&redis, "mymaster").await;
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let session = format!(
        "store = \"redis\"\n[session.redis]\nmode = \"sentinel\"\nnodes = [\"{}\"]\nsentinel_master = \"mymaster\"\n",
        sentinel.url()
    );
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = &session;
    let tollgate = Tollgate::start(&setup).await;
    let mut b = Browser::new();
    assert_eq!(b.login(&tollgate.url("/"), "alice").await.status, 200);
    assert_eq!(b.get(&tollgate.url("/again")).await.status, 200);
    // The session is in the master the sentinel named.
    assert!(redis
        .dump()
        .await
        .iter()
        .any(|(k, _)| k.starts_with("tollgate:s:")));
}

#[tokio::test]
async fn redis_cluster_mode_stores_and_deletes_sessions_across_masters() {
    let cluster = Cluster::start().await;
    let port = free_port();
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![port],
        ..IdpOptions::default()
    });
    let upstream = Upstream::start().await;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let session = format!(
        "store = \"redis\"\n[session.redis]\nmode = \"cluster\"\nnodes = [{}]\n",
        nodes.join(", ")
    );
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.session = &session;
    let tollgate = Tollgate::start(&setup).await;
    let mut browsers = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let mut b = Browser::new();
        assert_eq!(
            b.login(&tollgate.url("/"), user).await.status,
            200,
            "{user}"
        );
        browsers.push(b);
    }
    for b in &mut browsers {
        assert_eq!(b.get(&tollgate.url("/again")).await.status, 200);
    }
    let records = cluster
        .keys()
        .iter()
        .filter(|k| k.starts_with("tollgate:s:"))
        .count();
    assert_eq!(records, 3);
    // Sign-out deletes the record wherever its slot lives.
    browsers[0]
        .sign_out(&tollgate.url("/oauth2/sign_out"))
        .await;
    assert_eq!(
        cluster
            .keys()
            .iter()
            .filter(|k| k.starts_with("tollgate:s:"))
            .count(),
        2
    );
}
