//! JWS verification shared by every token tollgate reads (ID tokens, bearer
//! access tokens, logout tokens): the size bound, the algorithm allow-list
//! (never `none`), `crit`, the key lookup and the signature. No claim is
//! checked here; each token kind checks its own and words its own errors.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::jwks::{KeyCache, Refetch};

/// Longest token accepted, checked before base64 or JSON work.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a JWS was refused, in words that fit any kind of token.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("not a well-formed JWS: {0}")]
    Malformed(String),
    #[error("algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("no provider key matches (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("the signature is invalid")]
    BadSignature,
    #[error("larger than 64 KiB")]
    TooLarge,
}

/// How one kind of token is verified.
#[derive(Debug, Clone, Copy)]
pub struct Jws<'a> {
    /// Allowed `alg` values.
    pub algorithms: &'a [Algorithm],
    /// Key for HS* (the client secret); `None` refuses HS* outright. Only
    /// ID tokens may have one: a MAC key every replica holds must never
    /// mint bearer or logout tokens.
    pub hmac_secret: Option<&'a [u8]>,
    /// What an unknown `kid` may cost.
    pub refetch: Refetch,
}

impl Jws<'_> {
    /// The claims of `token` once its algorithm is allowed and its
    /// signature verifies.
    pub async fn verify<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        keys: &KeyCache,
    ) -> Result<C, JwsError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwsError::TooLarge);
        }
        let (alg, kid) = self.header(token)?;
        if is_hmac(alg) {
            return match self.hmac_secret {
                Some(s) => verify_with(token, alg, &[DecodingKey::from_secret(s)]),
                None => Err(JwsError::AlgorithmNotAllowed(format!("{alg:?}"))),
            };
        }
        let seen = keys.fetch_count();
        let candidates = keys.keys_for(alg, kid.as_deref(), self.refetch).await;
        if candidates.is_empty() {
            return Err(JwsError::UnknownKey(kid));
        }
        match verify_with(token, alg, &candidates) {
            // A token from the provider itself (over TLS) that a known key
            // id does not verify: the provider may have replaced the key
            // under the same id (a restart that generates keys anew).
            // Fetch the set once more, shared by every token waiting on
            // it, and try again; a forged token fails again.
            Err(JwsError::BadSignature) if self.refetch == Refetch::Always => {
                keys.refetch_unless_done_since(seen).await;
                let candidates = keys.current().candidates(alg, kid.as_deref());
                verify_with(token, alg, &candidates)
            }
            other => other,
        }
    }

    /// Checks `alg` against the allow-list before any key is looked up.
    fn header(&self, token: &str) -> Result<(Algorithm, Option<String>), JwsError> {
        // Read `alg` ourselves first: jsonwebtoken cannot represent `none`,
        // and the log should say "not allowed", not "malformed".
        let head = token.split('.').next().unwrap_or_default();
        let raw: Value = base64_json(head)
            .ok_or_else(|| JwsError::Malformed("header is not base64url JSON".into()))?;
        let alg_name = raw
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let alg: Algorithm = alg_name
            .parse()
            .map_err(|_| JwsError::AlgorithmNotAllowed(alg_name.clone()))?;
        if !self.algorithms.contains(&alg) || (is_hmac(alg) && self.hmac_secret.is_none()) {
            return Err(JwsError::AlgorithmNotAllowed(alg_name));
        }
        if raw.get("crit").is_some() {
            // RFC 7515 §4.1.11: we understand no critical extensions.
            return Err(JwsError::Malformed("unsupported `crit` header".into()));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| JwsError::Malformed(e.to_string()))?;
        Ok((alg, header.kid))
    }
}

/// Signature only: jsonwebtoken's claim checks are switched off and
/// replaced by the caller's, so that every failure has its own, exact error.
fn verify_with<C: serde::de::DeserializeOwned>(
    token: &str,
    alg: Algorithm,
    candidates: &[DecodingKey],
) -> Result<C, JwsError> {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let mut last_err = JwsError::BadSignature;
    for key in candidates {
        match jsonwebtoken::decode::<C>(token, key, &v) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                last_err = match e.kind() {
                    K::InvalidSignature
                    | K::InvalidEcdsaKey
                    | K::InvalidRsaKey(_)
                    | K::InvalidKeyFormat => JwsError::BadSignature,
                    other => JwsError::Malformed(format!("{other:?}")),
                };
            }
        }
    }
    Err(last_err)
}

/// HS256, HS384, HS512: MACs keyed with a shared secret.
pub fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn base64_json(part: &str) -> Option<Value> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
