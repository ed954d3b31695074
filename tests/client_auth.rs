//! Client authentication without a shared secret, and pushed authorization
//! requests, against the real provider (panva's oidc-provider): each method
//! logs in, refreshes and signs out (revocation) with the same credential.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::*;

/// Access tokens live 30 s and tollgate refreshes 60 s before expiry: the
/// first request after a login refreshes, with no clock to wait for.
const DUE: &str = "refresh_before = \"60s\"";

struct World {
    idp: Idp,
    upstream: Upstream,
    tollgate: Tollgate,
    _dir: tempfile::TempDir,
}

/// `tollgate generate-key --algorithm ALG --out FILE`: the file and the
/// public key set it printed.
fn generate_key(dir: &Path, alg: &str) -> (PathBuf, Value) {
    let file = dir.join(format!("{alg}.pem"));
    let out = Command::new(binary())
        .args(["generate-key", "--algorithm", alg, "--out"])
        .arg(&file)
        .output()
        .expect("run generate-key");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwks: Value = serde_json::from_slice(&out.stdout).expect("a JWK set on stdout");
    (file, jwks)
}

/// A provider with `client` registered, and tollgate as that client with
/// `provider` keys (besides issuer and client id).
async fn world(
    client: (&str, &str, Value),
    idp_options: IdpOptions,
    provider: &str,
    dir: tempfile::TempDir,
) -> World {
    let port = free_port();
    let (id, method, metadata) = client;
    let mut metadata = metadata;
    // A jwks_uri pointing at tollgate itself: the provider fetches the
    // published keys from `/oauth2/client_jwks`.
    if metadata.get("jwks_uri") == Some(&json!("TOLLGATE")) {
        metadata["jwks_uri"] = json!(format!("http://127.0.0.1:{port}/oauth2/client_jwks"));
    }
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![port],
        access_token_ttl: Some(30),
        extra_clients: vec![(id.to_string(), method.to_string(), metadata)],
        ..idp_options
    });
    let upstream = Upstream::start().await;
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
shutdown_grace = "5s"

[upstream]
url = "{upstream}"

[provider]
issuer = "{issuer}"
client_id = "{id}"
{provider}

[session]
secret = "{SESSION_KEY}"
secure = false
{DUE}

[log]
level = "debug"
"#,
        upstream = upstream.url(),
        issuer = idp.issuer,
    );
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config).expect("write config");
    let mut tollgate = Tollgate::spawn_at(&path, port);
    tollgate.wait_ready().await;
    World {
        idp,
        upstream,
        tollgate,
        _dir: dir,
    }
}

