//! Login options: `prompt`, `max_age`, `acr_values`, static extra
//! parameters and the hints `/oauth2/start` passes on, against the real
//! provider; and the ID-token checks they oblige (`auth_time`, `acr`)
//! against the in-process provider, because a conforming provider never
//! omits `auth_time` after `max_age` or answers with an `acr` it was not
//! asked for. The Google and GitLab presets run against the in-process
//! provider too, reproducing what Google documents for `hd` ("OpenID
//! Connect", developers.google.com/identity/openid-connect) and GitLab for
//! `groups_direct` (docs.gitlab.com, "GitLab as OpenID Connect
//! identity provider").

mod support;

use support::evil::{hook, Behaviour, Client, ClientCheck, Raw, World, WorldSetup};
use support::*;

const OPTIONS: &str = r#"prompt = "login"
max_age = "5m"
extra_authorize_params = { display = "page" }"#;

/// Every option is on the authorization request, the hints from
/// `/oauth2/start` too, and the provider's answer (with `auth_time`, as
/// `max_age` demands) signs the user in.
#[tokio::test]
async fn login_options_and_hints_reach_the_provider_and_the_login_completes() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let toml = Setup::basic(port, &idp, &url)
        .toml()
        .replace("\n[session]\n", &format!("\n{OPTIONS}\n[session]\n"));
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    let start = b
        .get(
            &tollgate.url(
                "/oauth2/start?rd=/inbox&login_hint=alice%40example.com&ui_locales=de-CH%20en",
            ),
        )
        .await;
    assert_eq!(start.status, 302, "{}", start.body);
    let location = url::Url::parse(start.location().expect("location")).expect("url");
    let q: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    for (k, v) in [
        ("prompt", "login"),
        ("max_age", "300"),
        ("display", "page"),
        ("login_hint", "alice@example.com"),
        ("ui_locales", "de-CH en"),
    ] {
        assert!(
            q.contains(&(k.to_string(), v.to_string())),
            "{k}={v} missing from {location}"
        );
    }
    // The provider pre-fills its form with the hint.
    let form = b.follow(location.as_str()).await;
    assert!(
        form.body.contains("value=\"alice@example.com\""),
        "{}",
        form.body
    );
    let page = b.submit_login(form, "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    assert!(page.url.ends_with("/inbox"), "{}", page.url);
}

