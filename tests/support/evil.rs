//! A misbehaving OpenID provider, in-process, for the defects a certified
//! provider will not produce: discovery, JWKS, authorize, token, userinfo,
//! end-session and revocation endpoints, each of which a test can switch
//! into one defect through a [`Behaviour`]. It logs every request it gets,
//! so a test can assert that tollgate made no further call after a check
//! failed (the OpenID Foundation's RP tests score the same way).
//!
//! By default it behaves: the code flow with PKCE (S256 checked), RFC 9207
//! `iss` in the authorization response, client authentication by exactly
//! one `Authorization: Basic` header (anything else is `invalid_client`),
//! RS256 ID tokens signed by `k1`, refresh-token rotation, userinfo only
//! with `Authorization: Bearer`. The ID token carries no `email`, so
//! tollgate calls userinfo after accepting it: a call to userinfo is how
//! a test sees that an ID token was accepted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};

pub type Hook<T> = Arc<dyn Fn(&mut T) + Send + Sync>;
/// Builds a JWKS document from the provider's keys.
pub type KeySetFn = Arc<dyn Fn(&Keys) -> Value + Send + Sync>;

/// Wraps a closure as a [`Hook`].
pub fn hook<T>(f: impl Fn(&mut T) + Send + Sync + 'static) -> Option<Hook<T>> {
    Some(Arc::new(f))
}

/// A canned HTTP answer: status, content type, body.
#[derive(Clone, Debug)]
pub struct Raw {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    pub location: Option<String>,
    /// Never answer at all.
    pub stall: bool,
}

impl Raw {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Option<Self> {
        Some(Self {
            status,
            content_type,
            body: body.into(),
            location: None,
            stall: false,
        })
    }

    pub fn redirect(status: u16, location: String) -> Option<Self> {
        Some(Self {
            location: Some(location),
            ..Self::new(status, "text/plain", "")?
        })
    }

    pub fn stall() -> Option<Self> {
        Some(Self {
            stall: true,
            ..Self::new(200, "text/plain", "")?
        })
    }
}

/// How the token endpoint authenticates the client.
#[derive(Clone, Debug)]
pub enum ClientCheck {
    /// Exactly this `Authorization` header, and no secret in the body.
    Basic(String),
    /// `client_id` and exactly this `client_secret` in the body, once
    /// each, and no `Authorization` header.
    Post(String),
    /// `client_id` in the body, no secret anywhere.
    Public,
}