/// Login, a refresh on the next request, and sign-out with revocation:
/// three calls that authenticate the client, all accepted.
async fn login_refresh_sign_out(w: &World) {
    let mut b = Browser::new();
    let page = b.login(&w.tollgate.url("/app"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "login: {}\n{}\n{}",
        page.body,
        w.tollgate.output.text(),
        w.idp.output.text()
    );
    assert_eq!(w.upstream.count(), 1);
    // The code exchange, then the landing request's refresh (already due).
    assert_eq!(w.idp.token_requests().await, 2, "{}", w.idp.output.text());
    let page = b.get(&w.tollgate.url("/app/again")).await;
    assert_eq!(page.status, 200, "after refresh: {}", page.body);
    b.sign_out(&w.tollgate.url("/oauth2/sign_out")).await;
    // Revocation runs beside the sign-out answer: wait for its log line.
    let revoked = w.idp.output.new_lines("POST /token/revocation -> 200", 0);
    assert_eq!(revoked.len(), 1, "{}", w.idp.output.text());
    // The JWT methods never send an Authorization header (every request
    // line is in by now: the revocation line came last).
    assert!(
        w.idp
            .output
            .lines_with("authorization-header=present")
            .is_empty(),
        "{}",
        w.idp.output.text()
    );
}

/// tollgate as a `private_key_jwt` client with a fresh ES256 key, which
/// the provider fetches from `/oauth2/client_jwks`; `extra`: more
/// `[provider]` keys.
async fn key_fetched_from_client_jwks(extra: &str) -> World {
    let dir = tempfile::tempdir().expect("dir");
    let (key, _) = generate_key(dir.path(), "ES256");
    world(
        (
            "tollgate-pkjwt",
            "private_key_jwt",
            json!({"jwks_uri": "TOLLGATE", "token_endpoint_auth_signing_alg": "ES256"}),
        ),
        IdpOptions::default(),
        &format!(
            "client_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\n{extra}",
            key.display()
        ),
        dir,
    )
    .await
}

#[tokio::test]
async fn private_key_jwt_with_keys_the_provider_fetches_from_client_jwks() {
    let w = key_fetched_from_client_jwks("").await;
    login_refresh_sign_out(&w).await;
    let jwks: Value = reqwest::get(w.tollgate.url("/oauth2/client_jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "a private part was published"
    );
}

/// PS256 and EdDSA keys, registered inline as `jwks` at the provider, with
/// the issuer as the assertion's audience.
#[tokio::test]
async fn private_key_jwt_with_rsa_pss_and_eddsa_keys_registered_inline() {
    for alg in ["PS256", "EdDSA"] {
        let dir = tempfile::tempdir().expect("dir");
        let (key, jwks) = generate_key(dir.path(), alg);
        let w = world(
            (
                "tollgate-pkjwt",
                "private_key_jwt",
                json!({"jwks": jwks, "token_endpoint_auth_signing_alg": alg}),
            ),
            IdpOptions::default(),
            &format!(
                "client_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\nclient_key_algorithm = \"{alg}\"\nclient_assertion_audience = \"issuer\"",
                key.display()
            ),
            dir,
        )
        .await;
        login_refresh_sign_out(&w).await;
    }
}

#[tokio::test]
async fn client_secret_jwt_logs_in_refreshes_and_signs_out() {
    let secret = "a-client-secret-of-at-least-32-bytes-for-hs256";
    let w = world(
        (
            "tollgate-secret-jwt",
            "client_secret_jwt",
            json!({"client_secret": secret}),
        ),
        IdpOptions::default(),
        &format!("client_auth = \"client_secret_jwt\"\nclient_secret = \"{secret}\""),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    login_refresh_sign_out(&w).await;
}

/// A test "cluster issuer": the key that signs the assertion file, as a
/// kubelet would sign a projected service-account token.
struct ClusterIssuer {
    key: jsonwebtoken::EncodingKey,
    header: jsonwebtoken::Header,
    jwks: Value,
}

impl ClusterIssuer {
    fn new(dir: &Path) -> Self {
        let (file, jwks) = generate_key(dir, "ES256");
        let pem = std::fs::read(file).expect("key");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = jwks["keys"][0]["kid"].as_str().map(str::to_string);
        Self {
            key: jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("pem"),
            header,
            jwks,
        }
    }

    /// Writes a fresh assertion (new `jti`: the provider refuses replays)
    /// for `client_id` at `token_endpoint`, expiring at `exp`.
    fn write(&self, path: &Path, client_id: &str, token_endpoint: &str, exp: i64) {
        let now = tollgate::session::now();
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": token_endpoint,
            "jti": random_hex(), "iat": now, "exp": exp,
        });
        let jwt = jsonwebtoken::encode(&self.header, &claims, &self.key).expect("sign");
        // Written whole and renamed, as the kubelet's atomic writer does.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{jwt}\n")).expect("write");
        std::fs::rename(tmp, path).expect("rename");
    }
}

/// Workload identity: the assertion is a file someone else rewrites. A new
/// one is read on each call; an expired one is never sent, and the login
/// fails with a log line that says why.
#[tokio::test]
async fn client_assertion_file_is_reread_on_each_use_and_refused_once_expired() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = ClusterIssuer::new(dir.path());
    let file = dir.path().join("token");
    let client = "tollgate-workload";
    // The issuer's token endpoint is known once the provider runs; the
    // file must exist before tollgate starts.
    std::fs::write(&file, "placeholder").expect("write");
    let w = world(
        (
            client,
            "private_key_jwt",
            json!({"jwks": cluster.jwks, "token_endpoint_auth_signing_alg": "ES256"}),
        ),
        IdpOptions::default(),
        &format!(
            "client_auth = \"client_assertion_file\"\nclient_assertion_file = \"{}\"",
            file.display()
        ),
        dir,
    )
    .await;
    let token_endpoint = format!("{}/token", w.idp.issuer);
    let fresh = || tollgate::session::now() + 600;

    let mut b = Browser::new();
    cluster.write(&file, client, &token_endpoint, fresh());
    let page = b.login(&w.tollgate.url("/app"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        w.tollgate.output.text()
    );

    // Rotated by its writer: the next call sends the new one. (This
    // provider refuses an assertion it has seen, so the landing request's
    // refresh, which reused the first file, failed and now backs off; the
    // next call is another user's code exchange.)
    cluster.write(&file, client, &token_endpoint, fresh());
    let before = w.idp.token_requests().await;
    let mut next = Browser::new();
    let page = next.login(&w.tollgate.url("/app"), "carol").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        w.tollgate.output.text()
    );
    assert!(w.idp.token_requests().await > before, "a code exchange");

    // Expired: tollgate sends nothing, the login fails, the log says why.
    cluster.write(
        &file,
        client,
        &token_endpoint,
        tollgate::session::now() - 30,
    );
    let before = w.idp.token_requests().await;
    let mut other = Browser::new();
    let page = other.login(&w.tollgate.url("/app"), "bob").await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert_eq!(
        w.idp.token_requests().await,
        before,
        "an expired assertion was sent"
    );
    assert!(
        w.tollgate.output.has("expired"),
        "{}",
        w.tollgate.output.text()
    );
}

