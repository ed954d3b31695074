//! gRPC through tollgate, with a real gRPC server and client (Python
//! `grpcio`, the C-core implementation): tollgate speaks h2c to the
//! upstream (`upstream.url = "h2c://…"`), passes trailers and streams both
//! ways, and refuses a call without a valid bearer token as gRPC does
//! (`UNAUTHENTICATED`, never a page or a redirect) before it reaches the
//! server.

mod support;

use serde_json::Value;
use support::*;

struct World {
    idp: Idp,
    server: GrpcServer,
    tollgate: Tollgate,
}

impl World {
    async fn start(extra: &str) -> Self {
        let port = free_port();
        let idp = Idp::start(port);
        let server = GrpcServer::start();
        let upstream = server.url();
        let mut setup = Setup::basic(port, &idp, &upstream);
        let extra = format!("[authorization]\nbearer_audiences = [\"urn:tollgate:api\"]\n{extra}");
        setup.extra = &extra;
        let tollgate = Tollgate::start(&setup).await;
        Self {
            idp,
            server,
            tollgate,
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.tollgate.port)
    }

    async fn token(&self) -> String {
        self.idp.machine_token(Some("urn:tollgate:api")).await
    }
}

fn text(v: &Value, path: &[&str]) -> String {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or_default().to_string()
}

/// A unary call with a bearer token reaches the server with the identity
/// (and not the client's `Authorization`), and its trailers come back.
#[tokio::test]
async fn a_unary_call_with_a_bearer_token_passes_with_identity_and_trailers() {
    let w = World::start("").await;
    let out = grpc_call(&w.target(), "unary", Some(&w.token().await)).await;
    assert_eq!(out["code"], "OK", "{out}\n{}", w.tollgate.output.text());
    assert_eq!(out["replies"][0], "echo:hello");
    assert_eq!(text(&out, &["initial", "x-seen-user"]), "machine");
    assert_eq!(text(&out, &["trailing", "x-trailer"]), "unary");
}

/// Bidirectional streaming: each message is answered before the client
/// sends the next, so neither direction is buffered; trailers end it.
#[tokio::test]
async fn bidirectional_streaming_flows_both_ways_through_tollgate() {
    let w = World::start("").await;
    let out = grpc_call(&w.target(), "chat", Some(&w.token().await)).await;
    assert_eq!(out["code"], "OK", "{out}\n{}", w.tollgate.output.text());
    assert_eq!(
        out["replies"],
        serde_json::json!(["echo:m0", "echo:m1", "echo:m2"])
    );
    assert_eq!(text(&out, &["trailing", "x-trailer"]), "chat");
}

/// Without a token, or with a bad one, the call fails as gRPC:
/// `UNAUTHENTICATED`, and the server never sees it. A rule that denies
/// gives `PERMISSION_DENIED`.
#[tokio::test]
async fn calls_without_a_valid_token_are_refused_as_grpc_before_the_server() {
    let rules = r#"
[[authorization.rules]]
paths = ["/echo.Echo/Chat"]
allow_groups = ["admins"]
[[authorization.rules]]
paths = ["/"]
allow_any = true
"#;
    let w = World::start(rules).await;
    for (mode, token) in [
        ("unary", None),
        ("chat", None),
        ("unary", Some("not.a.jwt")),
    ] {
        let out = grpc_call(&w.target(), mode, token).await;
        assert_eq!(out["code"], "UNAUTHENTICATED", "{mode} {token:?}: {out}");
    }
    let out = grpc_call(&w.target(), "chat", Some(&w.token().await)).await;
    assert_eq!(out["code"], "PERMISSION_DENIED", "{out}");
    // Then one call that passes: once the server has logged it, it has
    // logged every call before it (one pipe, in order), and it is the
    // only one.
    let out = grpc_call(&w.target(), "unary", Some(&w.token().await)).await;
    assert_eq!(out["code"], "OK", "{out}");
    assert!(w.server.output.has("call machine"));
    assert_eq!(w.server.calls(), 1, "{}", w.server.output.text());
}
