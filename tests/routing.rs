//! One tollgate for several hosts (`[[upstreams]]`), against the real
//! provider: each host and path prefix reaches its own upstream, a host no
//! entry lists is answered 421 and reaches none, one sign-in (on
//! tollgate's own host, the session cookie shared through
//! `session.domain`) serves every host, and rules judge each host.
//!
//! The hosts are `*.tollgate.localhost` names, which browsers find on the
//! loopback interface (RFC 6761); the test client resolves them so too.

mod support;

use support::*;

const AUTH: &str = "auth.tollgate.localhost";
const APP1: &str = "app1.tollgate.localhost";
const APP2: &str = "app2.tollgate.localhost";

/// Three upstreams: app1, app2, and app2's `/api`.
struct Site {
    idp: Idp,
    app1: Upstream,
    app2: Upstream,
    api: Upstream,
    tollgate: Tollgate,
}

impl Site {
    /// One session for every host (`session.domain`).
    async fn start(extra: &str) -> Self {
        Self::with(extra, true).await
    }

    async fn with(extra: &str, shared: bool) -> Self {
        let port = free_port();
        let public = format!("http://{AUTH}:{port}");
        let mut front_urls = vec![public.clone()];
        if !shared {
            front_urls.extend([APP1, APP2].map(|h| format!("http://{h}:{port}")));
        }
        let idp = Idp::with(IdpOptions {
            front_urls,
            ..IdpOptions::default()
        });
        let (app1, app2, api) = (
            Upstream::start().await,
            Upstream::start().await,
            Upstream::start().await,
        );
        let entries = format!(
            r#"
[[upstreams]]
host = "{APP1}"
url = "{}"
[[upstreams]]
host = "{APP2}"
url = "{}"
[[upstreams]]
host = "{APP2}"
path_prefix = "/api"
url = "{}"
timeout = "3s"
{extra}"#,
            app1.url(),
            app2.url(),
            api.url()
        );
        let mut setup = Setup::basic(port, &idp, "UNUSED");
        setup.public_url = Some(&public);
        if shared {
            setup.session = "domain = \"tollgate.localhost\"";
        }
        setup.extra = &entries;
        let config = setup.toml().replace("url = \"UNUSED\"\n", "");
        let mut tollgate = Tollgate::spawn(&config, port);
        tollgate.wait_ready().await;
        Self {
            idp,
            app1,
            app2,
            api,
            tollgate,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.tollgate.port)
    }

    fn browser() -> Browser {
        Browser::resolving(&[AUTH, APP1, APP2, "other.tollgate.localhost"])
    }

    fn calls(&self) -> (usize, usize, usize) {
        (self.app1.count(), self.app2.count(), self.api.count())
    }
}