/// Hints are bounded and plain: anything else is a 400, not a redirect.
#[tokio::test]
async fn malformed_hints_are_refused_before_any_redirect() {
    let (_idp, _upstream, tollgate) = direct("", "").await;
    let long = "a".repeat(300);
    for query in [
        "login_hint=a%0Ab".to_string(),
        format!("login_hint={long}"),
        "login_hint=".to_string(),
        "ui_locales=de%3Cscript".to_string(),
        "ui_locales=a%20b%20c%20d%20e%20f%20g%20h%20i".to_string(),
    ] {
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(tollgate.url(&format!("/oauth2/start?{query}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.headers().get("location").is_none(), "{query}");
    }
}

/// The in-process provider with `provider` keys, its ID token claims
/// changed by `claims`.
async fn evil(
    provider: &str,
    claims: impl Fn(&mut serde_json::Map<String, serde_json::Value>) + Send + Sync + 'static,
) -> World {
    World::start(
        evil_client(),
        WorldSetup {
            provider,
            before: Behaviour {
                claims: hook(claims),
                ..Behaviour::default()
            },
            ..WorldSetup::default()
        },
    )
    .await
}

/// tollgate as the in-process provider's client (HTTP Basic).
fn evil_client() -> Client<'static> {
    use base64::Engine as _;
    const SECRET: &str = "a-client-secret-that-is-32-bytes-or-more";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("tollgate:{SECRET}"));
    Client {
        check: ClientCheck::Basic(format!("Basic {basic}")),
        id: "tollgate",
        secret: Some(SECRET),
        auth: "client_secret_basic",
    }
}

/// The callback's status and body after signing in at `/app`.
async fn sign_in(w: &World) -> (u16, String) {
    let mut b = Browser::new();
    let page = support::evil::sign_in(&mut b, &w.tollgate.url("/app")).await;
    (page.status, page.body)
}

#[tokio::test]
async fn max_age_refuses_an_id_token_without_auth_time() {
    let w = evil("max_age = \"10m\"", |c| {
        c.remove("auth_time");
    })
    .await;
    let (status, body) = sign_in(&w).await;
    assert_eq!(status, 400, "{body}");
    assert!(w.tollgate.output.has("id_token_auth_time"));
    assert_eq!(w.upstream.count(), 0);
}

#[tokio::test]
async fn max_age_refuses_an_authentication_older_than_allowed() {
    let w = evil("max_age = \"10m\"", |c| {
        c.insert("auth_time".into(), (support::evil::now() - 3600).into());
    })
    .await;
    let (status, body) = sign_in(&w).await;
    assert_eq!(status, 400, "{body}");
    assert!(w.tollgate.output.has("id_token_auth_time"));
    // The same age is accepted without max_age.
    let w = evil("", |c| {
        c.insert("auth_time".into(), (support::evil::now() - 3600).into());
    })
    .await;
    assert_eq!(sign_in(&w).await.0, 302);
}

#[tokio::test]
async fn acr_values_refuse_an_acr_that_was_not_asked_for() {
    let w = evil("acr_values = [\"urn:example:gold\"]", |c| {
        c.insert("acr".into(), "urn:example:silver".into());
    })
    .await;
    let (status, body) = sign_in(&w).await;
    assert_eq!(status, 400, "{body}");
    assert!(w.tollgate.output.has("id_token_acr"));
    let authorize = w.op.last("authorize").expect("authorize");
    assert_eq!(
        authorize.param("acr_values").as_deref(),
        Some("urn:example:gold")
    );
    let w = evil("acr_values = [\"urn:example:gold\"]", |c| {
        c.insert("acr".into(), "urn:example:gold".into());
    })
    .await;
    assert_eq!(sign_in(&w).await.0, 302);
}

/// `kind = "google"`: the authorization request carries `hd`,
/// `access_type=offline` and a consent prompt (Google's conditions for a
/// hosted-domain login with a refresh token), and an ID token from another
/// hosted domain is refused with 403.
#[tokio::test]
async fn google_preset_asks_for_the_hosted_domain_and_checks_hd() {
    let w = evil(
        "kind = \"google\"\nhosted_domains = [\"example.com\"]",
        |c| {
            c.insert("hd".into(), "other.example".into());
        },
    )
    .await;
    let (status, body) = sign_in(&w).await;
    assert_eq!(status, 403, "{body}");
    assert!(w.tollgate.output.has("hosted_domain"));
    let authorize = w.op.last("authorize").expect("authorize");
    for (k, v) in [
        ("hd", "example.com"),
        ("access_type", "offline"),
        ("prompt", "consent"),
    ] {
        assert_eq!(authorize.param(k).as_deref(), Some(v), "{k}");
    }
    let w = evil(
        "kind = \"google\"\nhosted_domains = [\"example.com\"]",
        |c| {
            c.insert("hd".into(), "example.com".into());
        },
    )
    .await;
    assert_eq!(sign_in(&w).await.0, 302);
}

/// `kind = "gitlab"`: `groups_direct` from GitLab's ID token are groups
/// for rules.
#[tokio::test]
async fn gitlab_preset_reads_groups_direct() {
    let extra = "[[authorization.rules]]\npaths = [\"/\"]\nallow_groups = [\"acme/ops\"]\n";
    let w = World::start(
        evil_client(),
        WorldSetup {
            provider: "kind = \"gitlab\"",
            extra,
            before: Behaviour {
                claims: hook(|c: &mut serde_json::Map<String, serde_json::Value>| {
                    c.insert("groups_direct".into(), serde_json::json!(["acme/ops"]));
                }),
                ..Behaviour::default()
            },
            ..WorldSetup::default()
        },
    )
    .await;
    let mut b = Browser::new();
    let callback = support::evil::sign_in(&mut b, &w.tollgate.url("/app")).await;
    assert_eq!(callback.status, 302, "{}", callback.body);
    let page = b
        .follow(&w.tollgate.url(callback.location().expect("back")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        w.upstream.last().header("x-forwarded-groups"),
        Some("acme/ops")
    );
}

/// `provider.response_mode = "form_post"`: the provider POSTs the answer to
/// the callback (an auto-submitting form), the login cookie is
/// `SameSite=None; Secure` so a browser sends it on that cross-site POST,
/// and the state still binds the answer to the login.
#[tokio::test]
async fn form_post_callback_completes_the_login() {
    let port = free_port();
    let idp = Idp::start(port);
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let toml = Setup::basic(port, &idp, &url)
        .toml()
        .replace(
            "\n[session]\n",
            "\nresponse_mode = \"form_post\"\n[session]\n",
        )
        .replace("secure = false", "secure = true");
    let mut tollgate = Tollgate::spawn(&toml, port);
    tollgate.wait_ready().await;
    let mut b = Browser::new();
    let start = b.get(&tollgate.url("/inbox")).await;
    let login_cookie = start
        .set_cookies()
        .into_iter()
        .find(|c| c.contains("_login_"))
        .expect("login cookie");
    assert!(
        login_cookie.contains("SameSite=None") && login_cookie.contains("Secure"),
        "{login_cookie}"
    );
    let location = start.location().expect("to the provider").to_string();
    assert!(location.contains("response_mode=form_post"), "{location}");
    // The provider's answer is a page whose form POSTs code and state.
    let answer = b.login(&tollgate.url("/inbox"), "alice").await;
    assert!(answer.body.contains("method=\"post\""), "{}", answer.body);
    let callback = b.submit_form(&answer).await;
    assert_eq!(
        callback.status,
        302,
        "{}\n{}",
        callback.body,
        tollgate.output.text()
    );
    let page = b
        .follow(&tollgate.url(callback.location().expect("back")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with("/inbox"), "{}", page.url);
    // Without form_post configured, a POST to the callback is refused.
    let (_idp2, _up2, plain) = direct("", "").await;
    let resp = reqwest::Client::new()
        .post(plain.url("/oauth2/callback"))
        .form(&[("code", "x"), ("state", "y")])
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 405);
}

/// `kind = "entra"` with a multi-tenant authority, against the in-process
/// provider reproducing what Microsoft documents: discovery names the
/// issuer `…/{tenantid}/v2.0`, each ID token's `iss` carries its `tid`, no
/// RFC 9207 `iss` parameter, `email` may be absent (the UPN stands in), and
/// a user in too many groups gets `_claim_names.groups` instead, to be read
/// from Microsoft Graph (`transitiveMemberOf`, paged by `@odata.nextLink`).
/// A tenant outside `allowed_tenants` is refused.
#[tokio::test]
async fn entra_preset_checks_the_tenant_and_resolves_group_overage() {
    let world = |tid: &'static str| {
        World::start(
            evil_client(),
            WorldSetup {
                provider:
                    "kind = \"entra\"\nallowed_tenants = [\"tenant-a\"]\ngraph_url = \"{OP}\"",
                issuer_suffix: "/organizations/v2.0",
                before: Behaviour {
                    metadata: hook(|m: &mut serde_json::Map<String, serde_json::Value>| {
                        let base = m["issuer"].as_str().unwrap_or_default().to_string();
                        m.insert("issuer".into(), format!("{base}/{{tenantid}}/v2.0").into());
                        m.insert(
                            "authorization_response_iss_parameter_supported".into(),
                            false.into(),
                        );
                    }),
                    authorize: hook(|p: &mut Vec<(String, String)>| p.retain(|(k, _)| k != "iss")),
                    claims: hook(move |c: &mut serde_json::Map<String, serde_json::Value>| {
                        let base = c["iss"].as_str().unwrap_or_default().to_string();
                        c.insert("iss".into(), format!("{base}/{tid}/v2.0").into());
                        c.insert("tid".into(), tid.into());
                        c.remove("email");
                        c.insert("preferred_username".into(), "alice@contoso.example".into());
                        c.insert("roles".into(), serde_json::json!(["Reader"]));
                        c.insert("_claim_names".into(), serde_json::json!({"groups": "src1"}));
                        c.insert(
                            "_claim_sources".into(),
                            serde_json::json!({"src1": {"endpoint": "https://graph.windows.net/x/users/y/getMemberObjects"}}),
                        );
                    }),
                    ..Behaviour::default()
                },
                ..WorldSetup::default()
            },
        )
    };
    let w = world("tenant-a").await;
    let mut b = Browser::new();
    let callback = support::evil::sign_in(&mut b, &w.tollgate.url("/app")).await;
    assert_eq!(
        callback.status,
        302,
        "{}\n{}",
        callback.body,
        w.tollgate.output.text()
    );
    let page = b
        .follow(&w.tollgate.url(callback.location().expect("back")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = w.upstream.last();
    assert_eq!(
        seen.header("x-forwarded-email"),
        Some("alice@contoso.example")
    );
    assert_eq!(
        seen.header("x-forwarded-groups"),
        Some("Reader,group-1,group-2,group-3")
    );
    assert_eq!(
        w.op.count("v1.0/me/transitiveMemberOf/microsoft.graph.group"),
        2
    );

    let w = world("tenant-b").await;
    let (status, body) = sign_in(&w).await;
    assert_eq!(status, 400, "{body}");
    assert!(w.tollgate.output.has("id_token_iss"));
}

/// `kind = "github"` (a GitHub Enterprise Server at `issuer`), against the
/// in-process provider reproducing GitHub's documented OAuth endpoints
/// (`/login/oauth/authorize`, `/login/oauth/access_token`, the secret in
/// the form body) and REST API (`/api/v3/user`, `/user/emails`,
/// `/user/orgs` paged by `Link`, `/user/teams`): no ID token; the numeric
/// id is the subject, the verified primary email the email, organisations
/// and `org/team` the groups rules see.
#[tokio::test]
async fn github_preset_signs_in_from_the_rest_api() {
    let extra = "[[authorization.rules]]\npaths = [\"/\"]\nallow_groups = [\"acme/ops\"]\n";
    let w = World::start(
        Client {
            check: ClientCheck::Post("github-secret".into()),
            id: "tollgate",
            secret: Some("github-secret"),
            auth: "client_secret_post",
        },
        WorldSetup {
            provider: "kind = \"github\"",
            extra,
            ..WorldSetup::default()
        },
    )
    .await;
    // A reload keeps GitHub's fixed endpoints (a reloaded provider once
    // lost them and fell back to expecting an ID token).
    w.tollgate.signal("HUP");
    assert_eq!(
        w.tollgate
            .output
            .new_lines("configuration reloaded", 0)
            .len(),
        1
    );
    let mut b = Browser::new();
    let start = b.get(&w.tollgate.url("/app")).await;
    assert!(
        start
            .location()
            .is_some_and(|l| l.contains("/login/oauth/authorize?")
                && l.contains("scope=read%3Auser+user%3Aemail+read%3Aorg")),
        "{:?}",
        start.location()
    );
    let callback = support::evil::sign_in(&mut b, &w.tollgate.url("/app")).await;
    assert_eq!(
        callback.status,
        302,
        "{}\n{}",
        callback.body,
        w.tollgate.output.text()
    );
    let page = b
        .follow(&w.tollgate.url(callback.location().expect("back")))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("583231"));
    assert_eq!(
        seen.header("x-forwarded-email"),
        Some("octocat@example.com")
    );
    assert_eq!(
        seen.header("x-forwarded-preferred-username"),
        Some("octocat")
    );
    assert_eq!(
        seen.header("x-forwarded-groups"),
        Some("acme,globex,acme/ops")
    );
}

/// GitHub App user tokens expire (`expires_in`) and come with a refresh
/// token: tollgate refreshes them at GitHub's token endpoint with the
/// secret in the body, keeps the profile, and ends the session when GitHub
/// says `bad_refresh_token` (with status 200, as GitHub answers errors).
#[tokio::test]
async fn github_app_tokens_refresh_and_a_dead_refresh_token_ends_the_session() {
    let w = github_world(Behaviour {
        expires_in: Some(30),
        ..Behaviour::default()
    })
    .await;
    let mut b = github_signed_in(&w).await;
    let refreshes: Vec<_> =
        w.op.calls()
            .into_iter()
            .filter(|c| {
                c.endpoint == "login/oauth/access_token"
                    && c.param("grant_type").as_deref() == Some("refresh_token")
            })
            .collect();
    // The landing request and this one, each with the rotated token.
    assert_eq!(refreshes.len(), 2, "{}", w.tollgate.output.text());
    assert!(refreshes
        .iter()
        .all(|c| c.param("client_secret").as_deref() == Some("github-secret")));
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("583231"));
    assert_eq!(
        seen.header("x-forwarded-groups"),
        Some("acme,globex,acme/ops")
    );

    w.op.set(Behaviour {
        expires_in: Some(30),
        refresh_raw: Raw::new(
            200,
            "application/json",
            r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
        ),
        ..Behaviour::default()
    });
    let ended = b.get(&w.tollgate.url("/app/3")).await;
    assert_eq!(ended.status, 302, "{}", ended.body);
    assert!(
        ended
            .location()
            .is_some_and(|l| l.contains("/login/oauth/authorize?")),
        "{:?}",
        ended.location()
    );
    assert!(w.tollgate.output.has("bad_refresh_token"));
}

/// OAuth App tokens never expire and come without a refresh token: no
/// refresh is ever attempted, however close `refresh_before` is.
#[tokio::test]
async fn github_oauth_app_tokens_are_never_refreshed() {
    let w = github_world(Behaviour {
        token: hook(|t: &mut serde_json::Map<String, serde_json::Value>| {
            t.remove("expires_in");
            t.remove("refresh_token");
        }),
        ..Behaviour::default()
    })
    .await;
    let _signed_in = github_signed_in(&w).await;
    assert_eq!(w.op.count("login/oauth/access_token"), 1);
}

/// A browser signed in through GitHub, back on its page, then on another.
async fn github_signed_in(w: &World) -> Browser {
    let mut b = Browser::new();
    let callback = support::evil::sign_in(&mut b, &w.tollgate.url("/app")).await;
    let back = w.tollgate.url(callback.location().expect("back"));
    assert_eq!(b.follow(&back).await.status, 200);
    assert_eq!(b.get(&w.tollgate.url("/app/2")).await.status, 200);
    b
}

/// tollgate as a GitHub OAuth client (secret in the body) of the
/// in-process GitHub, every token due for refresh at once.
async fn github_world(before: Behaviour) -> World {
    World::start(
        Client {
            check: ClientCheck::Post("github-secret".into()),
            id: "tollgate",
            secret: Some("github-secret"),
            auth: "client_secret_post",
        },
        WorldSetup {
            provider: "kind = \"github\"",
            session: "refresh_before = \"60s\"",
            before,
            ..WorldSetup::default()
        },
    )
    .await
}
