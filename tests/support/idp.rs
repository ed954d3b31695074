//! The real identity provider: panva's oidc-provider under node.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

// === identity provider ===

/// What the test provider is started with.
#[derive(Default)]
pub struct IdpOptions {
    /// Ports of the tollgate instances whose callback URLs are registered.
    pub tollgate_ports: Vec<u16>,
    /// 0: any free port.
    pub idp_port: u16,
    /// Seconds an access token lives (default: the library's hour).
    pub access_token_ttl: Option<u64>,
    pub rotate_refresh_tokens: bool,
    /// Where the provider POSTs logout tokens for the basic client.
    pub backchannel_logout_uri: Option<String>,
    /// Public URLs (other than tollgate's own ports) whose callbacks are
    /// registered: an nginx or Caddy in front of tollgate.
    pub front_urls: Vec<String>,
    /// More clients: (client_id, token_endpoint_auth_method, extra client
    /// metadata merged in), registered with the same redirect URIs.
    pub extra_clients: Vec<(String, String, Value)>,
    /// Every authorization request must be pushed (RFC 9126).
    pub require_par: bool,
    /// The token endpoint's accepted client authentication methods.
    pub client_auth_methods: Option<Vec<String>>,
    /// Serve HTTPS with `tests/data/mtls/server.pem`, asking clients for a
    /// certificate (mutual-TLS client authentication).
    pub tls: bool,
    /// DPoP (RFC 9449) enabled, nonces required.
    pub dpop: bool,
    /// The FAPI profile enabled ("2.0").
    pub fapi: Option<String>,
    /// Scope claims (email, profile) only from userinfo, not in ID tokens.
    pub conform_id_token_claims: bool,
}

pub struct Idp {
    child: Child,
    pub issuer: String,
    pub output: Output,
}

impl Idp {
    /// Starts oidc-provider with the three test clients registered for
    /// `redirect_uri` (and `post_logout` as the post-logout URI).
    pub fn start(tollgate_port: u16) -> Self {
        Self::with(IdpOptions {
            tollgate_ports: vec![tollgate_port],
            ..IdpOptions::default()
        })
    }

    /// As [`Idp::start`], on a chosen port (0: any).
    pub fn start_on(tollgate_port: u16, idp_port: u16) -> Self {
        Self::with(IdpOptions {
            tollgate_ports: vec![tollgate_port],
            idp_port,
            ..IdpOptions::default()
        })
    }

    pub fn with(o: IdpOptions) -> Self {
        let mut bases: Vec<String> = o
            .tollgate_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        bases.extend(o.front_urls.iter().cloned());
        let redirects: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/oauth2/callback"))
            .collect();
        let post_logout: Vec<String> = bases.iter().map(|b| format!("{b}/")).collect();
        let client = |id: &str, secret: Option<&str>, method: &str| {
            let mut c = json!({
                "client_id": id,
                "token_endpoint_auth_method": method,
                "redirect_uris": redirects,
                "post_logout_redirect_uris": post_logout,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            });
            if let Some(s) = secret {
                c["client_secret"] = json!(s);
            }
            if let Some(uri) = &o.backchannel_logout_uri {
                c["backchannel_logout_uri"] = json!(uri);
                c["backchannel_logout_session_required"] = json!(true);
            }
            c
        };
        let mut clients = vec![
            client("tollgate-basic", Some(BASIC_SECRET), "client_secret_basic"),
            client("tollgate-post", Some(POST_SECRET), "client_secret_post"),
            client("tollgate-public", None, "none"),
            json!({"client_id": "machine", "client_secret": MACHINE_SECRET, "token_endpoint_auth_method": "client_secret_basic",
             "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []}),
        ];
        for (id, method, extra) in &o.extra_clients {
            let mut c = client(id, None, method);
            if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(extra.clone());
            }
            clients.push(c);
        }
        let mut ttl = json!({});
        if let Some(at) = o.access_token_ttl {
            ttl["AccessToken"] = json!(at);
        }
        let config = json!({
            "ttl": ttl,
            "rotateRefreshToken": o.rotate_refresh_tokens,
            "port": o.idp_port,
            "clients": clients,
            "requirePar": o.require_par,
            "clientAuthMethods": o.client_auth_methods,
            "dpop": o.dpop,
            "conformIdTokenClaims": o.conform_id_token_claims,
            "fapi": o.fapi,
            "tls": o.tls.then(|| {
                let dir = repo().join("tests/data/mtls");
                json!({
                    "cert": dir.join("server.pem"),
                    "key": dir.join("server.key"),
                    "ca": dir.join("ca.pem"),
                })
            }),
            "accounts": {
                "alice": {"email": "alice@example.com", "email_verified": true, "name": "Alice",
                          "preferred_username": "alice", "groups": ["admins", "dev"]}
            },
        });
        let output = Output::default();
        // Large ID tokens travel in `id_token_hint` on logout: raise node's
        // 16 KiB header limit as a real provider behind a proxy would have.
        let mut child = Command::new("node")
            .arg("--max-http-header-size=131072")
            .arg(repo().join("tests/idp/server.mjs"))
            .env("IDP_CONFIG_JSON", config.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start node (is node installed and `npm ci --prefix tests/idp` done?)");
        output.capture(child.stdout.take().expect("stdout"));
        output.capture(child.stderr.take().expect("stderr"));
        let ready = output
            .wait_for("IDP_READY ", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("identity provider did not start:\n{}", output.text()));
        let issuer = ready.trim_start_matches("IDP_READY ").trim().to_string();
        Self {
            child,
            issuer,
            output,
        }
    }

    /// The provider's request counters (`token_requests`, ...).
    pub async fn stats(&self) -> Value {
        reqwest::Client::builder()
            .add_root_certificate(test_ca())
            .build()
            .expect("client")
            .get(format!("{}/__stats", self.issuer))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// A client-credentials access token for the `machine` client: a JWT
    /// with `aud` = `resource` when one is given, opaque otherwise.
    pub async fn machine_token(&self, resource: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "api")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let v: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("machine", Some(MACHINE_SECRET))
            .form(&form)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub async fn token_requests(&self) -> u64 {
        self.stats().await["token_requests"]
            .as_u64()
            .expect("count")
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