/// `provider.pushed_authorization = true`: the parameters go to the
/// provider first; the browser's URL carries only `client_id` and
/// `request_uri`.
#[tokio::test]
async fn pushed_authorization_leaves_only_client_id_and_request_uri_in_the_browser() {
    let w = key_fetched_from_client_jwks("pushed_authorization = true").await;
    assert_par_login(&w).await;
}

/// A provider that requires PAR says so in discovery, and tollgate pushes
/// without being told to.
#[tokio::test]
async fn pushed_authorization_is_automatic_when_the_provider_requires_it() {
    let port = free_port();
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![port],
        require_par: true,
        ..IdpOptions::default()
    });
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(&Setup::basic(port, &idp, &upstream.url())).await;
    let w = World {
        idp,
        upstream,
        tollgate,
        _dir: tempfile::tempdir().expect("dir"),
    };
    assert_par_login(&w).await;
}

async fn assert_par_login(w: &World) {
    let mut b = Browser::new();
    let first = b.get(&w.tollgate.url("/app")).await;
    assert_eq!(
        first.status,
        302,
        "{}\n{}\n{}",
        first.body,
        w.tollgate.output.text(),
        w.idp.output.text()
    );
    let location = url::Url::parse(first.location().expect("location")).expect("url");
    let mut names: Vec<String> = location
        .query_pairs()
        .map(|(k, _)| k.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["client_id", "request_uri"], "{location}");
    assert_eq!(w.idp.stats().await["par_requests"], 1);
    let page = b.login(&w.tollgate.url("/app"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}",
        page.body,
        w.tollgate.output.text()
    );
}

/// A provider that does not take the configured method: tollgate never
/// becomes ready, and says why.
#[tokio::test]
async fn a_method_the_provider_does_not_list_keeps_tollgate_unready_with_a_clear_error() {
    let port = free_port();
    let idp = Idp::with(IdpOptions {
        tollgate_ports: vec![port],
        client_auth_methods: Some(vec!["client_secret_basic".into(), "private_key_jwt".into()]),
        ..IdpOptions::default()
    });
    let upstream = Upstream::start().await;
    let upstream_url = upstream.url();
    let setup = Setup {
        client_auth: "client_secret_jwt",
        client_secret: Some("a-client-secret-of-at-least-32-bytes-for-hs256"),
        ..Setup::basic(port, &idp, &upstream_url)
    };
    let tollgate = Tollgate::spawn(&setup.toml(), port);
    let lines = tollgate.output.new_lines("accepts only", 0);
    let line = lines
        .first()
        .unwrap_or_else(|| panic!("{}", tollgate.output.text()));
    assert!(line.contains("client_secret_jwt"), "{line}");
    let ready = reqwest::get(tollgate.url("/readyz")).await.expect("readyz");
    assert_eq!(ready.status(), 503);
}