/// How a JWT is signed.
#[derive(Clone, Debug, Default)]
pub enum Sign {
    /// RS256 with the published `k1`.
    #[default]
    K1,
    /// With one of [`Keys`] by name (`k1`, `k2`, `k3`, `e1`, `weak`); the
    /// header names that key's kid unless a header hook changes it.
    Key(&'static str),
    /// `alg: none`, empty signature.
    None,
    /// HS256 keyed with these bytes.
    Hs256(Vec<u8>),
    /// Signed by `k1`, then every signature byte XOR 0x5A (as the OIDF
    /// suite's `InvalidateIdTokenSignature`).
    Corrupt,
    /// ES256 header for `e1`, the signature replaced by these bytes.
    EsSignature(Vec<u8>),
    /// Signed by `e1`, the signature DER-encoded (ASN.1) instead of R‖S.
    EsDer,
}

/// One defect at a time; `Default` is a well-behaved provider.
#[derive(Clone, Default)]
pub struct Behaviour {
    /// The discovery document.
    pub metadata: Option<Hook<Map<String, Value>>>,
    /// The JWKS document, from the provider's keys, or a raw answer.
    pub jwks: Option<KeySetFn>,
    pub jwks_raw: Option<Raw>,
    /// The authorization response parameters (`code`, `state`, `iss`).
    pub authorize: Option<Hook<Vec<(String, String)>>>,
    /// ID-token claims and JWS header, code grant.
    pub claims: Option<Hook<Map<String, Value>>>,
    pub header: Option<Hook<Map<String, Value>>>,
    pub sign: Sign,
    /// The serialized claims, rewritten before signing (duplicate members).
    pub payload: Option<Hook<String>>,
    /// The whole ID token, replaced (after signing).
    pub id_token: Option<Hook<String>>,
    /// The serialized token response, rewritten (duplicate members).
    pub token_json: Option<Hook<String>>,
    /// The token response (after the ID token is in it).
    pub token: Option<Hook<Map<String, Value>>>,
    pub token_raw: Option<Raw>,
    /// Refresh grant: ID-token claims, token response, or a raw answer.
    pub refresh_claims: Option<Hook<Map<String, Value>>>,
    pub refresh_sign: Option<Sign>,
    pub refresh_token: Option<Hook<Map<String, Value>>>,
    pub refresh_raw: Option<Raw>,
    /// Userinfo claims, or a raw answer.
    pub userinfo: Option<Hook<Map<String, Value>>>,
    pub userinfo_raw: Option<Raw>,
    /// Access-token lifetime (`expires_in`); default 300.
    pub expires_in: Option<i64>,
}

/// One request the provider received.
#[derive(Clone, Debug)]
pub struct Call {
    pub endpoint: String,
    pub method: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        let q: Vec<(String, String)> = form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        q.into_iter()
            .chain(self.form())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A signing key and its public JWK.
pub struct Signer {
    pub kid: &'static str,
    pub alg: Algorithm,
    key: EncodingKey,
    /// PKCS#8 of an EC key, to sign in ASN.1 form.
    pkcs8: Option<Vec<u8>>,
    /// The public key, without `kid`, `alg` or `use`.
    pub bare: Value,
}

impl Signer {
    /// The public JWK with `kid`, `use: sig` and `alg`.
    pub fn jwk(&self) -> Value {
        let mut j = self.bare.clone();
        if let Some(m) = j.as_object_mut() {
            m.insert("kid".into(), json!(self.kid));
            m.insert("use".into(), json!("sig"));
            m.insert("alg".into(), json!(format!("{:?}", self.alg)));
        }
        j
    }

    fn rsa(kid: &'static str) -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys");
        let der = std::fs::read(dir.join(format!("{kid}.der"))).expect("test key");
        let jwk: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{kid}.jwk.json"))).expect("test jwk"),
        )
        .expect("jwk json");
        Self {
            kid,
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(&der),
            pkcs8: None,
            bare: jwk,
        }
    }

    fn p256(kid: &'static str) -> Self {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("keygen");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("key");
        let public = pair.public_key().as_ref().to_vec();
        Self {
            kid,
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            pkcs8: Some(pkcs8.as_ref().to_vec()),
            bare: json!({"kty": "EC", "crv": "P-256", "x": b64(&public[1..33]), "y": b64(&public[33..65])}),
        }
    }
}

/// The provider's keys: `k1` published and used, `k2`/`k3` unpublished
/// until a test publishes them, `e1` a published P-256 key, `weak` a
/// 1024-bit RSA key.
pub struct Keys {
    pub k1: Signer,
    pub k2: Signer,
    pub k3: Signer,
    pub e1: Signer,
    pub weak: Signer,
}

impl Keys {
    fn load() -> Self {
        Self {
            k1: Signer::rsa("k1"),
            k2: Signer::rsa("k2"),
            k3: Signer::rsa("k3"),
            e1: Signer::p256("e1"),
            weak: Signer::rsa("weak1024"),
        }
    }

