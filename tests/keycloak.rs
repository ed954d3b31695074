//! Against a real Keycloak (26.x, the server distribution from Maven
//! Central, started by the test): workload identity end to end. tollgate
//! holds no client secret; it authenticates with an assertion file minted
//! by a test "cluster issuer" (a key pair whose JWKS the test serves, as a
//! Kubernetes API server serves its service-account issuer), which
//! Keycloak trusts through its Kubernetes identity provider and federated
//! client authentication (`federated-jwt`). The file is rotated mid-test,
//! the signing key too, and an expired file is never sent.

mod support;

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};
use support::keycloak::{self, Keycloak};
use support::*;

const SUBJECT: &str = "system:serviceaccount:apps:tollgate";
const CLIENT: &str = "tollgate-workload";

/// The cluster issuer: two signing keys, discovery and JWKS over HTTP.
struct ClusterIssuer {
    url: String,
    keys: Vec<(jsonwebtoken::EncodingKey, jsonwebtoken::Header)>,
    _server: tokio::task::JoinHandle<()>,
}

impl ClusterIssuer {
    async fn start(dir: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let url = format!("http://{addr}");
        let mut keys = Vec::new();
        let mut jwks = Vec::new();
        for name in ["k1", "k2"] {
            let file = dir.join(format!("{name}.pem"));
            let out = std::process::Command::new(binary())
                .args(["generate-key", "--algorithm", "ES256", "--out"])
                .arg(&file)
                .output()
                .expect("generate-key");
            assert!(out.status.success());
            let set: Value = serde_json::from_slice(&out.stdout).expect("jwks");
            let jwk = set["keys"][0].clone();
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.kid = jwk["kid"].as_str().map(str::to_string);
            let pem = std::fs::read(&file).expect("pem");
            keys.push((
                jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("key"),
                header,
            ));
            jwks.push(jwk);
        }
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/openid/v1/jwks")});
        let jwks = json!({ "keys": jwks });
        let server = tokio::spawn(serve(listener, discovery, jwks));
        Self {
            url,
            keys,
            _server: server,
        }
    }

    /// Writes a projected-token-like assertion for Keycloak's realm issuer,
    /// signed with key `k`, expiring at `exp`, atomically (as the kubelet).
    fn write(&self, path: &Path, audience: &str, k: usize, exp: i64) {
        let now = tollgate::session::now();
        let claims = json!({
            "iss": self.url, "sub": SUBJECT, "aud": [audience],
            "iat": now, "nbf": now, "exp": exp, "jti": random_hex(),
        });
        let (key, header) = &self.keys[k];
        let jwt = jsonwebtoken::encode(header, &claims, key).expect("sign");
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, jwt).expect("write");
        std::fs::rename(tmp, path).expect("rename");
    }
}

/// Serves the issuer's discovery document and JWKS, nothing else.
async fn serve(listener: tokio::net::TcpListener, discovery: Value, jwks: Value) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (discovery, jwks) = (discovery.clone(), jwks.clone());
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = match req.uri().path() {
                        "/.well-known/openid-configuration" => Some(discovery.to_string()),
                        "/openid/v1/jwks" => Some(jwks.to_string()),
                        _ => None,
                    };
                    let resp = match body {
                        Some(b) => hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(b))),
                        None => hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::new())),
                    };
                    async move { resp }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[tokio::test]
async fn workload_identity_against_keycloak_with_a_rotated_assertion_file() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = ClusterIssuer::start(dir.path()).await;
    let kc = Keycloak::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    kc.create_realm(&json!({
        "realm": "apps",
        "enabled": true,
        "users": [keycloak::user("alice", "alice-password", &[])],
        "identityProviders": [{
            "alias": "cluster", "providerId": "kubernetes", "enabled": true,
            "config": {"issuer": cluster.url},
        }],
        "clients": [{
            "clientId": CLIENT, "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "standardFlowEnabled": true,
            "clientAuthenticatorType": "federated-jwt",
            "redirectUris": [format!("{base}/oauth2/callback")],
            "attributes": {
                "jwt.credential.issuer": "cluster",
                "jwt.credential.sub": SUBJECT,
                "post.logout.redirect.uris": format!("{base}/*"),
            },
        }],
    }))
    .await;
    let issuer = kc.issuer("apps");
    let token = dir.path().join("token");
    let fresh = || tollgate::session::now() + 600;
    cluster.write(&token, &issuer, 0, fresh());
    let upstream = Upstream::start().await;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{base}"