/// Bad credentials are configuration errors that name the key.
#[test]
fn unreadable_or_mismatched_keys_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let (ec, _) = generate_key(dir.path(), "ES256");
    let cases = [
        (
            format!("client_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\nclient_key_algorithm = \"RS256\"", ec.display()),
            "cannot sign RS256",
        ),
        (
            "client_auth = \"private_key_jwt\"\nclient_key_file = \"/nonexistent/key.pem\"".to_string(),
            "provider.client_key_file",
        ),
        ("client_auth = \"private_key_jwt\"".to_string(), "is required with client_auth = \"private_key_jwt\""),
        (
            "client_auth = \"tls_client_auth\"".to_string(),
            "are required with client_auth = \"tls_client_auth\"",
        ),
        (
            format!("client_auth = \"tls_client_auth\"\ntls_client_certificate_file = \"{}\"\ntls_client_key_file = \"{}\"", mtls_file("client.pem"), mtls_file("ca.pem")),
            "provider.tls_client_key_file",
        ),
        (
            "client_auth = \"client_assertion_file\"\nclient_assertion_file = \"/nonexistent/token\"".to_string(),
            "provider.client_assertion_file",
        ),
    ];
    for (provider, expected) in cases {
        let config = dir.path().join("bad.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\npublic_url = \"http://127.0.0.1:4180\"\n[upstream]\nurl = \"http://127.0.0.1:9\"\n[provider]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"x\"\n{provider}\n[session]\nsecret = \"{SESSION_KEY}\"\n"
            ),
        )
        .expect("write");
        let out = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{provider}: accepted");
        assert!(err.contains(expected), "{provider}: {err}");
    }
}