    pub fn by_name(&self, name: &str) -> &Signer {
        match name {
            "k1" => &self.k1,
            "k2" => &self.k2,
            "k3" => &self.k3,
            "e1" => &self.e1,
            "weak" => &self.weak,
            other => panic!("no key {other}"),
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[derive(Clone)]
struct Grant {
    nonce: Option<String>,
    /// When the user "authenticated": the same in every ID token of the
    /// grant, refreshes included (OIDC Core §12.2).
    auth_time: i64,
    /// The provider session (`sid`), one per login.
    sid: String,
    challenge: Option<String>,
    redirect_uri: String,
}

struct State {
    client_id: String,
    client: ClientCheck,
    behaviour: Behaviour,
    calls: Vec<Call>,
    codes: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, Grant>,
    access_tokens: Vec<String>,
    counter: u64,
    last_sid: String,
}

struct Inner {
    issuer: String,
    keys: Keys,
    state: Mutex<State>,
}

/// The running provider.
pub struct EvilOp {
    pub addr: SocketAddr,
    pub issuer: String,
    inner: Arc<Inner>,
}

impl EvilOp {
    /// Starts a provider for one client, authenticated as `client` says.
    pub async fn start(client_id: &str, client: ClientCheck) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let issuer = format!("http://{addr}");
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            keys: Keys::load(),
            state: Mutex::new(State {
                client_id: client_id.to_string(),
                client,
                behaviour: Behaviour::default(),
                calls: Vec::new(),
                codes: HashMap::new(),
                refresh_tokens: HashMap::new(),
                access_tokens: Vec::new(),
                counter: 0,
                last_sid: String::new(),
            }),
        });
        let serving = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let inner = serving.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let inner = inner.clone();
                        async move { Ok::<_, std::convert::Infallible>(inner.handle(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            issuer,
            inner,
        }
    }

    /// The `sid` of the latest login.
    pub fn last_sid(&self) -> String {
        self.inner.lock().last_sid.clone()
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Switches to `b` (and forgets nothing else: codes, tokens and the
    /// call log stay).
    pub fn set(&self, b: Behaviour) {
        self.inner.lock().behaviour = b;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().calls.clone()
    }

    pub fn count(&self, endpoint: &str) -> usize {
        self.inner
            .lock()
            .calls
            .iter()
            .filter(|c| c.endpoint == endpoint)
            .count()
    }

    pub fn last(&self, endpoint: &str) -> Option<Call> {
        self.inner
            .lock()
            .calls
            .iter()
            .rev()
            .find(|c| c.endpoint == endpoint)
            .cloned()
    }

    /// A JWT with these claims and header, signed as `sign` says: for
    /// logout tokens and other tokens a test posts itself.
    pub fn jwt(
        &self,
        header: impl FnOnce(&mut Map<String, Value>),
        claims: &Map<String, Value>,
        sign: &Sign,
    ) -> String {
        self.inner.jwt(header, claims, sign)
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let endpoint = req.uri().path().trim_start_matches('/').to_string();
        let call = Call {
            endpoint: match endpoint.as_str() {
                // Also under a path, as for an issuer with one (Entra ID's
                // `/organizations/v2.0`).
                e if e.ends_with(".well-known/openid-configuration") => "discovery".into(),
                other => other.into(),
            },
            method: req.method().to_string(),
            query: req.uri().query().unwrap_or_default().to_string(),
            headers: crate::support::header_pairs(req.headers()),
            body: String::from_utf8_lossy(
                &req.into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default(),
            )
            .into_owned(),
        };
        self.lock().calls.push(call.clone());
        match call.endpoint.as_str() {
            "discovery" => self.discovery(),
            e if e.starts_with("jwks") => {
                let b = self.lock().behaviour.clone();
                if let Some(r) = b.jwks_raw.clone() {
                    return canned(r).await;
                }
                let doc = match &b.jwks {
                    Some(f) => f(&self.keys),
                    None => json!({"keys": [self.keys.k1.jwk(), self.keys.e1.jwk()]}),
                };
                json_response(200, &doc)
            }
            // GitHub's paths for the same two endpoints.
            "authorize" | "login/oauth/authorize" => self.authorize(&call),
            "token" => self.token(&call).await,
            "login/oauth/access_token" => self.github_token(&call).await,
            e if e.starts_with("api/v3/") => self.github_api(&call),
            "userinfo" => self.userinfo(&call).await,
            "end_session" | "revoke" => text(200, "text/plain", ""),
            // Microsoft Graph's transitive group memberships, two pages, for
            // the access token this provider issued.
            "v1.0/me/transitiveMemberOf/microsoft.graph.group" => self.graph(&call),
            _ => text(404, "text/plain", "not found"),
        }
    }

    /// GitHub's REST API as its reference describes it, for the access
    /// tokens this provider issued: the user, their email addresses, and
    /// organisations on two pages (`Link: <…>; rel="next"`) and teams.
    fn github_api(&self, call: &Call) -> Response<Full<Bytes>> {
        let bearer = call
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        if !self.lock().access_tokens.contains(&bearer) {
            return text(401, "application/json", r#"{"message":"Bad credentials"}"#);
        }
        let body = match (call.endpoint.as_str(), call.query.contains("page=2")) {
            ("api/v3/user", _) => json!({"id": 583231, "login": "octocat", "name": "The Octocat"}),
            ("api/v3/user/emails", _) => json!([
                {"email": "octocat@users.noreply.example", "primary": false, "verified": true},
                {"email": "octocat@example.com", "primary": true, "verified": true},
            ]),
            ("api/v3/user/orgs", false) => {
                let next = format!("{}/api/v3/user/orgs?per_page=100&page=2", self.issuer);
                let mut resp = json_response(200, &json!([{"login": "acme"}]));
                let link = format!("<{next}>; rel=\"next\", <{next}>; rel=\"last\"");
                resp.headers_mut()
                    .insert("link", link.parse().expect("link"));
                return resp;
            }
            ("api/v3/user/orgs", true) => json!([{"login": "globex"}]),
            ("api/v3/user/teams", _) => json!([{"slug": "ops", "organization": {"login": "acme"}}]),
            _ => return text(404, "application/json", r#"{"message":"Not Found"}"#),
        };
        json_response(200, &body)
    }

    fn graph(&self, call: &Call) -> Response<Full<Bytes>> {
        let bearer = call
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        if !self.lock().access_tokens.contains(&bearer) {
            return text(401, "application/json", "{}");
        }
        if call.query.contains("page=2") {
            return json_response(200, &json!({"value": [{"id": "group-3"}]}));
        }
        let next = format!(
            "{}/v1.0/me/transitiveMemberOf/microsoft.graph.group?page=2",
            self.issuer
        );
        json_response(
            200,
            &json!({"value": [{"id": "group-1"}, {"id": "group-2"}], "@odata.nextLink": next}),
        )
    }

    fn discovery(&self) -> Response<Full<Bytes>> {
        let i = &self.issuer;
        // The one method this provider checks, as a real one lists it.
        let method = match self.state.lock().expect("state").client {
            ClientCheck::Basic(_) => "client_secret_basic",
            ClientCheck::Post(_) => "client_secret_post",
            ClientCheck::Public => "none",
        };
        let mut md = json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "end_session_endpoint": format!("{i}/end_session"),
            "revocation_endpoint": format!("{i}/revoke"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [method],
            "authorization_response_iss_parameter_supported": true,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        });
        let b = self.lock().behaviour.clone();
        if let (Some(f), Some(m)) = (&b.metadata, md.as_object_mut()) {
            f(m);
        }
        json_response(200, &md)
    }

    fn authorize(&self, call: &Call) -> Response<Full<Bytes>> {
        let (code, b) = {
            let mut st = self.lock();
            st.counter += 1;
            let code = format!("code-{}-{}", st.counter, crate::support::random_hex());
            let grant = Grant {
                nonce: call.param("nonce"),
                auth_time: now() - 5,
                sid: format!("sid-{}", st.counter),
                challenge: call.param("code_challenge"),
                redirect_uri: call.param("redirect_uri").unwrap_or_default(),
            };
            st.last_sid = grant.sid.clone();
            st.codes.insert(code.clone(), grant);
            (code, st.behaviour.clone())
        };
        let mut params = vec![
            ("code".to_string(), code),
            ("state".to_string(), call.param("state").unwrap_or_default()),
            ("iss".to_string(), self.issuer.clone()),
        ];
        if let Some(f) = &b.authorize {
            f(&mut params);
        }
        let redirect = call.param("redirect_uri").unwrap_or_default();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        Response::builder()
            .status(302)
            .header("location", format!("{redirect}?{query}"))
            .body(Full::default())
            .expect("response")
    }

    /// GitHub's token endpoint as "Generating a user access token for a
    /// GitHub App" and "Refreshing user access tokens" (docs.github.com)
    /// describe it: the same grants, but errors answered with 200 and
    /// GitHub's own codes (`bad_verification_code`, `bad_refresh_token`,
    /// `incorrect_client_credentials`), no ID token, `token_type` `bearer`,
    /// and `refresh_token_expires_in` beside an expiring token.
    async fn github_token(&self, call: &Call) -> Response<Full<Bytes>> {
        let (parts, body) = self.token(call).await.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
            return Response::from_parts(parts, Full::new(bytes));
        };
        let refresh = call.param("grant_type").as_deref() == Some("refresh_token");
        if let Some(error) = v.get("error").and_then(Value::as_str) {
            let github = match error {
                "invalid_client" => "incorrect_client_credentials",
                "invalid_grant" if refresh => "bad_refresh_token",
                "invalid_grant" => "bad_verification_code",
                other => other,
            };
            return json_response(
                200,
                &json!({ "error": github, "error_description": "as GitHub says it" }),
            );
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("id_token");
            m.insert("token_type".into(), json!("bearer"));
            if m.contains_key("refresh_token") {
                m.insert("refresh_token_expires_in".into(), json!(15_897_600));
            }
        }
        json_response(parts.status.as_u16(), &v)
    }

    // The token endpoint: client authentication, grant, then each defect
    // the behaviour asks for, in the order a response is built.
    #[allow(clippy::too_many_lines)]
    async fn token(&self, call: &Call) -> Response<Full<Bytes>> {
        let form = call.form();
        let get = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let grant_type = get("grant_type");
        let b = self.lock().behaviour.clone();
        let raw = if grant_type == "refresh_token" {
            b.refresh_raw.clone()
        } else {
            b.token_raw.clone()
        };
        if let Some(r) = raw {
            return canned(r).await;
        }
        // RFC 6749 §2.3: exactly one method, and this one byte-for-byte.
        let (client, client_id) = {
            let st = self.lock();
            (st.client.clone(), st.client_id.clone())
        };
        let count = |k: &str| form.iter().filter(|(n, _)| n == k).count();
        let authenticated = match &client {
            ClientCheck::Basic(header) => {
                call.header("authorization") == Some(header.as_str()) && count("client_secret") == 0
            }
            ClientCheck::Post(secret) => {
                call.header("authorization").is_none()
                    && count("client_secret") == 1
                    && get("client_secret") == *secret
                    && count("client_id") == 1
                    && get("client_id") == client_id
            }
            ClientCheck::Public => {
                call.header("authorization").is_none()
                    && count("client_secret") == 0
                    && get("client_id") == client_id
            }
        };
        if !authenticated {
            return oauth_error(401, "invalid_client");
        }
        let old_rt = get("refresh_token");
        let grant = {
            let mut st = self.lock();
            match grant_type.as_str() {
                "authorization_code" => st.codes.remove(&get("code")),
                "refresh_token" => st.refresh_tokens.remove(&old_rt),
                _ => return oauth_error(400, "unsupported_grant_type"),
            }
        };
        let Some(grant) = grant else {
            return oauth_error(400, "invalid_grant");
        };
        if grant_type == "authorization_code" {
            if get("redirect_uri") != grant.redirect_uri {
                return oauth_error(400, "invalid_grant");
            }
            if let Some(challenge) = &grant.challenge {
                let digest = aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    get("code_verifier").as_bytes(),
                );
                if &b64(digest.as_ref()) != challenge {
                    return oauth_error(400, "invalid_grant");
                }
            }
        }
        let (access_token, refresh_token, client_id) = {
            let mut st = self.lock();
            st.counter += 1;
            let at = format!("at-{}-{}", st.counter, crate::support::random_hex());
            let rt = format!("rt-{}-{}", st.counter, crate::support::random_hex());
            st.access_tokens.push(at.clone());
            st.refresh_tokens.insert(rt.clone(), grant.clone());
            (at, rt, st.client_id.clone())
        };
        let refresh = grant_type == "refresh_token";
        let t = now();
        let mut claims = json!({
            "iss": self.issuer, "sub": "alice", "aud": client_id, "exp": t + 300, "iat": t,
            "auth_time": grant.auth_time, "sid": grant.sid,
        });
        let claims = claims.as_object_mut().expect("object");
        if !refresh {
            if let Some(n) = &grant.nonce {
                claims.insert("nonce".into(), json!(n));
            }
        }
        let claim_hook = if refresh {
            &b.refresh_claims
        } else {
            &b.claims
        };
        if let Some(f) = claim_hook {
            f(claims);
        }
        let sign = if refresh {
            b.refresh_sign.clone().unwrap_or_default()
        } else {
            b.sign.clone()
        };
        let mut id_token = self.jwt(
            |h| {
                if let Some(f) = &b.header {
                    f(h)
                }
            },
            claims,
            &sign,
        );
        if let Some(f) = &b.id_token {
            f(&mut id_token);
        }
        let mut resp = json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": b.expires_in.unwrap_or(300),
            "refresh_token": refresh_token,
            "id_token": id_token,
            "scope": "openid email profile",
        });
        let resp_map = resp.as_object_mut().expect("object");
        let token_hook = if refresh { &b.refresh_token } else { &b.token };
        if let Some(f) = token_hook {
            f(resp_map);
        }
        if refresh && !resp_map.contains_key("refresh_token") {
            // No new refresh token: the old one stays good (RFC 6749 §6).
            let mut st = self.lock();
            let rotated: Vec<String> = st
                .refresh_tokens
                .iter()
                .filter(|(k, _)| k.as_str() == refresh_token)
                .map(|(k, _)| k.clone())
                .collect();
            for k in rotated {
                st.refresh_tokens.remove(&k);
            }
            st.refresh_tokens.insert(old_rt, grant);
        }
        let mut body = resp.to_string();
        if let Some(f) = &b.token_json {
            f(&mut body);
        }
        text(200, "application/json", &body)
    }

    async fn userinfo(&self, call: &Call) -> Response<Full<Bytes>> {
        let b = self.lock().behaviour.clone();
        if let Some(r) = b.userinfo_raw.clone() {
            return canned(r).await;
        }
        let known = call
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| self.lock().access_tokens.iter().any(|a| a == t));
        // OIDF `-userinfo-bearer-header`: the token only in the header.
        if !known || call.param("access_token").is_some() {
            return Response::builder()
                .status(401)
                .header("www-authenticate", "Bearer error=\"invalid_token\"")
                .body(Full::default())
                .expect("response");
        }
        let mut info = json!({"sub": "alice", "email": "alice@op.test", "email_verified": true, "name": "Alice"});
        if let (Some(f), Some(m)) = (&b.userinfo, info.as_object_mut()) {
            f(m);
        }
        json_response(200, &info)
    }

