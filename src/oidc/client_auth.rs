//! How tollgate proves who it is to the provider on every call that
//! authenticates the client (code exchange, refresh, revocation,
//! introspection, pushed authorization requests): a shared secret (RFC 6749
//! §2.3.1), a JWT assertion signed with the secret or with a private key
//! (RFC 7523, OIDC Core §9), or an assertion someone else writes to a file
//! (workload identity: a Kubernetes projected service-account token).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use url::Url;

use super::settings::{AssertionAudience, ClientAuth, ClientKeyConfig, ProviderConfig};
use crate::secret::Secret;

/// `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an assertion tollgate signs is valid.
pub const ASSERTION_LIFETIME_SECS: i64 = 60;
/// Largest assertion file read (a projected token is about 1 KiB).
const MAX_ASSERTION_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("`{0}` holds no PEM private key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")")]
    NotAKey(String),
    #[error("`{file}` is {kind} key, which cannot sign {alg:?} (it signs {fits})")]
    WrongAlgorithm {
        file: String,
        kind: &'static str,
        alg: Algorithm,
        fits: &'static str,
    },
    #[error("`{0}` is an EC key on a curve other than P-256 or P-384")]
    UnsupportedCurve(String),
    #[error("cannot sign the client assertion")]
    Sign,
    #[error("cannot generate a key for that algorithm")]
    Generate,
    #[error("cannot read the client assertion file `{path}`: {source}")]
    ReadAssertion {
        path: String,
        source: std::io::Error,
    },
    #[error("the client assertion file `{0}` does not hold a JWT")]
    NotAJwt(String),
    #[error("the client assertion in `{path}` expired {ago}s ago: whoever writes it (the kubelet, for a projected service-account token) has stopped renewing it")]
    Expired { path: String, ago: i64 },
}

/// What a private key is, which decides the algorithms it can sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa => "an RSA",
            KeyKind::P256 => "a P-256",
            KeyKind::P384 => "a P-384",
            KeyKind::Ed25519 => "an Ed25519",
        }
    }

    fn default_algorithm(self) -> Algorithm {
        match self {
            KeyKind::Rsa => Algorithm::RS256,
            KeyKind::P256 => Algorithm::ES256,
            KeyKind::P384 => Algorithm::ES384,
            KeyKind::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn fits(self) -> &'static str {
        match self {
            KeyKind::Rsa => "RS256/384/512 or PS256/384/512",
            KeyKind::P256 => "ES256",
            KeyKind::P384 => "ES384",
            KeyKind::Ed25519 => "EdDSA",
        }
    }

    fn signs(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        }
    }
}

/// Reads a PEM private key into what `jsonwebtoken` signs with. EC and
/// Ed25519 keys are normalised to PKCS#8 v1, RSA keys to PKCS#1.
fn parse_key(file: &str, pem: &[u8]) -> Result<(KeyKind, EncodingKey), CredentialError> {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let not_a_key = || CredentialError::NotAKey(file.to_string());
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| not_a_key())?;
    let curves = [
        (KeyKind::P256, &ECDSA_P256_SHA256_FIXED_SIGNING),
        (KeyKind::P384, &ECDSA_P384_SHA384_FIXED_SIGNING),
    ];
    let ec = |der: &[u8]| {
        curves.iter().find_map(|(kind, alg)| {
            let pair = EcdsaKeyPair::from_private_key_der(alg, der).ok()?;
            let pkcs8 = pair.to_pkcs8v1().ok()?;
            Some((*kind, EncodingKey::from_ec_der(pkcs8.as_ref())))
        })
    };
    match der {
        PrivateKeyDer::Pkcs1(k) => {
            RsaKeyPair::from_der(k.secret_pkcs1_der()).map_err(|_| not_a_key())?;
            Ok((
                KeyKind::Rsa,
                EncodingKey::from_rsa_der(k.secret_pkcs1_der()),
            ))
        }
        PrivateKeyDer::Sec1(k) => {
            ec(k.secret_sec1_der()).ok_or_else(|| CredentialError::UnsupportedCurve(file.into()))
        }
        PrivateKeyDer::Pkcs8(k) => {
            let der = k.secret_pkcs8_der();
            if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
                let v1 = pair.to_pkcs8v1().map_err(|_| not_a_key())?;
                return Ok((KeyKind::Ed25519, EncodingKey::from_ed_der(v1.as_ref())));
            }
            if let Some(found) = ec(der) {
                return Ok(found);
            }
            RsaKeyPair::from_pkcs8(der).map_err(|_| not_a_key())?;
            let key = EncodingKey::from_rsa_pem(pem).map_err(|_| not_a_key())?;
            Ok((KeyKind::Rsa, key))
        }
        _ => Err(not_a_key()),
    }
}