/// Before any sign-in: an API client is refused on a known host, a host
/// no entry lists gets 421 without reaching any upstream, and a browser on
/// app1 is sent to sign in on tollgate's own host, to come back to app1.
#[tokio::test]
async fn an_unknown_host_gets_421_and_a_known_one_signs_in_on_the_auth_host() {
    let site = Site::start("").await;
    let mut b = Site::browser();
    let api = b
        .request(
            reqwest::Method::GET,
            &site.url(APP1, "/x"),
            None,
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(api.status, 401, "{}", api.body);
    let other = b.get(&site.url("other.tollgate.localhost", "/x")).await;
    assert_eq!(other.status, 421, "{}", other.body);
    let raw_ip = b.get(&site.tollgate.url("/x")).await;
    assert_eq!(raw_ip.status, 421, "an IP address is no listed host");
    assert_eq!(site.calls(), (0, 0, 0));

    let first = b.get(&site.url(APP1, "/inbox?n=1")).await;
    assert_eq!(first.status, 302);
    let start = url::Url::parse(first.location().expect("location")).expect("url");
    assert_eq!(start.host_str(), Some(AUTH));
    assert_eq!(start.path(), "/oauth2/start");
    let rd: Vec<(String, String)> = start.query_pairs().into_owned().collect();
    assert_eq!(
        rd,
        vec![("rd".to_string(), site.url(APP1, "/inbox?n=1"))],
        "comes back to the page asked for"
    );
}

/// One sign-in serves every host: each host and path prefix reaches its
/// own upstream with the identity, the session cookie is set for the
/// shared domain, and a signed-in request for an unknown host still
/// reaches no upstream.
#[tokio::test]
async fn each_host_and_prefix_reaches_its_own_upstream_after_one_sign_in() {
    let site = Site::start("").await;
    let mut b = Site::browser();
    let page = b.login(&site.url(APP1, "/inbox?n=1"), "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, site.url(APP1, "/inbox?n=1"));
    let seen = site.app1.last();
    assert_eq!(seen.path, "/inbox?n=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(
        seen.header("host"),
        Some(format!("{APP1}:{}", site.tollgate.port).as_str())
    );

    let page = b.get(&site.url(APP2, "/home")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(site.app2.last().path, "/home");
    assert_eq!(site.app2.last().header("x-forwarded-user"), Some("alice"));
    for path in ["/api", "/api/items?x=1"] {
        assert_eq!(b.get(&site.url(APP2, path)).await.status, 200);
        assert_eq!(site.api.last().path, path);
    }
    assert_eq!(b.get(&site.url(APP2, "/apis")).await.status, 200);
    assert_eq!(site.app2.last().path, "/apis", "a prefix ends at a segment");
    assert_eq!(b.get(&site.url(APP1, "/api/items")).await.status, 200);
    assert_eq!(
        site.app1.last().path,
        "/api/items",
        "the prefix is app2's only"
    );

    let before = site.calls();
    let other = b.get(&site.url("other.tollgate.localhost", "/")).await;
    assert_eq!(other.status, 421);
    assert_eq!(site.calls(), before);
}

/// `authorization.rules[].hosts` judge the host the request was routed
/// by: bob (not an admin) is in on app1, refused on app2.
#[tokio::test]
async fn rules_judge_each_host_on_its_own() {
    let rules = format!(
        r#"
[[authorization.rules]]
name = "app2 admins"
hosts = ["{APP2}"]
paths = ["/"]
allow_groups = ["admins"]
[[authorization.rules]]
paths = ["/"]
allow_any = true
"#
    );
    let site = Site::start(&rules).await;
    let mut bob = Site::browser();
    let page = bob.login(&site.url(APP1, "/"), "bob").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let before = site.calls();
    assert_eq!(bob.get(&site.url(APP2, "/")).await.status, 403);
    assert_eq!(bob.get(&site.url(APP2, "/api/x")).await.status, 403);
    assert_eq!(
        site.calls(),
        before,
        "a refused request reaches no upstream"
    );
    let mut alice = Site::browser();
    assert_eq!(alice.login(&site.url(APP2, "/"), "alice").await.status, 200);
}

/// The third host is a gRPC service over h2c (a real grpcio server and
/// client): a call with a bearer token is routed by its `:authority` and
/// streams both ways; without one it is `UNAUTHENTICATED` and reaches no
/// upstream; the web apps are unaffected.
#[tokio::test]
async fn a_grpc_host_is_routed_over_h2c_beside_the_web_apps() {
    const GRPC: &str = "grpc.tollgate.localhost";
    let server = GrpcServer::start();
    let extra = format!(
        "[[upstreams]]\nhost = \"{GRPC}\"\nurl = \"{}\"\n\
         [authorization]\nbearer_audiences = [\"urn:tollgate:api\"]\n",
        server.url()
    );
    let site = Site::start(&extra).await;
    let target = format!("127.0.0.1:{}", site.tollgate.port);
    let authority = format!("{GRPC}:{}", site.tollgate.port);
    let refused = grpc_call_to(&target, Some(&authority), "chat", None).await;
    assert_eq!(refused["code"], "UNAUTHENTICATED", "{refused}");
    let token = site.idp.machine_token(Some("urn:tollgate:api")).await;
    let out = grpc_call_to(&target, Some(&authority), "chat", Some(&token)).await;
    assert_eq!(out["code"], "OK", "{out}\n{}", site.tollgate.output.text());
    assert_eq!(
        out["replies"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2"])
    );
    assert!(server.output.has("call machine"));
    assert_eq!(server.calls(), 1);
    assert_eq!(site.calls(), (0, 0, 0));
    // The same call for a web app's host goes to that app, not the
    // gRPC server: routing follows `:authority`.
    let app1 = format!("{APP1}:{}", site.tollgate.port);
    let _ = grpc_call_to(&target, Some(&app1), "unary", Some(&token)).await;
    assert_eq!(site.app1.count(), 1);
}

/// Without `session.domain`, each listed host keeps its own session: a
/// browser signs in on the host itself, through that host's callback
/// (registered with the provider), and the session cookie is host-only.
#[tokio::test]
async fn without_a_session_domain_each_host_signs_in_through_its_own_callback() {
    let site = Site::with("", false).await;
    let mut b = Site::browser();
    for host in [APP1, APP2] {
        let first = b.get(&site.url(host, "/x")).await;
        assert_eq!(first.status, 302);
        let to_idp = url::Url::parse(first.location().expect("location")).expect("url");
        let redirect_uri = to_idp
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned());
        assert_eq!(redirect_uri, Some(site.url(host, "/oauth2/callback")));
    }
    let mut b = Site::browser();
    let callback = b.until_callback(&site.url(APP2, "/inbox"), "alice").await;
    assert!(
        callback.starts_with(&site.url(APP2, "/oauth2/callback")),
        "{callback}"
    );
    let done = b.get(&callback).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some(site.url(APP2, "/inbox").as_str()));
    let cookies = done.set_cookies();
    assert!(!cookies.is_empty());
    assert!(
        cookies
            .iter()
            .all(|c| !c.to_ascii_lowercase().contains("domain=")),
        "host-only: {cookies:?}"
    );
    assert_eq!(b.get(&site.url(APP2, "/inbox")).await.status, 200);
    assert_eq!(site.app2.last().header("x-forwarded-user"), Some("alice"));
}

/// `upstream.url = "unix:///…"`: the upstream on a Unix domain socket
/// gets the judged path, the client's host and the identity.
#[tokio::test]
async fn a_unix_socket_upstream_gets_the_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("app.sock");
    let app = Upstream::start_unix(&socket).await;
    let port = free_port();
    let idp = Idp::start(port);
    let url = format!("unix://{}", socket.display());
    let tollgate = Tollgate::start(&Setup::basic(port, &idp, &url)).await;
    let mut b = Browser::new();
    let page = b.login(&tollgate.url("/a/./b?x=1"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    let seen = app.last();
    assert_eq!(seen.path, "/a/b?x=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}

/// An absolute-form target (or HTTP/2 `:authority`) beside a `Host` that
/// names another host is refused: a proxy in front may have judged the
/// one, tollgate would route by the other.
#[tokio::test]
async fn a_target_host_that_disagrees_with_host_is_refused() {
    let site = Site::start("").await;
    let port = site.tollgate.port;
    let req = format!(
        "GET http://{APP1}:{port}/x HTTP/1.1\r\nHost: {APP2}:{port}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(statuses(&raw(port, req.as_bytes()).await), vec![400]);
    let same = format!(
        "GET http://{APP1}:{port}/x HTTP/1.1\r\nHost: {APP1}:{port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(statuses(&raw(port, same.as_bytes()).await), vec![401]);
    assert_eq!(site.calls(), (0, 0, 0));
}

/// With one sign-in for every host, `/oauth2/start` asked on another
/// listed host moves to `public_url`'s host (where the callback finds the
/// login cookie) and the sign-in comes back to the first host.
#[tokio::test]
async fn a_start_on_another_host_moves_to_the_auth_host_and_comes_back() {
    let site = Site::start("").await;
    let mut b = Site::browser();
    let first = b.get(&site.url(APP2, "/oauth2/start?rd=/inbox")).await;
    assert_eq!(first.status, 302);
    let to = url::Url::parse(first.location().expect("location")).expect("url");
    assert_eq!(to.host_str(), Some(AUTH));
    let rd: Vec<(String, String)> = to.query_pairs().into_owned().collect();
    assert_eq!(rd, vec![("rd".to_string(), site.url(APP2, "/inbox"))]);
    let page = b
        .login(&site.url(APP2, "/oauth2/start?rd=/inbox"), "alice")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url, site.url(APP2, "/inbox"));
}
