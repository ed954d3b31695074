//! `/oauth2/ext_authz/<path>`: tollgate as Envoy's `ext_authz` HTTP
//! service, against the real provider. No Envoy binary can be had on this
//! machine, so the tests speak Envoy's side of the contract as its
//! documentation (envoy.extensions.filters.http.ext_authz.v3, HTTP service)
//! describes it: the original method, the original path behind
//! `path_prefix`, the original query and headers (`Host`, `Cookie`,
//! `Authorization`, `Accept`, as `allowed_headers` lets through); the
//! request goes upstream only on 200, and any other answer goes back to
//! the client as it is.

mod support;

use support::*;

const RULES: &str = r#"
[[routes.public]]
path = "/static/.*"

[[authorization.rules]]
name = "admins"
paths = ["/admin"]
allow_groups = ["admins"]

[[authorization.rules]]
name = "deletes"
paths = ["/api"]
methods = ["DELETE"]
allow_groups = ["admins"]

[[authorization.rules]]
paths = ["/"]
allow_any = true
"#;

async fn check(
    b: &mut Browser,
    tollgate: &Tollgate,
    method: reqwest::Method,
    path: &str,
    accept: &str,
) -> Page {
    b.request(
        method,
        &tollgate.url(&format!("/oauth2/ext_authz{path}")),
        None,
        &[("accept", accept)],
    )
    .await
}

/// A signed-in user's (bob, not an admin) request is allowed with 200 (Envoy allows only on
/// 200) and the identity headers; the rules judge the original method and
/// path; the access token stays with trusted callers.
#[tokio::test]
async fn envoy_checks_are_answered_200_with_identity_or_refused_by_the_rules() {
    let (_idp, upstream, tollgate) = direct(RULES, "").await;
    let mut b = Browser::new();
    assert_eq!(b.login(&tollgate.url("/"), "bob").await.status, 200);
    let seen = upstream.count();

    let ok = check(
        &mut b,
        &tollgate,
        reqwest::Method::GET,
        "/inbox?x=1",
        "text/html",
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let header = |p: &Page, n: &str| {
        p.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header(&ok, "x-auth-request-user").as_deref(), Some("bob"));
    assert_eq!(
        header(&ok, "x-auth-request-email").as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(
        header(&ok, "x-auth-request-access-token").as_deref(),
        Some(""),
        "not a trusted caller: present, empty (overwrites a client's copy)"
    );

    // The rules judge the original method and path; a path that
    // normalizes into /admin is judged as /admin.
    use reqwest::Method;
    for (method, path, accept, want) in [
        (Method::GET, "/admin/users", "text/html", 403),
        (Method::GET, "/api/items", "application/json", 200),
        (Method::DELETE, "/api/items", "application/json", 403),
        (Method::GET, "/inbox/../admin", "text/html", 403),
    ] {
        let page = check(&mut b, &tollgate, method.clone(), path, accept).await;
        assert_eq!(page.status, want, "{method} {path}: {}", page.body);
    }
    assert_eq!(upstream.count(), seen, "a check never reaches the upstream");
}

/// Without a session: public routes are allowed, API clients get 401, and
/// a browser gets the login redirect (which Envoy passes on) that brings
/// it back to the page it asked for.
#[tokio::test]
async fn without_a_session_envoy_gets_401_or_the_login_redirect() {
    let (_idp, _upstream, tollgate) = direct(RULES, "").await;
    let mut b = Browser::new();
    let public = check(
        &mut b,
        &tollgate,
        reqwest::Method::GET,
        "/static/app.css",
        "text/css",
    )
    .await;
    assert_eq!(public.status, 200);
    let api = check(
        &mut b,
        &tollgate,
        reqwest::Method::GET,
        "/api/items",
        "application/json",
    )
    .await;
    assert_eq!(api.status, 401, "{}", api.body);
    assert!(api.headers.get("www-authenticate").is_some());

    let login = check(
        &mut b,
        &tollgate,
        reqwest::Method::GET,
        "/inbox?x=1",
        "text/html",
    )
    .await;
    assert_eq!(login.status, 302, "{}", login.body);
    let location = login.location().expect("location").to_string();
    assert!(location.contains("/auth?"), "{location}");
    assert!(!login.set_cookies().is_empty(), "the login cookie");
    let page = b.login(&location, "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/inbox?x=1"), "{}", page.url);
}

/// Only `/oauth2/ext_authz/…` with a path is the endpoint.
#[tokio::test]
async fn the_prefix_alone_is_not_the_endpoint() {
    let (_idp, _upstream, tollgate) = direct(RULES, "").await;
    let mut b = Browser::new();
    for path in ["/oauth2/ext_authz", "/oauth2/ext_authzx/inbox"] {
        let page = b.get(&tollgate.url(path)).await;
        assert_eq!(page.status, 404, "{path}");
    }
}

/// Rules with `hosts` judge the host the check is for (its `Host`): bob is
/// refused on the admin host only; alice, an admin, is let in there. A
/// proxied request is judged by its `Host` too.
#[tokio::test]
async fn rules_with_hosts_judge_the_host_envoy_asks_about() {
    let rules = r#"
[[authorization.rules]]
name = "admin site"
hosts = ["admin.example.com"]
allow_groups = ["admins"]

[[authorization.rules]]
paths = ["/"]
allow_any = true
"#;
    let (_idp, _upstream, tollgate) = direct(rules, "").await;
    let mut bob = Browser::new();
    assert_eq!(bob.login(&tollgate.url("/"), "bob").await.status, 200);
    let mut alice = Browser::new();
    assert_eq!(alice.login(&tollgate.url("/"), "alice").await.status, 200);
    for (who, host, want) in [
        ("bob", "admin.example.com", 403),
        ("bob", "ADMIN.example.com:8443", 403),
        ("bob", "app.example.com", 200),
        ("alice", "admin.example.com", 200),
    ] {
        let b = if who == "bob" { &mut bob } else { &mut alice };
        let page = b
            .request(
                reqwest::Method::GET,
                &tollgate.url("/oauth2/ext_authz/x"),
                None,
                &[("host", host), ("accept", "text/html")],
            )
            .await;
        assert_eq!(page.status, want, "{who} at {host}: {}", page.body);
    }
    // Proxied requests are judged by their own Host the same way.
    let proxied = bob
        .request(
            reqwest::Method::GET,
            &tollgate.url("/x"),
            None,
            &[("host", "admin.example.com"), ("accept", "text/html")],
        )
        .await;
    assert_eq!(proxied.status, 403, "{}", proxied.body);
}

/// tollgate's own endpoints are chosen by the path as sent, so one not in
/// normal form is refused: a proxy that routed `/oauth2/ext_authz/../start`
/// as `/oauth2/start` (a browser path) must not reach the check endpoint.
#[tokio::test]
async fn oauth2_paths_not_in_normal_form_are_refused() {
    let (_idp, upstream, tollgate) = direct(RULES, "").await;
    for path in [
        "/oauth2/ext_authz/../start",
        "/oauth2/ext_authz/%2e%2e/start",
        "/oauth2//auth",
        "/oauth2/./auth",
        "/oauth2/st%61rt",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let answer = raw(tollgate.port, req.as_bytes()).await;
        assert_eq!(statuses(&answer), vec![400], "{path}: {answer}");
    }
    assert_eq!(upstream.count(), 0);
}