/// One private key tollgate signs assertions with (or only publishes).
pub struct ClientKey {
    key: EncodingKey,
    header: Header,
    /// The public half, with `kid`, `use` and `alg`.
    jwk: Jwk,
}

impl ClientKey {
    /// Loads and checks a configured key: the algorithm must fit its type.
    pub fn load(config: &ClientKeyConfig) -> Result<Self, CredentialError> {
        let (kind, key) = parse_key(&config.file, config.pem.expose())?;
        let alg = config.algorithm.unwrap_or_else(|| kind.default_algorithm());
        if !kind.signs(alg) {
            return Err(CredentialError::WrongAlgorithm {
                file: config.file.clone(),
                kind: kind.name(),
                alg,
                fits: kind.fits(),
            });
        }
        let mut jwk = Jwk::from_encoding_key(&key, alg)
            .map_err(|_| CredentialError::NotAKey(config.file.clone()))?;
        // RFC 7638 thumbprint unless configured.
        let kid = match &config.kid {
            Some(k) => k.clone(),
            None => jwk
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(|_| CredentialError::NotAKey(config.file.clone()))?,
        };
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let mut header = Header::new(alg);
        header.kid = Some(kid);
        if let Some(der) = &config.certificate {
            let (x5t, x5t_s256) = thumbprints(der);
            header.x5t = Some(x5t.clone());
            header.x5t_s256 = Some(x5t_s256.clone());
            jwk.common.x509_sha1_fingerprint = Some(x5t);
            jwk.common.x509_sha256_fingerprint = Some(x5t_s256);
            jwk.common.x509_chain =
                Some(vec![base64::engine::general_purpose::STANDARD.encode(der)]);
        }
        Ok(Self { key, header, jwk })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }

    /// The signing key, its public JWK and its algorithm.
    pub fn into_parts(self) -> (EncodingKey, Jwk, Algorithm) {
        (self.key, self.jwk, self.header.alg)
    }
}

/// `x5t` and `x5t#S256` of a DER certificate (RFC 7515 §4.1.7–8):
/// base64url SHA-1 and SHA-256 thumbprints. SHA-1 only names the
/// certificate here; nothing is verified with it.
fn thumbprints(der: &[u8]) -> (String, String) {
    use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    (
        b64.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, der)),
        b64.encode(digest(&SHA256, der)),
    )
}

/// The keys of `private_key_jwt`: one signs, all are published.
pub struct ClientKeys {
    signing: ClientKey,
    published: Vec<Jwk>,
}

impl ClientKeys {
    pub fn load(
        signing: &ClientKeyConfig,
        extra: &[ClientKeyConfig],
    ) -> Result<Self, CredentialError> {
        let signing = ClientKey::load(signing)?;
        let mut published = vec![signing.jwk.clone()];
        for k in extra {
            published.push(ClientKey::load(k)?.jwk);
        }
        Ok(Self { signing, published })
    }

    /// The public keys, for `/oauth2/client_jwks`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, RFC 6749 §2.3.1: the
/// id and secret are form-urlencoded (Appendix B) before being joined, so a
/// secret holding `:`, `%`, `+`, `&` or a space survives the trip.
pub fn basic_authorization(client_id: &str, secret: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {creds}")
}

/// What the client proves itself with.
enum Credential {
    Basic(Secret),
    Post(Secret),
    SecretJwt(EncodingKey),
    PrivateKeyJwt(Arc<ClientKeys>),
    AssertionFile(PathBuf),
    None,
}

/// A request's client authentication: an `Authorization` header or form
/// fields.
#[derive(Default)]
pub struct Proof {
    pub authorization: Option<String>,
    pub fields: Vec<(&'static str, String)>,
}

/// Authenticates tollgate at one provider.
pub struct ClientAuthenticator {
    client_id: String,
    credential: Credential,
    audience: AssertionAudience,
    issuer: String,
    token_endpoint: Url,
}

impl std::fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticator {
    /// `keys`: the loaded `private_key_jwt` keys (shared with the JWKS
    /// endpoint); required for that method.
    pub fn new(
        config: &ProviderConfig,
        keys: Option<Arc<ClientKeys>>,
        issuer: &str,
        token_endpoint: &Url,
    ) -> Self {
        let secret = || {
            config
                .client_secret
                .clone()
                .unwrap_or_else(|| Secret::new(Vec::new()))
        };
        let credential = match (config.client_auth, keys) {
            (ClientAuth::ClientSecretBasic, _) => Credential::Basic(secret()),
            (ClientAuth::ClientSecretPost, _) => Credential::Post(secret()),
            (ClientAuth::ClientSecretJwt, _) => {
                Credential::SecretJwt(EncodingKey::from_secret(secret().expose()))
            }
            (ClientAuth::PrivateKeyJwt, Some(k)) => Credential::PrivateKeyJwt(k),
            (ClientAuth::ClientAssertionFile, _) => match &config.client_assertion_file {
                Some(p) => Credential::AssertionFile(p.clone()),
                None => Credential::None,
            },
            // Mutual TLS: the certificate is in the connection; the body
            // names the client (RFC 8705 §2).
            (ClientAuth::PrivateKeyJwt, None)
            | (
                ClientAuth::None | ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth,
                _,
            ) => Credential::None,
        };
        Self {
            client_id: config.client_id.clone(),
            credential,
            audience: config.client_assertion_audience.clone(),
            issuer: issuer.to_string(),
            token_endpoint: token_endpoint.clone(),
        }
    }

