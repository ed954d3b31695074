//! Who gets in, and where: forward-auth behind real nginx and Caddy,
//! authorization rules, public routes, bearer tokens, identity to the
//! upstream.

mod support;

use support::*;

const RULES: &str = r#"
[[authorization.rules]]
name = "admins only"
paths = ["/admin"]
allow_groups = ["admins"]

[[authorization.rules]]
name = "everyone else"
paths = ["/"]
allow_any = true
"#;

async fn front_world(front: &str) -> (Idp, Upstream, Tollgate, Front) {
    let tg_port = free_port();
    let front_port = free_port();
    let front_url = format!("http://127.0.0.1:{front_port}");
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![],
        front_urls: vec![front_url.clone()],
        ..IdpOptions::default()
    });
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(tg_port, &idp, &up_url);
    setup.public_url = Some(&front_url);
    setup.server = "trusted_proxies = [\"127.0.0.1\"]";
    setup.extra = RULES;
    let tollgate = Tollgate::start(&setup).await;
    let front = match front {
        "nginx" => Front::nginx(front_port, tg_port, &up_url).await,
        _ => Front::caddy(front_port, tg_port, &up_url).await,
    };
    (idp, upstream, tollgate, front)
}

#[tokio::test]
async fn nginx_auth_request_logs_in_enforces_rules_and_logs_out() {
    let (_idp, upstream, tollgate, nginx) = front_world("nginx").await;
    let mut alice = Browser::new();
    let page = alice.login(&nginx.url("/reports?x=1"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    assert!(page.url.ends_with("/reports?x=1"), "{}", page.url);
    let seen = upstream.last();
    assert_eq!(seen.header("x-user"), Some("alice"));
    assert_eq!(seen.header("x-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-groups"), Some("admins,dev"));
    assert_eq!(alice.get(&nginx.url("/admin/panel")).await.status, 200);

    let mut bob = Browser::new();
    assert_eq!(bob.login(&nginx.url("/"), "bob").await.status, 200);
    let before = upstream.count();
    let denied = bob.get(&nginx.url("/admin/panel")).await;
    assert_eq!(denied.status, 403);
    assert_eq!(upstream.count(), before, "a denied request reaches nothing");
    assert!(tollgate.output.has("admins only"), "the log names the rule");

    // The auth endpoint is internal to nginx.
    assert_eq!(
        Browser::new().get(&nginx.url("/oauth2/auth")).await.status,
        404
    );

    let out = alice.sign_out(&nginx.url("/oauth2/sign_out")).await;
    assert_eq!(out.status, 302);
    let again = alice.get(&nginx.url("/reports")).await;
    assert_eq!(again.status, 302);
    assert!(
        again.location().is_some_and(|l| l.ends_with(&format!(
            "/oauth2/start?rd=http://127.0.0.1:{}/reports",
            nginx.port
        ))),
        "{:?}",
        again.location()
    );
}

#[tokio::test]
async fn caddy_forward_auth_redirects_to_login_itself_and_enforces_rules() {
    let (idp, upstream, tollgate, caddy) = front_world("caddy").await;
    let mut alice = Browser::new();
    let first = alice.get(&caddy.url("/deep/link?q=2")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert!(
        first.location().is_some_and(|l| l.starts_with(&idp.issuer)),
        "forward-auth answers with the login redirect"
    );
    let page = alice.login(&caddy.url("/deep/link?q=2"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    assert!(
        page.url.ends_with("/deep/link?q=2"),
        "back where the user started: {}",
        page.url
    );
    assert_eq!(upstream.last().header("x-auth-request-user"), Some("alice"));

    let mut bob = Browser::new();
    assert_eq!(bob.login(&caddy.url("/"), "bob").await.status, 200);
    assert_eq!(bob.get(&caddy.url("/admin")).await.status, 403);
    assert_eq!(alice.get(&caddy.url("/admin")).await.status, 200);

    // API clients get 401, not a redirect, through forward-auth too.
    let api = Browser::new()
        .request(
            reqwest::Method::GET,
            &caddy.url("/api"),
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(api.status, 401);
}

#[tokio::test]
async fn rules_and_shortcuts_decide_by_domain_group_and_claim() {
    let extra = r#"
[authorization]
allowed_email_domains = ["example.com"]

[[authorization.rules]]
name = "ops by username"
paths = ["/ops"]
allow_claims = { preferred_username = "alice" }

[[authorization.rules]]
name = "api writes for admins"
path_regex = "/api/.*"
methods = ["POST", "DELETE"]
allow_groups = ["admins"]

[[authorization.rules]]
paths = ["/"]
allow_any = true
"#;
    let (_idp, upstream, tollgate) = direct(extra, "").await;
    let mut alice = Browser::new();
    alice.login(&tollgate.url("/"), "alice").await;
    let mut bob = Browser::new();
    bob.login(&tollgate.url("/"), "bob").await;

    assert_eq!(alice.get(&tollgate.url("/ops/x")).await.status, 200);
    let denied = bob.get(&tollgate.url("/ops/x")).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("not allowed"));
    assert!(
        denied.body.contains("bob@example.com"),
        "the page says who you are"
    );
    assert!(
        denied.body.contains("/oauth2/sign_out"),
        "and offers to sign out"
    );
    let json = bob
        .request(
            reqwest::Method::GET,
            &tollgate.url("/ops"),
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(json.status, 403);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json.body).expect("json")["error"],
        "forbidden"
    );
    // `/operations` is not under the `/ops` prefix.
    assert_eq!(bob.get(&tollgate.url("/operations")).await.status, 200);
    assert_eq!(
        bob.get(&tollgate.url("/api/items")).await.status,
        200,
        "GET is not a write"
    );
    assert_eq!(
        bob.request(
            reqwest::Method::POST,
            &tollgate.url("/api/items"),
            None,
            &[]
        )
        .await
        .status,
        403
    );
    assert_eq!(
        alice
            .request(
                reqwest::Method::POST,
                &tollgate.url("/api/items"),
                None,
                &[]
            )
            .await
            .status,
        200
    );
    assert!(
        tollgate.output.has("ops by username") && tollgate.output.has("api writes for admins"),
        "{}",
        tollgate.output.text()
    );

    // A login outside the allowed domain: in, but allowed nowhere.
    let mut outsider = Browser::new();
    let page = outsider
        .login(&tollgate.url("/"), "mallory@evil.test@example.com")
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    let _ = upstream;
}

#[tokio::test]
async fn public_routes_skip_login_but_no_traversal_reaches_a_protected_path() {
    let extra = r#"
[routes]
allow_cors_preflight = true
[[routes.public]]
path = "/public/.*"
methods = ["GET"]
"#;
    let (idp, upstream, tollgate) = direct(extra, "").await;
    let mut anon = Browser::new();
    let page = anon
        .request(
            reqwest::Method::GET,
            &tollgate.url("/public/a/./b/../c"),
            None,
            &[("x-forwarded-user", "admin"), ("x_forwarded_email", "a@b")],
        )
        .await;
    assert_eq!(page.status, 200);
    let seen = upstream.last();
    assert_eq!(
        seen.path, "/public/a/c",
        "the upstream gets the normalized path"
    );
    assert!(
        seen.header("x-forwarded-user").is_none() && seen.header("x-forwarded-email").is_none()
    );

    let before = upstream.count();
    for sneaky in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "//admin",
        "/public;/../admin",
        "/%70ublic/../admin",
    ] {
        let page = anon.get(&tollgate.url(sneaky)).await;
        assert_eq!(page.status, 302, "{sneaky} must need a login");
        assert!(
            page.location().is_some_and(|l| l.starts_with(&idp.issuer)),
            "{sneaky}"
        );
    }
    for malformed in [
        "/public/..%2fadmin",
        "/public/%252e%252e/admin",
        "/public/%5c..%5cadmin",
    ] {
        assert_eq!(
            anon.get(&tollgate.url(malformed)).await.status,
            400,
            "{malformed}"
        );
    }
    assert_eq!(upstream.count(), before, "nothing protected was reached");
    assert_eq!(
        anon.request(reqwest::Method::POST, &tollgate.url("/public/x"), None, &[])
            .await
            .status,
        302
    );

    let preflight = anon
        .request(
            reqwest::Method::OPTIONS,
            &tollgate.url("/api/things"),
            None,
            &[
                ("origin", "https://other.test"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(preflight.status, 200, "CORS preflight passes when allowed");
}

#[tokio::test]
async fn bearer_tokens_jwt_and_introspected() {
    let extra =
        "[authorization]\nbearer_audiences = [\"urn:tollgate:api\"]\nbearer_introspection = true\n";
    let (idp, upstream, tollgate) = direct(extra, "").await;
    let api = |token: String| {
        let url = tollgate.url("/api/data");
        async move {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client")
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
        }
    };

    let jwt = idp.machine_token(Some("urn:tollgate:api")).await;
    let r = api(jwt.clone()).await;
    assert_eq!(r.status(), 200);
    let seen = upstream.last();
    assert_eq!(
        seen.header("x-forwarded-user"),
        Some("machine"),
        "{:?}",
        seen
    );
    assert_eq!(seen.header("x-forwarded-access-token"), Some(jwt.as_str()));

    let before = upstream.count();
    let other_aud = idp.machine_token(Some("urn:other:api")).await;
    let (head, rest) = jwt.split_once('.').expect("jwt");
    let (_, sig) = rest.rsplit_once('.').expect("jwt");
    let forged_claims = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value = serde_json::from_slice(
            &b64.decode(rest.split('.').next().expect("claims"))
                .expect("b64"),
        )
        .expect("json");
        claims["sub"] = serde_json::json!("admin");
        format!("{head}.{}.{sig}", b64.encode(claims.to_string()))
    };
    let machine_opaque = idp.machine_token(None).await;
    for (what, token) in [
        ("other audience", other_aud),
        ("forged claims", forged_claims),
        ("garbage", "not-a-token".to_string()),
        ("opaque token of another client", machine_opaque),
    ] {
        let r = api(token).await;
        assert_eq!(r.status(), 401, "{what}");
        let www = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(www, "Bearer error=\"invalid_token\"", "{what}");
    }
    assert_eq!(upstream.count(), before);

    // An opaque access token issued to tollgate itself, checked by introspection.
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let opaque = upstream
        .last()
        .header("x-forwarded-access-token")
        .expect("token")
        .to_string();
    let introspections = idp.stats().await["introspection_requests"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(api(opaque.clone()).await.status(), 200);
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(api(opaque).await.status(), 200);
    assert_eq!(
        idp.stats().await["introspection_requests"]
            .as_u64()
            .unwrap_or(0),
        introspections + 1,
        "the second request is answered from the cache"
    );
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let (idp, _upstream, tollgate) = direct(RULES, "").await;
    let mut bob = Browser::new();
    bob.login(&tollgate.url("/"), "bob").await;
    // Not a trusted proxy: the claimed original URI is ignored, so the path
    // is unknown, and bob, who may not see `/admin`, is not let in blind.
    let spoofed = [("x-forwarded-uri", "/admin"), ("x-original-uri", "/admin")];
    let r = bob
        .request(
            reqwest::Method::GET,
            &tollgate.url("/oauth2/auth"),
            None,
            &spoofed,
        )
        .await;
    assert_eq!(r.status, 403);
    // And a spoofed host never becomes a redirect target.
    let anon = Browser::new()
        .request(
            reqwest::Method::GET,
            &tollgate.url("/oauth2/auth?mode=redirect"),
            None,
            &[
                ("x-forwarded-host", "evil.test"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-uri", "/x"),
            ],
        )
        .await;
    assert_eq!(anon.status, 302);
    assert!(anon.location().is_some_and(|l| l.starts_with(&idp.issuer)));
    assert!(!anon.set_cookies().concat().contains("evil"));
}

#[tokio::test]
async fn forward_auth_answers_202_with_identity_and_401_without() {
    let (_idp, _upstream, tollgate) = direct("", "").await;
    let mut anon = Browser::new();
    assert_eq!(anon.get(&tollgate.url("/oauth2/auth")).await.status, 401);
    let mut alice = Browser::new();
    alice.login(&tollgate.url("/"), "alice").await;
    let r = alice.get(&tollgate.url("/oauth2/auth")).await;
    assert_eq!(r.status, 202);
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(h("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(
        h("x-auth-request-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        h("x-auth-request-preferred-username").as_deref(),
        Some("alice")
    );
    assert_eq!(h("x-auth-request-groups").as_deref(), Some("admins,dev"));
    // The browser asked itself: identity yes, credentials no (the header
    // is there, empty, to overwrite a client-sent copy).
    assert_eq!(h("x-auth-request-access-token").as_deref(), Some(""));
}

/// The access token (with `pass_access_token`) goes only to a caller in
/// `server.trusted_proxies`, the ingress that asked; a script on the page
/// calling `/oauth2/auth` gets the identity but no credential.
#[tokio::test]
async fn forward_auth_hands_the_access_token_only_to_a_trusted_proxy() {
    let value = |p: &Page, n: &str| {
        p.headers
            .get(n)
            .map(|v| v.to_str().unwrap_or("?").to_string())
    };
    for trusted in [false, true] {
        let server = if trusted {
            "trusted_proxies = [\"127.0.0.1/32\"]"
        } else {
            ""
        };
        let (_idp, _upstream, tollgate) = direct("", server).await;
        let mut carol = Browser::new();
        carol.login(&tollgate.url("/"), "carol").await;
        // An ingress asking about a page of the app; a browser calling
        // `/oauth2/auth` itself (no original URI); and the same relayed by
        // the ingress's `/oauth2/` route (the original URI is tollgate's).
        for (uri, token) in [
            (Some("/reports"), trusted),
            (None, false),
            (Some("/oauth2/auth"), false),
        ] {
            let headers: Vec<(&str, &str)> =
                uri.map(|u| ("x-forwarded-uri", u)).into_iter().collect();
            let r = carol
                .request(
                    reqwest::Method::GET,
                    &tollgate.url("/oauth2/auth"),
                    None,
                    &headers,
                )
                .await;
            assert_eq!(r.status, 202);
            assert_eq!(value(&r, "x-auth-request-user").as_deref(), Some("carol"));
            let got = value(&r, "x-auth-request-access-token");
            assert_eq!(
                got.as_deref().is_some_and(|t| !t.is_empty()),
                token,
                "trusted {trusted}, uri {uri:?}"
            );
            // Present (empty) when withheld, as every identity header is
            // when there is nothing to say: a gateway that copies them
            // then overwrites a client's own copy.
            assert!(got.is_some());
            assert_eq!(value(&r, "x-auth-request-groups").as_deref(), Some(""));
        }
    }
}

#[tokio::test]
async fn signed_assertion_and_claim_headers_reach_the_upstream() {
    let extra = "[headers]\n\"X-User-Id\" = \"sub\"\n\"X-Display-Name\" = \"name\"\n";
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let mut setup = Setup::basic(port, &idp, &up_url);
    setup.extra = extra;
    let toml = setup
        .toml()
        .replace("[upstream]\n", "[upstream]\nassertion = true\n");
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let page = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/me"),
            None,
            &[("x-tollgate-assertion", "forged"), ("x-user-id", "admin")],
        )
        .await;
    assert_eq!(page.status, 200);
    let seen = upstream.last();
    assert_eq!(
        seen.header("x-user-id"),
        Some("alice"),
        "{:?}",
        seen.headers
    );
    assert_eq!(seen.header("x-display-name"), Some("Alice"));
    let assertion = seen
        .header("x-tollgate-assertion")
        .expect("assertion")
        .to_string();
    assert_ne!(assertion, "forged");

    // The upstream can verify it with the published key.
    let jwks: serde_json::Value = reqwest::get(tollgate.url("/oauth2/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[up_url.as_str()]);
    v.set_issuer(&[tollgate.url("").as_str()]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &assertion,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key"),
        &v,
    )
    .expect("assertion verifies");
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["email"], "alice@example.com");
}

/// oauth2-proxy's per-request constraints on `/oauth2/auth`: each given
/// parameter narrows the decision (403), a malformed one is a 400.
#[tokio::test]
async fn forward_auth_query_constraints_narrow_the_decision() {
    let (_idp, _upstream, tollgate) = direct("", "").await;
    let mut alice = Browser::new();
    alice.login(&tollgate.url("/"), "alice").await;
    for (query, status) in [
        ("allowed_groups=ops,dev", 202),
        ("allowed_groups=ops", 403),
        ("allowed_emails=alice@example.com", 202),
        ("allowed_emails=bob@example.com", 403),
        ("allowed_email_domains=example.com", 202),
        ("allowed_email_domains=*.example.com", 403),
        ("allowed_groups=dev&allowed_email_domains=other.test", 403),
        ("allowed_email_domains=not%20a%20domain", 400),
    ] {
        let r = alice
            .get(&tollgate.url(&format!("/oauth2/auth?{query}")))
            .await;
        assert_eq!(r.status, status, "{query}: {}", r.body);
    }
}

/// `X-Auth-Request-Redirect` names where a login started by forward-auth
/// returns to (within the redirect policy).
#[tokio::test]
async fn forward_auth_login_returns_to_x_auth_request_redirect() {
    let (_idp, _upstream, tollgate) = direct("", "").await;
    let mut b = Browser::new();
    let start = b
        .request(
            reqwest::Method::GET,
            &tollgate.url("/oauth2/auth?mode=redirect"),
            None,
            &[("x-auth-request-redirect", "/after/login?x=1")],
        )
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let form = b.follow(start.location().expect("location")).await;
    let page = b.submit_login(form, "alice").await;
    assert!(page.url.ends_with("/after/login?x=1"), "{}", page.url);
}

/// Probe paths are configurable (oauth2-proxy's `/ping` and `/ready`, say),
/// and a path that is no longer a probe belongs to the application again.
#[tokio::test]
async fn probe_paths_are_configurable_and_free_the_defaults() {
    let (_idp, upstream, tollgate) =
        direct("", "health_path = \"/ping\"\nready_path = \"/ready\"").await;
    let get = |p: &str| reqwest::get(tollgate.url(p));
    let ping = get("/ping").await.expect("ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(get("/ready").await.expect("ready").status(), 200);
    // /healthz is the application's now: anonymous API clients get 401,
    // and a public route would reach the upstream.
    let healthz = reqwest::Client::new()
        .get(tollgate.url("/healthz"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 401);
    assert_eq!(upstream.count(), 0);
    // `/oauth2/sign_in` starts a login, as in oauth2-proxy.
    let sign_in = Browser::new()
        .get(&tollgate.url("/oauth2/sign_in?rd=/x"))
        .await;
    assert_eq!(sign_in.status, 302);
}

/// A gRPC client is answered in gRPC, never with a page or a redirect:
/// HTTP 200, `content-type: application/grpc` and `grpc-status` 16
/// (UNAUTHENTICATED) without credentials, 7 (PERMISSION_DENIED) when the
/// rules deny (gRPC over HTTP/2, Trailers-Only responses).
#[tokio::test]
async fn grpc_clients_get_grpc_statuses() {
    let extra = "[[authorization.rules]]\npaths = [\"/admin.Service\"]\nallow_groups = [\"nobody\"]\n[[authorization.rules]]\npaths = [\"/\"]\nallow_any = true\n";
    let (_idp, upstream, tollgate) = direct(extra, "").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let call = |path: &str, cookie: Option<String>| {
        let mut req = h2
            .post(tollgate.url(path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(vec![0u8, 0, 0, 0, 0]);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let anon = call("/echo.Echo/Say", None).await.expect("call");
    assert_eq!(anon.status(), 200);
    assert_eq!(anon.headers()["content-type"], "application/grpc");
    assert_eq!(anon.headers()["grpc-status"], "16");
    assert!(anon.headers().get("location").is_none());
    let mut b = Browser::new();
    b.login(&tollgate.url("/"), "alice").await;
    let cookie = b.cookie_header(&tollgate.url("/"));
    let denied = call("/admin.Service/Drop", Some(cookie))
        .await
        .expect("call");
    assert_eq!(denied.headers()["grpc-status"], "7");
    assert_eq!(
        upstream.count(),
        1,
        "only the browser login reached the upstream"
    );
}

/// `[[authorization.bearer_issuers]]` (oauth2-proxy's `extra_jwt_issuers`):
/// JWT access tokens from a second, real provider are accepted with that
/// issuer's keys and audiences, discovered on first use; its tokens for
/// another audience, and the first provider's tokens for the second one's
/// audience, are not.
#[tokio::test]
async fn bearer_tokens_from_an_extra_issuer() {
    let other = Idp::start(free_port());
    let extra = format!(
        "[authorization]\nbearer_audiences = [\"urn:main:api\"]\n[[authorization.bearer_issuers]]\nissuer = \"{}\"\naudiences = [\"urn:partner:api\"]\n",
        other.issuer
    );
    let (idp, upstream, tollgate) = direct(&extra, "").await;
    let status = |token: String| {
        let t = &tollgate;
        async move { t.bearer_status("/api/data", &token).await }
    };
    assert_eq!(
        status(other.machine_token(Some("urn:partner:api")).await).await,
        200
    );
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("machine"));
    assert_eq!(
        status(other.machine_token(Some("urn:main:api")).await).await,
        401
    );
    assert_eq!(
        status(idp.machine_token(Some("urn:partner:api")).await).await,
        401
    );
    assert_eq!(
        status(idp.machine_token(Some("urn:main:api")).await).await,
        200
    );
}
