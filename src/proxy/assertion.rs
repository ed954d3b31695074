//! The signed identity assertion: a short-lived ES256 JWT in
//! `X-Tollgate-Assertion`, so the upstream can verify who the user is
//! instead of trusting headers. The public key is published at
//! `/oauth2/jwks`.

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::secret::Secret;
use crate::session::{now, Session};

/// `upstream.assertion`: what the signer needs, as configured.
#[derive(Clone)]
pub struct AssertionConfig {
    /// PKCS#8 DER of a P-256 key; `None`: generate one at start.
    pub key_pkcs8: Option<Secret>,
    /// `aud` of the assertion.
    pub audience: String,
}

impl std::fmt::Debug for AssertionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionConfig")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl AssertionConfig {
    /// Whether a configured key is a P-256 PKCS#8 key (checked when the
    /// configuration loads, so a wrong key is a config error).
    pub fn check_key(&self) -> Result<(), AssertionError> {
        match &self.key_pkcs8 {
            Some(k) => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, k.expose())
                .map(|_| ())
                .map_err(|_| AssertionError::BadKey),
            None => Ok(()),
        }
    }
}

/// The header the assertion travels in.
pub const HEADER: &str = "x-tollgate-assertion";
/// How long an assertion is valid.
pub const LIFETIME_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the assertion key is not a P-256 PKCS#8 key")]
    BadKey,
    #[error("cannot generate an assertion key")]
    Generate,
}

pub struct Assertions {
    key: EncodingKey,
    header: Header,
    jwk: Value,
    issuer: String,
    audience: String,
}

impl Assertions {
    pub fn new(config: &AssertionConfig, issuer: &str) -> Result<Self, AssertionError> {
        let pkcs8 = match &config.key_pkcs8 {
            Some(k) => k.expose().to_vec(),
            None => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| AssertionError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| AssertionError::BadKey)?;
        let public = pair.public_key().as_ref();
        if public.len() != 65 {
            return Err(AssertionError::BadKey);
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let thumb = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public);
        let kid = b64.encode(&thumb.as_ref()[..12]);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": b64.encode(&public[1..33]), "y": b64.encode(&public[33..65]),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid);
        header.typ = Some("JWT".into());
        Ok(Self {
            key: EncodingKey::from_ec_der(&pkcs8),
            header,
            jwk,
            issuer: issuer.to_string(),
            audience: config.audience.clone(),
        })
    }

    /// The assertion for one request.
    pub fn sign(&self, s: &Session) -> Option<String> {
        let iat = now();
        let claims = json!({
            "iss": self.issuer, "aud": self.audience, "sub": s.sub,
            "email": s.email, "groups": s.groups, "preferred_username": s.preferred_username,
            // The provider's id: a `sub` is unique only within its provider.
            "idp": s.provider_id(),
            "iat": iat, "exp": iat + LIFETIME_SECS,
        });
        jsonwebtoken::encode(&self.header, &claims, &self.key).ok()
    }

    /// The public key set for `/oauth2/jwks`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_verify_with_the_published_key() {
        let a = Assertions::new(
            &AssertionConfig {
                key_pkcs8: None,
                audience: "http://127.0.0.1:8080".into(),
            },
            "https://app.test",
        )
        .expect("assertions");
        let s = Session {
            sub: "alice".into(),
            email: Some("a@example.com".into()),
            groups: vec!["dev".into()],
            expires_at: i64::MAX,
            nonce: None,
            auth_time: None,
            ..Session::default()
        };
        let token = a.sign(&s).expect("signed");
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(a.jwks()["keys"][0].clone()).expect("jwk");
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&["http://127.0.0.1:8080"]);
        v.set_issuer(&["https://app.test"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key"),
            &v,
        )
        .expect("valid");
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.claims["groups"], json!(["dev"]));
        assert!(
            data.claims["exp"].as_i64().expect("exp") - data.claims["iat"].as_i64().expect("iat")
                == LIFETIME_SECS
        );
    }
}