    /// The proof for one call to `endpoint`.
    pub async fn proof(&self, endpoint: &Url) -> Result<Proof, CredentialError> {
        let id = || ("client_id", self.client_id.clone());
        let assertion = |a: String| {
            vec![
                id(),
                ("client_assertion_type", ASSERTION_TYPE.to_string()),
                ("client_assertion", a),
            ]
        };
        Ok(match &self.credential {
            Credential::Basic(s) => Proof {
                authorization: Some(basic_authorization(&self.client_id, s.expose_str())),
                fields: Vec::new(),
            },
            Credential::Post(s) => Proof {
                authorization: None,
                fields: vec![id(), ("client_secret", s.expose_str().to_string())],
            },
            Credential::SecretJwt(key) => Proof {
                authorization: None,
                fields: assertion(self.sign(&Header::new(Algorithm::HS256), key, endpoint)?),
            },
            Credential::PrivateKeyJwt(keys) => Proof {
                authorization: None,
                fields: assertion(self.sign(&keys.signing.header, &keys.signing.key, endpoint)?),
            },
            Credential::AssertionFile(path) => Proof {
                authorization: None,
                fields: assertion(read_assertion(path, crate::session::now()).await?),
            },
            Credential::None => Proof {
                authorization: None,
                fields: vec![id()],
            },
        })
    }