    fn jwt(
        &self,
        header: impl FnOnce(&mut Map<String, Value>),
        claims: &Map<String, Value>,
        sign: &Sign,
    ) -> String {
        let (alg, kid) = match sign {
            Sign::K1 | Sign::Corrupt => ("RS256", Some("k1")),
            Sign::Key(name) => {
                let s = self.keys.by_name(name);
                (
                    if s.alg == Algorithm::ES256 {
                        "ES256"
                    } else {
                        "RS256"
                    },
                    Some(s.kid),
                )
            }
            Sign::EsSignature(_) | Sign::EsDer => ("ES256", Some("e1")),
            Sign::None => ("none", None),
            Sign::Hs256(_) => ("HS256", None),
        };
        let mut h = Map::new();
        h.insert("alg".into(), json!(alg));
        if let Some(k) = kid {
            h.insert("kid".into(), json!(k));
        }
        h.insert("typ".into(), json!("JWT"));
        header(&mut h);
        let mut payload = Value::Object(claims.clone()).to_string();
        let b = self.lock().behaviour.clone();
        if let Some(f) = &b.payload {
            f(&mut payload);
        }
        let input = format!(
            "{}.{}",
            b64(Value::Object(h).to_string().as_bytes()),
            b64(payload.as_bytes())
        );
        let sig = match sign {
            Sign::None => String::new(),
            Sign::K1 => jws(&input, &self.keys.k1),
            Sign::Key(name) => jws(&input, self.keys.by_name(name)),
            Sign::Hs256(secret) => jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(secret),
                Algorithm::HS256,
            )
            .expect("hmac"),
            Sign::Corrupt => {
                let good = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(jws(&input, &self.keys.k1))
                    .expect("b64");
                b64(&good.iter().map(|b| b ^ 0x5A).collect::<Vec<_>>())
            }
            Sign::EsSignature(bytes) => b64(bytes),
            Sign::EsDer => {
                use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    self.keys.e1.pkcs8.as_deref().expect("ec key"),
                )
                .expect("key");
                let rng = aws_lc_rs::rand::SystemRandom::new();
                b64(pair.sign(&rng, input.as_bytes()).expect("sign").as_ref())
            }
        };
        format!("{input}.{sig}")
    }
}

