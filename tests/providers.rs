//! Several providers at once (`[provider]` and `[[providers]]`), against two
//! real providers (two oidc-provider instances, two issuers): the sign-in
//! chooser, a login with the chosen one, sessions that stay with their
//! provider for refresh, rules and sign-out, and logins that only their
//! own provider can finish.

mod support;

use support::*;

/// Two providers, tollgate in front of a recording upstream. Every access
/// token is due for refresh at once (`refresh_before` beyond its life), so
/// each request after the login refreshes at the session's provider.
struct Two {
    corp: Idp,
    partner: Idp,
    upstream: Upstream,
    tollgate: Tollgate,
}

async fn two(extra: &str) -> Two {
    two_with(extra, "").await
}

/// As [`two`], with `extra` first in the `[[providers]]` entry of the
/// partner (keys of its own, then tables) and `server` keys.
async fn two_with(extra: &str, server: &str) -> Two {
    let port = free_port();
    let options = || IdpOptions {
        tollgate_ports: vec![port],
        access_token_ttl: Some(30),
        ..IdpOptions::default()
    };
    let corp = Idp::with(options());
    let partner = Idp::with(options());
    let upstream = Upstream::start().await;
    let up_url = upstream.url();
    let more = format!(
        r#"
[[providers]]
id = "partner"
name = "Partner"
issuer = "{partner}"
client_id = "tollgate-basic"
client_secret = "{BASIC_SECRET}"
{extra}"#,
        partner = partner.issuer,
    );
    let mut setup = Setup::basic(port, &corp, &up_url);
    setup.session = "refresh_before = \"60s\"";
    setup.server = server;
    setup.extra = &more;
    let config = setup.toml().replace(
        "[provider]\n",
        "[provider]\nid = \"corp\"\nname = \"Corp SSO\"\n",
    );
    let mut tollgate = Tollgate::spawn(&config, port);
    tollgate.wait_ready().await;
    Two {
        corp,
        partner,
        upstream,
        tollgate,
    }
}

async fn logins(idp: &Idp) -> u64 {
    idp.stats().await["logins"].as_u64().unwrap_or_default()
}

/// An unauthenticated browser is sent to the chooser, which offers each
/// provider by name and keeps the page to return to; the chosen provider
/// signs the user in, and the upstream learns which one it was.
#[tokio::test]
async fn an_unauthenticated_browser_chooses_a_provider_and_signs_in_with_it() {
    let w = two("").await;
    let mut b = Browser::new();
    let first = b.get(&w.tollgate.url("/inbox?x=1")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    assert_eq!(
        first.location(),
        Some(w.tollgate.url("/oauth2/start?rd=%2Finbox%3Fx%3D1").as_str())
    );
    let chooser = b.follow(&w.tollgate.url("/inbox?x=1")).await;
    assert_eq!(chooser.status, 200, "{}", chooser.body);
    for want in [
        "Sign in with Corp SSO",
        "Sign in with Partner",
        r#"href="/oauth2/start?provider=partner&amp;rd=%2Finbox%3Fx%3D1""#,
        r#"href="/oauth2/start?provider=corp&amp;rd=%2Finbox%3Fx%3D1""#,
    ] {
        assert!(chooser.body.contains(want), "{want} in {}", chooser.body);
    }
    // No login has begun: choosing is not starting.
    assert!(
        chooser.set_cookies().is_empty(),
        "{:?}",
        chooser.set_cookies()
    );

    let page = b
        .login(
            &w.tollgate
                .url("/oauth2/start?provider=partner&rd=%2Finbox%3Fx%3D1"),
            "bob",
        )
        .await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        w.tollgate.output.text()
    );
    assert!(page.url.ends_with("/inbox?x=1"), "{}", page.url);
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.header("x-forwarded-provider"), Some("partner"));
    assert_eq!((logins(&w.corp).await, logins(&w.partner).await), (0, 1));
}