    /// A fresh assertion (RFC 7523 §3): `iss` and `sub` are the client,
    /// `jti` is unique, and it lives a minute.
    fn sign(
        &self,
        header: &Header,
        key: &EncodingKey,
        endpoint: &Url,
    ) -> Result<String, CredentialError> {
        let aud = match &self.audience {
            AssertionAudience::TokenEndpoint => self.token_endpoint.as_str(),
            AssertionAudience::Endpoint => endpoint.as_str(),
            AssertionAudience::Issuer => &self.issuer,
            AssertionAudience::Url(u) => u.as_str(),
        };
        let iat = crate::session::now();
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "jti": super::random_token(32), "iat": iat, "exp": iat + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(header, &claims, key).map_err(|_| CredentialError::Sign)
    }
}

/// The assertion someone else keeps in `path`, read afresh on each use
/// (the writer rotates it) and never sent once its `exp` has passed.
async fn read_assertion(path: &std::path::Path, now: i64) -> Result<String, CredentialError> {
    use tokio::io::AsyncReadExt as _;
    let shown = path.display().to_string();
    let read_error = |source| CredentialError::ReadAssertion {
        path: shown.clone(),
        source,
    };
    let mut bytes = Vec::new();
    tokio::fs::File::open(path)
        .await
        .map_err(read_error)?
        .take(MAX_ASSERTION_FILE)
        .read_to_end(&mut bytes)
        .await
        .map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|_| CredentialError::NotAJwt(shown.clone()))?;
    let jwt = text.trim();
    let exp = assertion_exp(jwt).ok_or_else(|| CredentialError::NotAJwt(shown.clone()))?;
    match exp {
        Some(exp) if exp <= now => Err(CredentialError::Expired {
            path: shown,
            ago: now - exp,
        }),
        _ => Ok(jwt.to_string()),
    }
}

/// `Some(exp)` of a compact JWS (`None` inside when it has no `exp`);
/// `None` when `jwt` is not one. Nothing is verified: the provider does
/// that, this only avoids sending what is known to be stale.
fn assertion_exp(jwt: &str) -> Option<Option<i64>> {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Some(claims.as_object()?.get("exp").and_then(Value::as_i64))
}

/// `tollgate generate-key`: a fresh private key as PKCS#8 PEM.
pub fn generate_pem(alg: Algorithm) -> Result<String, CredentialError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    use Algorithm::*;
    let der: Vec<u8> = match alg {
        ES256 | ES384 => {
            let curve = if alg == ES256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(curve).map_err(|_| CredentialError::Generate)?;
            pair.to_pkcs8v1()
                .map_err(|_| CredentialError::Generate)?
                .as_ref()
                .to_vec()
        }
        EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(|_| CredentialError::Generate)?;
            pair.to_pkcs8v1()
                .map_err(|_| CredentialError::Generate)?
                .as_ref()
                .to_vec()
        }
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| CredentialError::Generate)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                pair.as_der().map_err(|_| CredentialError::Generate)?;
            der.as_ref().to_vec()
        }
        _ => return Err(CredentialError::Generate),
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pem: String, algorithm: Option<Algorithm>) -> ClientKeyConfig {
        ClientKeyConfig {
            file: "key.pem".into(),
            pem: Secret::new(pem.into_bytes()),
            algorithm,
            kid: None,
            certificate: None,
        }
    }

    #[test]
    fn generated_keys_load_sign_and_verify_with_the_published_key() {
        for alg in [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::PS256,
        ] {
            let pem = generate_pem(alg).expect("generate");
            let keys = ClientKeys::load(&config(pem, Some(alg)), &[]).expect("load");
            assert_eq!(keys.signing.algorithm(), alg);
            let token = jsonwebtoken::encode(
                &keys.signing.header,
                &json!({"sub": "x", "exp": 4_000_000_000i64}),
                &keys.signing.key,
            )
            .expect("sign");
            let jwk: Jwk = serde_json::from_value(keys.jwks()["keys"][0].clone()).expect("jwk");
            assert_eq!(
                jwk.common.key_id.as_deref(),
                keys.signing.header.kid.as_deref()
            );
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
            let mut v = jsonwebtoken::Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_aud = false;
            jsonwebtoken::decode::<Value>(&token, &key, &v).expect("verifies");
        }
    }

    #[test]
    fn the_algorithm_must_fit_the_key() {
        let pem = generate_pem(Algorithm::ES256).expect("generate");
        let err = ClientKey::load(&config(pem, Some(Algorithm::RS256)))
            .err()
            .expect("refused");
        assert!(
            matches!(err, CredentialError::WrongAlgorithm { .. }),
            "{err}"
        );
        let rsa = generate_pem(Algorithm::RS256).expect("generate");
        assert_eq!(
            ClientKey::load(&config(rsa, None))
                .expect("load")
                .algorithm(),
            Algorithm::RS256
        );
        assert!(matches!(
            ClientKey::load(&config("not a key".into(), None)).err(),
            Some(CredentialError::NotAKey(_))
        ));
    }

    /// Keys as `openssl` writes them: PKCS#1 and PKCS#8 RSA, SEC1 P-256
    /// and P-384, PKCS#8 Ed25519; P-521 is refused by name.
    #[test]
    fn openssl_key_formats_load_with_the_usual_algorithm() {
        let cases: [(&str, &[u8], Option<Algorithm>); 6] = [
            (
                "rsa-pkcs1",
                include_bytes!("../../tests/data/client-keys/rsa-pkcs1.pem"),
                Some(Algorithm::RS256),
            ),
            (
                "rsa-pkcs8",
                include_bytes!("../../tests/data/client-keys/rsa-pkcs8.pem"),
                Some(Algorithm::RS256),
            ),
            (
                "p256-sec1",
                include_bytes!("../../tests/data/client-keys/p256-sec1.pem"),
                Some(Algorithm::ES256),
            ),
            (
                "p384-sec1",
                include_bytes!("../../tests/data/client-keys/p384-sec1.pem"),
                Some(Algorithm::ES384),
            ),
            (
                "ed25519",
                include_bytes!("../../tests/data/client-keys/ed25519-pkcs8.pem"),
                Some(Algorithm::EdDSA),
            ),
            (
                "p521-sec1",
                include_bytes!("../../tests/data/client-keys/p521-sec1.pem"),
                None,
            ),
        ];
        for (name, pem, expected) in cases {
            let loaded = ClientKey::load(&config(String::from_utf8_lossy(pem).into(), None));
            match expected {
                Some(alg) => assert_eq!(loaded.map(|k| k.algorithm()).ok(), Some(alg), "{name}"),
                None => assert!(
                    matches!(loaded.err(), Some(CredentialError::UnsupportedCurve(_))),
                    "{name}"
                ),
            }
        }
        // PS256 from the same RSA key.
        let rsa = include_str!("../../tests/data/client-keys/rsa-pkcs1.pem");
        let k = ClientKey::load(&config(rsa.into(), Some(Algorithm::PS256))).expect("ps256");
        assert_eq!(k.algorithm(), Algorithm::PS256);
    }

    /// With a certificate, the assertion header names it by `x5t#S256`
    /// and `x5t` (Entra ID's certificate credentials), values as
    /// `openssl x509 -fingerprint` gives them, base64url.
    #[test]
    fn a_certificate_puts_its_thumbprints_in_the_header() {
        use rustls::pki_types::pem::PemObject;
        let pem = include_str!("../../tests/data/client-keys/p256-cert.pem");
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("cert");
        let mut cfg = config(
            include_str!("../../tests/data/client-keys/p256-sec1.pem").into(),
            None,
        );
        cfg.certificate = Some(der.to_vec());
        let key = ClientKey::load(&cfg).expect("load");
        assert_eq!(
            key.header.x5t_s256.as_deref(),
            Some("C5taYuZ0TrbBbBkqoq9dVb7CiLhipuGWiACJRJ7qgJA")
        );
        assert_eq!(
            key.header.x5t.as_deref(),
            Some("7JI-msC1oSzHvrhtFxp1qoDIlik")
        );
        assert_eq!(key.jwk.common.x509_chain.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn assertion_expiry_is_read_without_trusting_it() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = |claims: Value| format!("e30.{}.sig", b64.encode(claims.to_string()));
        assert_eq!(assertion_exp(&jwt(json!({"exp": 100}))), Some(Some(100)));
        assert_eq!(assertion_exp(&jwt(json!({"sub": "x"}))), Some(None));
        assert_eq!(assertion_exp("a.b"), None);
        assert_eq!(assertion_exp("a.!!.c"), None);
    }

    #[tokio::test]
    async fn an_expired_assertion_file_is_never_sent() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        let jwt = format!("e30.{}.sig", b64.encode(json!({"exp": 1000}).to_string()));
        std::fs::write(&path, format!("{jwt}\n")).expect("write");
        assert_eq!(read_assertion(&path, 999).await.expect("fresh"), jwt);
        let err = read_assertion(&path, 1005).await.expect_err("expired");
        assert!(
            matches!(err, CredentialError::Expired { ago: 5, .. }),
            "{err}"
        );
        let missing = read_assertion(&dir.path().join("nope"), 0)
            .await
            .expect_err("missing");
        assert!(matches!(missing, CredentialError::ReadAssertion { .. }));
    }

    #[test]
    fn basic_auth_form_urlencodes_id_and_secret() {
        // id "my-app", secret "s3:cr%t+&= x" → "my-app:s3%3Acr%25t%2B%26%3D+x"
        let header = basic_authorization("my-app", "s3:cr%t+&= x");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(
            String::from_utf8(decoded).expect("utf8"),
            "my-app:s3%3Acr%25t%2B%26%3D+x"
        );
    }

    #[test]
    fn basic_auth_plain_secret_is_unchanged() {
        assert_eq!(
            basic_authorization("client", "secret"),
            "Basic Y2xpZW50OnNlY3JldA=="
        );
    }

    /// The client-authentication vectors CA-01..CA-17 (RFC 6749 §2.3.1 and
    /// Appendix B): id, secret, the exact header, and the header a client
    /// that forgot to encode would send (which must differ wherever
    /// encoding changes anything).
    const VECTORS: &[(&str, &str, &str, &str, &str)] = &[
        ("CA-01", "s6BhdRkqt3", "gX1fBat3bV", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"),
        ("CA-02", "1PpG/Q 1", "z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=",
            "Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA==",
            "Basic MVBwRy9RIDE6ei90WjlWd0ZacUFwbUlRK1pIMUk1cExrL3VCNHVkOlgyLzhiTCt3ZkZUdDFyRnc9"),
        ("CA-03", "tollgate", " %&+\u{a3}\u{20ac}", "Basic dG9sbGdhdGU6KyUyNSUyNiUyQiVDMiVBMyVFMiU4MiVBQw==", "Basic dG9sbGdhdGU6ICUmK8Kj4oKs"),
        ("CA-04", "tollgate", "a:b", "Basic dG9sbGdhdGU6YSUzQWI=", "Basic dG9sbGdhdGU6YTpi"),
        ("CA-05", "tollgate:1", "secret", "Basic dG9sbGdhdGUlM0ExOnNlY3JldA==", "Basic dG9sbGdhdGU6MTpzZWNyZXQ="),
        ("CA-06", "tollgate", "100%", "Basic dG9sbGdhdGU6MTAwJTI1", "Basic dG9sbGdhdGU6MTAwJQ=="),
        ("CA-07", "tollgate", "%41", "Basic dG9sbGdhdGU6JTI1NDE=", "Basic dG9sbGdhdGU6JTQx"),
        ("CA-08", "tollgate", "a+b", "Basic dG9sbGdhdGU6YSUyQmI=", "Basic dG9sbGdhdGU6YSti"),
        ("CA-09", "tollgate", "a b", "Basic dG9sbGdhdGU6YSti", "Basic dG9sbGdhdGU6YSBi"),
        ("CA-10", "tollgate", "p\u{e4}ssw\u{f6}rd", "Basic dG9sbGdhdGU6cCVDMyVBNHNzdyVDMyVCNnJk", "Basic dG9sbGdhdGU6cMOkc3N3w7ZyZA=="),
        ("CA-11", "tollgate", "s\u{e9}cr\u{e9}t\u{20ac}", "Basic dG9sbGdhdGU6cyVDMyVBOWNyJUMzJUE5dCVFMiU4MiVBQw==", "Basic dG9sbGdhdGU6c8OpY3LDqXTigqw="),
        ("CA-12", "tollgate", "\u{1f511}key", "Basic dG9sbGdhdGU6JUYwJTlGJTk0JTkxa2V5", "Basic dG9sbGdhdGU68J+UkWtleQ=="),
        ("CA-13", "tollgate", "e\u{301}", "Basic dG9sbGdhdGU6ZSVDQyU4MQ==", "Basic dG9sbGdhdGU6ZcyB"),
        ("CA-14", "tollgate", "p@ss/w=rd?&#", "Basic dG9sbGdhdGU6cCU0MHNzJTJGdyUzRHJkJTNGJTI2JTIz", "Basic dG9sbGdhdGU6cEBzcy93PXJkPyYj"),
        ("CA-15", "tollgate", "!'()*~", "Basic dG9sbGdhdGU6JTIxJTI3JTI4JTI5KiU3RQ==", "Basic dG9sbGdhdGU6IScoKSp+"),
        ("CA-16", "tollgate", "a\"b'c<d>", "Basic dG9sbGdhdGU6YSUyMmIlMjdjJTNDZCUzRQ==", "Basic dG9sbGdhdGU6YSJiJ2M8ZD4="),
        ("CA-17", "my client", "p@ss:w0rd!", "Basic bXkrY2xpZW50OnAlNDBzcyUzQXcwcmQlMjE=", "Basic bXkgY2xpZW50OnBAc3M6dzByZCE="),
    ];

    #[test]
    fn client_authentication_vectors_give_exactly_the_expected_header() {
        let b64 = base64::engine::general_purpose::STANDARD;
        for (case, id, secret, exact, unencoded) in VECTORS {
            let header = basic_authorization(id, secret);
            assert_eq!(&header, exact, "{case}: id {id:?}, secret {secret:?}");
            // The vector's own "forgot to encode" header is what a naive
            // client sends; ours differs wherever encoding changes a byte.
            let naive = format!("Basic {}", b64.encode(format!("{id}:{secret}")));
            assert_eq!(&naive, unencoded, "{case}: the table's un-encoded header");
            if *case != "CA-01" {
                assert_ne!(&header, unencoded, "{case}: sent without encoding");
            }
            // A conforming server splits at the one raw ':' and decodes both
            // halves back to exactly what was configured.
            let decoded = b64
                .decode(header.trim_start_matches("Basic "))
                .expect("base64");
            let decoded = String::from_utf8(decoded).expect("utf8");
            let (user, pass) = decoded.split_once(':').expect("one separator");
            let undo = |s: &str| -> String {
                form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(
                (undo(user), undo(pass)),
                (id.to_string(), secret.to_string()),
                "{case}"
            );
        }
    }
}