fn jws(input: &str, s: &Signer) -> String {
    match jsonwebtoken::crypto::sign(input.as_bytes(), &s.key, s.alg) {
        Ok(sig) => sig,
        // aws-lc refuses to sign with a key it considers too weak; a
        // signature of the right length still exercises the verifier.
        Err(_) => b64(&[0x42; 128]),
    }
}

async fn canned(r: Raw) -> Response<Full<Bytes>> {
    if r.stall {
        std::future::pending::<()>().await;
    }
    let mut resp = text(r.status, r.content_type, &r.body);
    if let Some(l) = r.location {
        resp.headers_mut()
            .insert("location", l.parse().expect("location"));
    }
    resp
}

fn json_response(status: u16, v: &Value) -> Response<Full<Bytes>> {
    text(status, "application/json", &v.to_string())
}

fn oauth_error(status: u16, error: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": error }))
}

fn text(status: u16, content_type: &str, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// Signs in through tollgate at `url` with a provider that logs in
/// without asking (as this one does): tollgate's redirect, the provider's
/// redirect back, the callback. Returns the callback's answer.
pub async fn sign_in(b: &mut crate::support::Browser, url: &str) -> crate::support::Page {
    let start = b.get(url).await;
    let authorize = start.location().expect("login redirect").to_string();
    let at_op = b.get(&authorize).await;
    let callback = at_op.location().expect("redirect back").to_string();
    b.get(&callback).await
}

// === a world around the misbehaving provider ===

/// How tollgate authenticates to [`EvilOp`], and how the provider checks it.
pub struct Client<'a> {
    pub check: ClientCheck,
    pub id: &'a str,
    pub secret: Option<&'a str>,
    pub auth: &'a str,
}