/// A session refreshes at the provider that made it, never the other, and
/// signing out ends the session at that provider.
#[tokio::test]
async fn a_session_refreshes_and_signs_out_at_its_own_provider() {
    let w = two("").await;
    let mut b = Browser::new();
    let page = b
        .login(
            &w.tollgate.url("/oauth2/start?provider=partner&rd=/a"),
            "bob",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = b.get(&w.tollgate.url("/b")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    // The code and the landing request's refresh (this request may reuse
    // that refresh's answer).
    assert!(w.partner.token_requests().await >= 2);
    assert_eq!(w.corp.token_requests().await, 0);
    assert_eq!(
        w.upstream.last().header("x-forwarded-provider"),
        Some("partner")
    );

    let out = b.sign_out(&w.tollgate.url("/oauth2/sign_out")).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let location = out.location().expect("location");
    assert!(
        location.starts_with(&format!("{}/session/end", w.partner.issuer)),
        "{location}"
    );
}

/// A login begun with one provider cannot be finished with the other's
/// answer (a mix-up): the callback is refused, no session is made and
/// nothing reaches the upstream.
#[tokio::test]
async fn a_login_begun_at_one_provider_is_not_finished_by_the_other() {
    let w = two("").await;
    // The victim's browser begins a login with corp.
    let mut victim = Browser::new();
    let to_corp = victim
        .get(&w.tollgate.url("/oauth2/start?provider=corp&rd=/"))
        .await;
    assert_eq!(to_corp.status, 302);
    let corp_auth = url::Url::parse(to_corp.location().expect("location")).expect("url");
    let state = corp_auth
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    // The partner's answer for another login, with the victim's state.
    let mut other = Browser::new();
    let partner_cb = other
        .until_callback(
            &w.tollgate.url("/oauth2/start?provider=partner&rd=/"),
            "mallory",
        )
        .await;
    let mut mixed = url::Url::parse(&partner_cb).expect("url");
    let pairs: Vec<(String, String)> = mixed
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                state.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    mixed.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = victim.get(mixed.as_str()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        w.tollgate.output.has("iss_mismatch"),
        "{}",
        w.tollgate.output.text()
    );
    assert!(
        !refused
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("_tollgate=") && !c.contains("Max-Age=0")),
        "{:?}",
        refused.set_cookies()
    );
    assert_eq!(w.upstream.count(), 0);
}

/// A rule scoped with `providers` admits only that provider's users, even
/// when its other conditions would admit anyone.
#[tokio::test]
async fn a_rule_scoped_to_one_provider_refuses_the_other_providers_users() {
    let w = two(r#"
[[authorization.rules]]
name = "staff"
paths = ["/staff"]
providers = ["corp"]
allow_any = true

[[authorization.rules]]
allow_any = true
"#)
    .await;
    let mut partner_user = Browser::new();
    partner_user
        .login(
            &w.tollgate.url("/oauth2/start?provider=partner&rd=/"),
            "bob",
        )
        .await;
    let denied = partner_user.get(&w.tollgate.url("/staff")).await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    let elsewhere = partner_user.get(&w.tollgate.url("/news")).await;
    assert_eq!(elsewhere.status, 200, "{}", elsewhere.body);

    let mut corp_user = Browser::new();
    corp_user
        .login(&w.tollgate.url("/oauth2/start?provider=corp&rd=/"), "bob")
        .await;
    let admitted = corp_user.get(&w.tollgate.url("/staff")).await;
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    assert_eq!(
        w.upstream.last().header("x-forwarded-provider"),
        Some("corp")
    );
}

/// A login link naming no configured provider is a 400, not a guess.
#[tokio::test]
async fn a_login_link_naming_an_unknown_provider_is_refused() {
    let w = two("").await;
    let mut b = Browser::new();
    for id in ["nobody", "", "CORP"] {
        let page = b
            .get(&w.tollgate.url(&format!("/oauth2/start?provider={id}&rd=/")))
            .await;
        assert_eq!(page.status, 400, "{id}: {}", page.body);
        assert!(page.set_cookies().is_empty(), "{id}");
    }
}

/// A client-sent `X-Forwarded-Provider` never reaches the upstream.
#[tokio::test]
async fn a_client_sent_provider_header_is_replaced() {
    let w = two("").await;
    let mut b = Browser::new();
    b.login(&w.tollgate.url("/oauth2/start?provider=corp&rd=/"), "alice")
        .await;
    let url = w.tollgate.url("/x");
    let page = b
        .request(
            reqwest::Method::GET,
            &url,
            None,
            &[
                ("X-Forwarded-Provider", "partner"),
                ("x_forwarded_provider", "partner"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = w.upstream.last();
    assert_eq!(seen.header_all("x-forwarded-provider"), vec!["corp"]);
    assert!(seen.header("x_forwarded_provider").is_none());
}

/// `hosts` chooses the provider without a choice: a login for a host the
/// partner lists goes to the partner; any other goes to the one provider
/// that lists no host, so nobody sees the chooser.
#[tokio::test]
async fn a_provider_that_lists_a_host_signs_in_its_users_without_a_choice() {
    let w = two_with(
        "hosts = [\"partner.localhost\", \"*.partner.test\"]\n",
        "allowed_redirect_domains = [\"partner.localhost\", \".partner.test\"]",
    )
    .await;
    let mut b = Browser::new();
    for (rd, issuer) in [
        ("https%3A%2F%2Fpartner.localhost%2Fx", &w.partner.issuer),
        ("https%3A%2F%2Fapp.partner.test%2Fx", &w.partner.issuer),
        ("%2Fx", &w.corp.issuer),
    ] {
        let page = b
            .get(&w.tollgate.url(&format!("/oauth2/start?rd={rd}")))
            .await;
        assert_eq!(page.status, 302, "{rd}: {}", page.body);
        let location = page.location().expect("location");
        assert!(
            location.starts_with(&format!("{issuer}/auth?")),
            "{rd}: {location}"
        );
    }
    // An unauthenticated request on tollgate's own host: corp, directly.
    let first = b.get(&w.tollgate.url("/inbox")).await;
    assert_eq!(first.status, 302);
    assert!(
        first
            .location()
            .is_some_and(|l| l.starts_with(&format!("{}/auth?", w.corp.issuer))),
        "{:?}",
        first.location()
    );
}