fn mtls_file(name: &str) -> String {
    format!("{}/tests/data/mtls/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `[provider]` keys for mutual TLS with `cert`/`key`, trusting the test CA
/// for the provider's HTTPS.
fn mtls_provider(method: &str, cert: &str, key: &str) -> String {
    format!(
        "client_auth = \"{method}\"\ntls_client_certificate_file = \"{}\"\ntls_client_key_file = \"{}\"\nca_file = \"{}\"",
        mtls_file(cert),
        mtls_file(key),
        mtls_file("ca.pem"),
    )
}

/// RFC 8705 §2.1: a certificate from a CA the provider trusts, matched by
/// its subject; the tokens are bound to it, and refresh and revocation
/// present it again.
#[tokio::test]
async fn tls_client_auth_with_a_ca_issued_certificate() {
    let w = world(
        (
            "tollgate-mtls",
            "tls_client_auth",
            json!({"tls_client_auth_subject_dn": "CN=tollgate-mtls"}),
        ),
        IdpOptions {
            tls: true,
            ..IdpOptions::default()
        },
        &mtls_provider("tls_client_auth", "client.pem", "client.key"),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    login_refresh_sign_out(&w).await;
}

/// RFC 8705 §2.2: a self-signed certificate the client registered in its
/// JWK set (`x5c`).
#[tokio::test]
async fn self_signed_tls_client_auth_with_a_registered_certificate() {
    use rustls::pki_types::pem::PemObject;
    let cert = std::fs::read(mtls_file("selfsigned.pem")).expect("cert");
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&cert).expect("der");
    let keys = tollgate::oidc::client_auth::ClientKeys::load(
        &tollgate::oidc::settings::ClientKeyConfig {
            file: "selfsigned.key".into(),
            pem: tollgate::config::Secret::new(
                std::fs::read(mtls_file("selfsigned.key")).expect("key"),
            ),
            algorithm: None,
            kid: None,
            certificate: Some(der.to_vec()),
        },
        &[],
    )
    .expect("keys");
    let w = world(
        (
            "tollgate-self-signed",
            "self_signed_tls_client_auth",
            json!({"jwks": keys.jwks()}),
        ),
        IdpOptions {
            tls: true,
            ..IdpOptions::default()
        },
        &mtls_provider(
            "self_signed_tls_client_auth",
            "selfsigned.pem",
            "selfsigned.key",
        ),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    login_refresh_sign_out(&w).await;
}

/// RFC 9449: with `provider.dpop`, the code exchange, the refresh and the
/// userinfo call carry proofs (after the server's nonce is learned), the
/// provider binds the tokens (this client requires it), and the bound
/// access token is not forwarded upstream unless asked for.
#[tokio::test]
async fn dpop_binds_the_tokens_and_follows_the_servers_nonces() {
    let secret = "a-client-secret-of-at-least-32-bytes-for-dpop";
    let w = world(
        (
            "tollgate-dpop",
            "client_secret_post",
            json!({"client_secret": secret, "dpop_bound_access_tokens": true}),
        ),
        // Scope claims only from userinfo: tollgate asks it for the email,
        // with the bound token.
        IdpOptions {
            dpop: true,
            conform_id_token_claims: true,
            ..IdpOptions::default()
        },
        &format!("client_auth = \"client_secret_post\"\nclient_secret = \"{secret}\"\ndpop = true"),
        tempfile::tempdir().expect("dir"),
    )
    .await;
    let mut b = Browser::new();
    let page = b.login(&w.tollgate.url("/app"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}\n{}",
        page.body,
        w.tollgate.output.text(),
        w.idp.output.text()
    );
    let seen = w.upstream.last();
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-forwarded-access-token"), None);
    // The code exchange learns the server's nonce (400 use_dpop_nonce,
    // then 200); the refresh reuses it. Every request carries a proof.
    let token_lines = w.idp.output.lines_with("POST /token ");
    let statuses: Vec<&str> = token_lines
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
        .collect();
    // The server rotates its nonce over time: any later 400 must be
    // followed by a successful retry too.
    assert_eq!(statuses.first(), Some(&"400"), "{token_lines:?}");
    assert!(
        statuses.windows(2).all(|w| w[0] == "200" || w[1] == "200"),
        "{token_lines:?}"
    );
    assert_eq!(statuses.last(), Some(&"200"), "{token_lines:?}");
    assert!(
        statuses.iter().filter(|s| **s == "200").count() >= 2,
        "exchange and refresh: {token_lines:?}"
    );
    assert!(
        token_lines.iter().all(|l| l.contains("dpop=present")),
        "{token_lines:?}"
    );
    let userinfo = w.idp.output.lines_with("GET /me ");
    assert!(
        userinfo
            .last()
            .is_some_and(|l| l.contains("dpop=present") && l.ends_with("-> 200")),
        "{userinfo:?}"
    );
}

/// `provider.profile = "fapi2"` against oidc-provider's FAPI 2.0 profile
/// over HTTPS: private_key_jwt, DPoP, PAR (implied by the profile), PKCE
/// S256, ES256 ID tokens, RFC 9207 `iss`.
#[tokio::test]
async fn fapi2_profile_logs_in_against_a_fapi2_provider() {
    let dir = tempfile::tempdir().expect("dir");
    let (key, _) = generate_key(dir.path(), "ES256");
    let w = world(
        (
            "tollgate-fapi",
            "private_key_jwt",
            json!({
                "jwks_uri": "TOLLGATE",
                "token_endpoint_auth_signing_alg": "ES256",
                "id_token_signed_response_alg": "ES256",
                "dpop_bound_access_tokens": true,
            }),
        ),
        IdpOptions {
            tls: true,
            dpop: true,
            fapi: Some("2.0".into()),
            ..IdpOptions::default()
        },
        &format!(
            "profile = \"fapi2\"\nclient_auth = \"private_key_jwt\"\nclient_key_file = \"{}\"\ndpop = true\nid_token_algorithms = [\"ES256\"]\nca_file = \"{}\"",
            key.display(),
            mtls_file("ca.pem")
        ),
        dir,
    )
    .await;
    let mut b = Browser::new();
    let first = b.get(&w.tollgate.url("/app")).await;
    let location = first.location().expect("login redirect").to_string();
    assert!(location.contains("request_uri="), "{location}");
    let page = b.login(&w.tollgate.url("/app"), "alice").await;
    assert_eq!(
        page.status,
        200,
        "{}\n{}\n{}",
        page.body,
        w.tollgate.output.text(),
        w.idp.output.text()
    );
}