/// What a world is made of, beyond the client: extra `[provider]`,
/// `[session]` and `[server]` keys, TOML appended at the end, the
/// provider's behaviour at start-up, and whether to wait for readiness.
#[derive(Default)]
pub struct WorldSetup<'a> {
    pub provider: &'a str,
    pub session: &'a str,
    pub server: &'a str,
    pub extra: &'a str,
    pub before: Behaviour,
    pub not_ready: bool,
    /// Appended to the provider's issuer in tollgate's configuration (an
    /// authority with a path, as Entra ID's `/organizations/v2.0`).
    pub issuer_suffix: &'a str,
}

/// The misbehaving provider, a recording upstream and tollgate between them.
pub struct World {
    pub op: EvilOp,
    pub upstream: crate::support::Upstream,
    pub tollgate: crate::support::Tollgate,
    pub toml: String,
}

impl World {
    pub async fn start(client: Client<'_>, s: WorldSetup<'_>) -> Self {
        use crate::support::{free_port, Setup, Tollgate, Upstream};
        let op = EvilOp::start(client.id, client.check).await;
        op.set(s.before);
        let upstream = Upstream::start().await;
        let port = free_port();
        let upstream_url = upstream.url();
        let issuer = format!("{}{}", op.issuer, s.issuer_suffix);
        let setup = Setup {
            port,
            issuer: &issuer,
            upstream: &upstream_url,
            client_id: client.id,
            client_secret: client.secret,
            client_auth: client.auth,
            extra: s.extra,
            session: s.session,
            server: s.server,
            public_url: None,
        };
        // `{OP}` in the provider keys stands for this provider's address.
        let provider = s.provider.replace("{OP}", &op.issuer);
        let mut toml = setup
            .toml()
            .replace("\n[session]\n", &format!("\n{provider}\n[session]\n"));
        if s.session.contains("secure = true") {
            toml = toml.replace("secure = false\n", "");
        }
        let mut tollgate = Tollgate::spawn(&toml, port);
        if !s.not_ready {
            tollgate.wait_ready().await;
        }
        World {
            op,
            upstream,
            tollgate,
            toml,
        }
    }

    /// A new tollgate process with the same configuration (and so the same
    /// session key): cookies stay valid, in-memory state is gone.
    pub async fn restart(&mut self) {
        let port = self.tollgate.port;
        self.tollgate.terminate();
        self.tollgate = crate::support::Tollgate::spawn(&self.toml, port);
        self.tollgate.wait_ready().await;
    }
}