shutdown_grace = "2s"
[upstream]
url = "{upstream}"
[provider]
issuer = "{issuer}"
client_id = "{CLIENT}"
client_auth = "client_assertion_file"
client_assertion_file = "{token}"
[session]
secret = "{SESSION_KEY}"
secure = false
refresh_before = "10m"
[log]
level = "debug"
"#,
        upstream = upstream.url(),
        token = token.display(),
    );
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config).expect("config");
    let mut tollgate = Tollgate::spawn_at(&path, port);
    tollgate.wait_ready().await;

    // Login: the code exchange authenticates with the file's assertion,
    // and the landing request's refresh (Keycloak's 5-minute tokens are
    // due under refresh_before = 10m) with the same file.
    let mut b = Browser::new();
    let form = b.follow(&tollgate.url("/app")).await;
    let page = keycloak::sign_in(&mut b, form, "alice", "alice-password").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    assert_eq!(
        upstream.last().header("x-forwarded-email"),
        Some("alice@example.com")
    );

    assert_eq!(
        tollgate.output.lines_with("access token refreshed").len(),
        1
    );

    // Rotated by its writer, signed with the cluster's other key: the next
    // refresh reads and sends the new one.
    cluster.write(&token, &issuer, 1, fresh());
    let mut next = Browser::new();
    // Keycloak's tokens make a chunked session: every cookie goes along.
    for name in b.cookie_names() {
        next.set_cookie(&name, &b.cookie(&name).expect("value"));
    }
    let page = next.get(&tollgate.url("/app/again")).await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );

    // Expired: never sent; a new login fails and the log says why.
    cluster.write(&token, &issuer, 0, tollgate::session::now() - 60);
    let mut other = Browser::new();
    let form = other.follow(&tollgate.url("/app")).await;
    let page = keycloak::sign_in(&mut other, form, "alice", "alice-password").await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(tollgate.output.has("expired"), "{}", tollgate.output.text());
    drop(kc);
}

/// `provider.kind = "keycloak"`: realm roles and client roles (as
/// `client:role`) are groups for rules, read from the access token since
/// Keycloak's role mappers leave them out of the ID token by default.
#[tokio::test]
async fn keycloak_preset_turns_realm_and_client_roles_into_groups() {
    let kc = Keycloak::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let secret = "keycloak-preset-client-secret";
    let mut alice = keycloak::user("alice", "alice-password", &["auditor"]);
    alice["clientRoles"] = json!({"tollgate-kc": ["editor"]});
    kc.create_realm(&json!({
        "realm": "apps",
        "enabled": true,
        "roles": {
            "realm": [{"name": "auditor"}],
            "client": {"tollgate-kc": [{"name": "editor"}]},
        },
        "users": [alice, keycloak::user("bob", "bob-password", &[])],
        "clients": [{
            "clientId": "tollgate-kc", "enabled": true, "protocol": "openid-connect",
            "publicClient": false, "standardFlowEnabled": true, "secret": secret,
            "redirectUris": [format!("{base}/oauth2/callback")],
        }],
    }))
    .await;
    let upstream = Upstream::start().await;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{base}"
shutdown_grace = "2s"
[upstream]
url = "{upstream}"
[provider]
kind = "keycloak"
issuer = "{issuer}"
client_id = "tollgate-kc"
client_secret = "{secret}"
[session]
secret = "{SESSION_KEY}"
secure = false
[[authorization.rules]]
name = "editors"
paths = ["/edit"]
allow_groups = ["tollgate-kc:editor"]
[[authorization.rules]]
name = "auditors"
paths = ["/"]
allow_groups = ["auditor"]
"#,
        upstream = upstream.url(),
        issuer = kc.issuer("apps"),
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config).expect("config");
    let mut tollgate = Tollgate::spawn_at(&path, port);
    tollgate.wait_ready().await;

    let mut a = Browser::new();
    let form = a.follow(&tollgate.url("/edit/doc")).await;
    let page = keycloak::sign_in(&mut a, form, "alice", "alice-password").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        tollgate.output.text()
    );
    let groups = upstream
        .last()
        .header("x-forwarded-groups")
        .map(str::to_string);
    let groups = groups.unwrap_or_default();
    assert!(
        groups.split(',').any(|g| g == "auditor")
            && groups.split(',').any(|g| g == "tollgate-kc:editor"),
        "{groups}"
    );

    let mut b = Browser::new();
    let form = b.follow(&tollgate.url("/edit/doc")).await;
    let page = keycloak::sign_in(&mut b, form, "bob", "bob-password").await;
    assert_eq!(page.status, 403, "{}", page.body);
}
