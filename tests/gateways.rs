//! Forward-auth for several sites behind one tollgate, through real front
//! proxies: nginx (`auth_request`, one `server_name` a site), Caddy
//! (`forward_auth`, one site block a site) and Traefik v3 (`forwardAuth`
//! middleware, one router a host). One sign-in on the first site's host
//! serves both sites (the session cookie is shared through
//! `session.domain`), a browser asking for the second site comes back to
//! it, and a rule for the second site's host refuses a user the first
//! site lets in, before the second site's upstream sees anything.
//!
//! Traefik is built from source by `tests/traefik/build.sh` (test.sh runs
//! it); when it could not be built, its test says so and does nothing.

mod support;

use support::*;

const APP1: &str = "app1.tollgate.localhost";
const APP2: &str = "app2.tollgate.localhost";

struct World {
    _idp: Idp,
    app1: Upstream,
    app2: Upstream,
    tollgate: Tollgate,
    front: Front,
}

async fn world(front: &str) -> Option<World> {
    let traefik = match front {
        "traefik" => match traefik_binary() {
            Some(b) => Some(b),
            None => return None,
        },
        _ => None,
    };
    let (tg_port, front_port) = (free_port(), free_port());
    let public = format!("http://{APP1}:{front_port}");
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![],
        front_urls: vec![public.clone()],
        ..IdpOptions::default()
    });
    let (app1, app2) = (Upstream::start().await, Upstream::start().await);
    let (up1, up2) = (app1.url(), app2.url());
    let mut setup = Setup::basic(tg_port, &idp, &up1);
    setup.public_url = Some(&public);
    let server = format!(
        "trusted_proxies = [\"127.0.0.1\"]\nallowed_redirect_domains = [\"*.tollgate.localhost:{front_port}\"]"
    );
    setup.server = &server;
    setup.session = "domain = \"tollgate.localhost\"";
    let rules = format!(
        r#"
[[authorization.rules]]
name = "app2 is for admins"
hosts = ["{APP2}"]
paths = ["/"]
allow_groups = ["admins"]
[[authorization.rules]]
paths = ["/"]
allow_any = true
"#
    );
    setup.extra = &rules;
    let tollgate = Tollgate::start(&setup).await;
    let sites = [
        Site {
            host: APP1,
            upstream: &up1,
        },
        Site {
            host: APP2,
            upstream: &up2,
        },
    ];
    let front = match (front, traefik) {
        ("nginx", _) => Front::nginx_sites(front_port, tg_port, APP1, &sites).await,
        ("caddy", _) => Front::caddy_sites(front_port, tg_port, &sites).await,
        (_, Some(bin)) => Front::traefik_sites(&bin, front_port, tg_port, &sites).await,
        _ => unreachable!("traefik without a binary returned above"),
    };
    Some(World {
        _idp: idp,
        app1,
        app2,
        tollgate,
        front,
    })
}

/// The Traefik binary, or `None` (with a note) when it was not built.
fn traefik_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("TOLLGATE_TRAEFIK_BIN").map(std::path::PathBuf::from);
    match path.filter(|p| p.exists()) {
        Some(p) => Some(p),
        None => {
            eprintln!(
                "SKIPPED: no Traefik binary (TOLLGATE_TRAEFIK_BIN unset or missing); \
                 tests/traefik/build.sh builds one, ./test.sh runs it"
            );
            None
        }
    }
}

impl World {
    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.front.port)
    }
}

/// What every front must do; `user_header` is the header its upstreams
/// get the user in.
async fn two_sites_one_sign_in_and_per_site_rules(w: &World, user_header: &str) {
    let browser = || Browser::resolving(&[APP1, APP2]);
    let mut alice = browser();
    let page = alice.login(&w.url(APP2, "/reports?q=1"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}\n{}",
        page.body,
        w.tollgate.output.text(),
        w.front.output.text()
    );
    assert_eq!(
        page.url,
        w.url(APP2, "/reports?q=1"),
        "back on the site asked for"
    );
    assert_eq!(w.app2.last().header(user_header), Some("alice"));
    assert_eq!(
        alice.get(&w.url(APP1, "/home")).await.status,
        200,
        "no second sign-in"
    );
    assert_eq!(w.app1.last().header(user_header), Some("alice"));

    let mut bob = browser();
    assert_eq!(bob.login(&w.url(APP1, "/"), "bob").await.status, 200);
    let before = w.app2.count();
    assert_eq!(bob.get(&w.url(APP2, "/reports")).await.status, 403);
    assert_eq!(
        w.app2.count(),
        before,
        "a refused request reaches no upstream"
    );
    assert!(
        w.tollgate.output.has("app2 is for admins"),
        "the log names the rule"
    );
}

#[tokio::test]
async fn nginx_serves_two_sites_with_one_sign_in_and_per_site_rules() {
    let w = world("nginx").await.expect("nginx");
    two_sites_one_sign_in_and_per_site_rules(&w, "x-user").await;
}

#[tokio::test]
async fn caddy_serves_two_sites_with_one_sign_in_and_per_site_rules() {
    let w = world("caddy").await.expect("caddy");
    two_sites_one_sign_in_and_per_site_rules(&w, "x-auth-request-user").await;
}

#[tokio::test]
async fn traefik_serves_two_sites_with_one_sign_in_and_per_site_rules() {
    let Some(w) = world("traefik").await else {
        return;
    };
    two_sites_one_sign_in_and_per_site_rules(&w, "x-auth-request-user").await;
}
