//! ID Token validation, OIDC Core 1.0 §3.1.3.7, made strict:
//!
//! 1. the header's `alg` must be on the configured allow-list (never `none`;
//!    HS* only when configured, keyed with the client secret);
//! 2. the signature must verify with a provider key (JWKS, refetched once
//!    for an unknown `kid`) — even for tokens straight from the token
//!    endpoint;
//! 3. `iss` equals the issuer exactly; `aud` contains the client id; with
//!    several audiences `azp` must be present; `azp`, when present, must be
//!    the client id; in strict mode every other audience must be one the
//!    operator trusts (`provider.trusted_audiences`);
//! 4. `exp`, `iat` (required, not in the future, not older than
//!    `provider.id_token_max_age`), `nbf` (when present) are checked with the
//!    configured clock skew;
//! 5. `sub` is a non-empty string of at most 255 characters (OIDC Core §2);
//! 6. `nonce` equals the one sent in the authorization request (constant
//!    time) when one was sent;
//! 7. the header's `typ`, when present, says `JWT`: an access token
//!    (`at+jwt`) or a logout token (`logout+jwt`) is not an ID token
//!    (RFC 8725 §3.11);
//! 8. the token is at most [`MAX_TOKEN_BYTES`] long, checked before any
//!    decoding.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwks::{KeyCache, Refetch};
use super::jws::{self, is_hmac, JwsError};

pub use super::jws::MAX_TOKEN_BYTES;

/// Why an ID token was refused. Each variant names one failed check, so the
/// log line says exactly which.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("ID token is not a well-formed JWS: {0}")]
    Malformed(String),
    #[error("ID token algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("no provider key matches the ID token (kid {0:?})")]
    UnknownKey(Option<String>),
    #[error("ID token signature is invalid")]
    BadSignature,
    #[error("ID token `iss` is missing or is not the issuer")]
    Issuer,
    #[error("ID token `aud` is missing or does not contain the client id")]
    Audience,
    #[error("ID token has several audiences but no `azp`")]
    MissingAzp,
    #[error("ID token `azp` is not the client id")]
    Azp,
    #[error("ID token is expired (or has no `exp`)")]
    Expired,
    #[error("ID token is not valid yet (`nbf` in the future)")]
    NotYetValid,
    #[error("ID token has no `iat`")]
    MissingIat,
    #[error("ID token `iat` is in the future")]
    IssuedInFuture,
    #[error("ID token has no `sub`")]
    MissingSub,
    #[error("ID token has no `nonce`, but one was sent")]
    MissingNonce,
    #[error("ID token `nonce` does not match the login")]
    NonceMismatch,
    #[error("ID token `sub` differs from the session's")]
    SubjectChanged,
    #[error("ID token `sub` is longer than 255 characters")]
    SubjectTooLong,
    #[error("ID token `iat` is older than `provider.id_token_max_age`")]
    TooOld,
    #[error("ID token has an audience tollgate does not trust (strict audience mode)")]
    UntrustedAudience,
    #[error("JWT `typ` header `{0}` is not an ID token's")]
    WrongType(String),
    #[error("ID token is larger than 64 KiB")]
    TooLarge,
    #[error("ID token `at_hash` does not match the access token")]
    AccessTokenHash,
    #[error(
        "refreshed ID token `{0}` differs from the original authentication's (OIDC Core §12.2)"
    )]
    RefreshMismatch(&'static str),
    #[error("ID token has no `auth_time`, which `provider.max_age` requires (OIDC Core §3.1.2.1)")]
    MissingAuthTime,
    #[error("ID token `auth_time` is older than `provider.max_age` allows")]
    AuthTooOld,
    #[error("ID token `acr` is missing or not one of `provider.acr_values`")]
    Acr,
}

impl From<JwsError> for IdTokenError {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed(m) => IdTokenError::Malformed(m),
            JwsError::AlgorithmNotAllowed(a) => IdTokenError::AlgorithmNotAllowed(a),
            JwsError::UnknownKey(k) => IdTokenError::UnknownKey(k),
            JwsError::BadSignature => IdTokenError::BadSignature,
            JwsError::TooLarge => IdTokenError::TooLarge,
        }
    }
}

impl IdTokenError {
    /// Short name of the failed check, for logs and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            IdTokenError::Malformed(_) | IdTokenError::TooLarge => "id_token_malformed",
            IdTokenError::AlgorithmNotAllowed(_) => "id_token_alg",
            IdTokenError::UnknownKey(_) => "id_token_key",
            IdTokenError::BadSignature => "id_token_signature",
            IdTokenError::Issuer => "id_token_iss",
            IdTokenError::Audience | IdTokenError::UntrustedAudience => "id_token_aud",
            IdTokenError::MissingAzp | IdTokenError::Azp => "id_token_azp",
            IdTokenError::Expired => "id_token_exp",
            IdTokenError::NotYetValid => "id_token_nbf",
            IdTokenError::MissingIat | IdTokenError::IssuedInFuture | IdTokenError::TooOld => {
                "id_token_iat"
            }
            IdTokenError::MissingSub
            | IdTokenError::SubjectChanged
            | IdTokenError::SubjectTooLong => "id_token_sub",
            IdTokenError::MissingNonce | IdTokenError::NonceMismatch => "id_token_nonce",
            IdTokenError::WrongType(_) => "id_token_typ",
            IdTokenError::AccessTokenHash => "id_token_at_hash",
            IdTokenError::RefreshMismatch(_) => "id_token_refresh",
            IdTokenError::MissingAuthTime | IdTokenError::AuthTooOld => "id_token_auth_time",
            IdTokenError::Acr => "id_token_acr",
        }
    }
}

/// The claims tollgate uses; everything else stays in `other` for claim
/// lookups such as a configurable groups claim.
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub azp: Option<String>,
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub iat: Option<f64>,
    #[serde(default)]
    pub nbf: Option<f64>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// A boolean (OIDC Core §5.1); anything else, such as the string
    /// `"true"`, counts as not verified rather than failing the login.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub email_verified: Option<bool>,
    /// A number; anything else (some providers send a string) is ignored.
    #[serde(default, deserialize_with = "lenient_number")]
    pub auth_time: Option<f64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl IdTokenClaims {
    /// The validated subject (present after validation).
    pub fn subject(&self) -> &str {
        self.sub.as_deref().unwrap_or_default()
    }

    /// A claim by dotted path (`realm_access.roles`), looking at the
    /// top-level claims first so a claim literally named `a.b` still works.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.other.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut cur = self.other.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_object()?.get(p)?;
        }
        Some(cur)
    }

    /// A claim by dotted path, including the standard claims this struct
    /// keeps in named fields (`sub`, `email`, `name`, ...).
    pub fn claim_value(&self, path: &str) -> Option<Value> {
        let named = match path {
            "sub" => self.sub.clone().map(Value::String),
            "iss" => self.iss.clone().map(Value::String),
            "azp" => self.azp.clone().map(Value::String),
            "sid" => self.sid.clone().map(Value::String),
            "email" => self.email.clone().map(Value::String),
            "email_verified" => self.email_verified.map(Value::Bool),
            "name" => self.name.clone().map(Value::String),
            "preferred_username" => self.preferred_username.clone().map(Value::String),
            _ => None,
        };
        named.or_else(|| self.claim(path).cloned())
    }

    /// Group names from `claim` (a list of strings, or one string).
    pub fn groups(&self, claim: &str) -> Vec<String> {
        match self.claim(claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.exp.map(|e| e as i64)
    }
}

fn lenient_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_f64()))
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => Some(b),
        Some(_) => Some(false),
        None => None,
    })
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn values(&self) -> &[String] {
        match self {
            Audience::One(s) => std::slice::from_ref(s),
            Audience::Many(v) => v,
        }
    }
}

/// What a validator needs to know about this relying party.
#[derive(Debug, Clone)]
pub struct IdTokenValidator {
    /// The issuer; for a multi-tenant Entra ID authority the template with
    /// `{tenantid}` (see `tenants`).
    pub issuer: String,
    /// Multi-tenant Entra ID: the tenants (`tid`) allowed, `*` for any;
    /// `iss` must then be the template with the token's own `tid`.
    pub tenants: Option<Vec<String>>,
    pub client_id: String,
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    /// Oldest acceptable `iat` (plus the leeway); `None`: no limit.
    pub max_age: Option<Duration>,
    /// Audiences besides the client id that may appear in `aud`.
    pub trusted_audiences: Vec<String>,
    /// Refuse any audience that is neither the client id nor trusted,
    /// even with `azp` = client id (OIDC Core §3.1.3.7 step 3, read strictly).
    pub strict_audience: bool,
    /// Key for HS* algorithms: the client secret (OIDC Core §10.1).
    pub hmac_secret: Option<Vec<u8>>,
}

/// Expectations that differ per token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// The nonce sent in the authorization request; `None` for refreshes.
    pub nonce: Option<&'a str>,
    /// For a refreshed ID token: the subject must not change (OIDC Core §12.2).
    pub subject: Option<&'a str>,
    /// For a refreshed ID token: the original authentication's `auth_time`
    /// and `nonce`, which a refreshed token may repeat but never change.
    pub auth_time: Option<i64>,
    pub original_nonce: Option<&'a str>,
    /// The access token issued with this ID token: its `at_hash`, when
    /// present, must match (OIDC Core §3.1.3.8).
    pub access_token: Option<&'a str>,
    /// At login with `max_age` sent: `auth_time` must be present and no
    /// older than this (OIDC Core §3.1.3.7 step 11).
    pub max_auth_age: Option<Duration>,
    /// At login with `acr_values` sent: `acr` must be one of them.
    pub acr_values: &'a [String],
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl IdTokenValidator {
    /// Validates `token` against the provider keys.
    pub async fn validate(
        &self,
        token: &str,
        keys: &KeyCache,
        expect: Expect<'_>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        // `verified` refuses oversized tokens before any decoding.
        let claims: IdTokenClaims = self.verified(token, keys).await?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IdTokenError::Malformed(e.to_string()))?;
        if let Some(t) = header.typ {
            if !(t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt")) {
                return Err(IdTokenError::WrongType(crate::oidc::token::sanitize(&t)));
            }
        }
        self.check_claims(&claims, expect, now())?;
        // OIDC Core §3.1.3.7 step 8: with a MAC, several audiences would all
        // hold the key; accept only the client itself.
        if is_hmac(header.alg) && claims.aud.as_ref().map_or(0, |a| a.values().len()) != 1 {
            return Err(IdTokenError::UntrustedAudience);
        }
        if let (Some(at), Some(hash)) = (
            expect.access_token,
            claims
                .other
                .get("at_hash")
                .map(|v| v.as_str().unwrap_or_default()),
        ) {
            if !super::ct_eq(hash, &token_hash(header.alg, at)) {
                return Err(IdTokenError::AccessTokenHash);
            }
        }
        Ok(claims)
    }

    /// The claims of a JWS whose algorithm is allowed and whose signature
    /// verifies with a provider key (or, for HS*, the client secret), for
    /// an ID token straight from the token endpoint: an unknown `kid` is
    /// always refetched. No claim is checked here.
    pub async fn verified<C: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        keys: &KeyCache,
    ) -> Result<C, IdTokenError> {
        let jws = jws::Jws {
            algorithms: &self.algorithms,
            hmac_secret: self.hmac_secret.as_deref(),
            refetch: Refetch::Always,
        };
        Ok(jws.verify(token, keys).await?)
    }

    fn check_claims(
        &self,
        c: &IdTokenClaims,
        expect: Expect<'_>,
        now: f64,
    ) -> Result<(), IdTokenError> {
        let leeway = self.leeway.as_secs_f64();
        if !self.issuer_ok(c) {
            return Err(IdTokenError::Issuer);
        }
        let aud = c.aud.as_ref().map(Audience::values).unwrap_or_default();
        if !aud.iter().any(|a| a == &self.client_id) {
            return Err(IdTokenError::Audience);
        }
        match &c.azp {
            Some(azp) if azp != &self.client_id => return Err(IdTokenError::Azp),
            None if aud.len() > 1 => return Err(IdTokenError::MissingAzp),
            _ => {}
        }
        if self.strict_audience
            && aud
                .iter()
                .any(|a| a != &self.client_id && !self.trusted_audiences.contains(a))
        {
            return Err(IdTokenError::UntrustedAudience);
        }
        match c.exp {
            Some(exp) if exp + leeway > now => {}
            _ => return Err(IdTokenError::Expired),
        }
        match c.iat {
            None => return Err(IdTokenError::MissingIat),
            Some(iat) if iat - leeway > now => return Err(IdTokenError::IssuedInFuture),
            Some(iat)
                if self
                    .max_age
                    .is_some_and(|m| iat + m.as_secs_f64() + leeway < now) =>
            {
                return Err(IdTokenError::TooOld)
            }
            Some(_) => {}
        }
        if let Some(nbf) = c.nbf {
            if nbf - leeway > now {
                return Err(IdTokenError::NotYetValid);
            }
        }
        match c.sub.as_deref() {
            None | Some("") => return Err(IdTokenError::MissingSub),
            Some(s) if s.chars().count() > 255 => return Err(IdTokenError::SubjectTooLong),
            Some(_) => {}
        }
        if let Some(sent) = expect.nonce {
            match &c.nonce {
                None => return Err(IdTokenError::MissingNonce),
                Some(got) if !super::ct_eq(got, sent) => return Err(IdTokenError::NonceMismatch),
                Some(_) => {}
            }
        }
        self.check_login_options(c, expect, now)?;
        if let Some(sub) = expect.subject {
            if c.sub.as_deref() != Some(sub) {
                return Err(IdTokenError::SubjectChanged);
            }
            // OIDC Core §12.2 (errata 2): `auth_time` is the original
            // authentication's; a `nonce`, if present, the original's.
            if let (Some(before), Some(now)) = (expect.auth_time, c.auth_time) {
                if before != now as i64 {
                    return Err(IdTokenError::RefreshMismatch("auth_time"));
                }
            }
            // Sessions from before the nonce was kept have none to compare.
            if let (Some(got), Some(sent)) = (&c.nonce, expect.original_nonce) {
                if !super::ct_eq(got, sent) {
                    return Err(IdTokenError::RefreshMismatch("nonce"));
                }
            }
        }
        Ok(())
    }
}

impl IdTokenValidator {
    /// `iss` is the issuer; with tenants, the template filled with the
    /// token's `tid`, which must be allowed.
    fn issuer_ok(&self, c: &IdTokenClaims) -> bool {
        let Some(iss) = c.iss.as_deref() else {
            return false;
        };
        let Some(tenants) = &self.tenants else {
            return iss == self.issuer;
        };
        let tid = c
            .other
            .get("tid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tid_ok = !tid.is_empty()
            && tid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && tenants
                .iter()
                .any(|t| t == "*" || t.eq_ignore_ascii_case(tid));
        tid_ok
            && iss
                == self
                    .issuer
                    .replace(super::preset::ENTRA_TENANT_PLACEHOLDER, tid)
    }

    /// What a login asked for with `max_age` and `acr_values`.
    fn check_login_options(
        &self,
        c: &IdTokenClaims,
        expect: Expect<'_>,
        now: f64,
    ) -> Result<(), IdTokenError> {
        if let Some(max) = expect.max_auth_age {
            let auth_time = c.auth_time.ok_or(IdTokenError::MissingAuthTime)?;
            if auth_time + max.as_secs_f64() + self.leeway.as_secs_f64() < now {
                return Err(IdTokenError::AuthTooOld);
            }
        }
        if !expect.acr_values.is_empty() {
            let acr = c.other.get("acr").and_then(Value::as_str);
            if !acr.is_some_and(|a| expect.acr_values.iter().any(|v| v == a)) {
                return Err(IdTokenError::Acr);
            }
        }
        Ok(())
    }
}

/// `at_hash` / `c_hash` (OIDC Core §3.1.3.8, §3.3.2.11): the left half of
/// the hash the signing algorithm uses, base64url. EdDSA (Ed25519) uses
/// SHA-512.
pub fn token_hash(alg: Algorithm, token: &str) -> String {
    use aws_lc_rs::digest;
    use base64::Engine as _;
    let which = match alg {
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => {
            &digest::SHA384
        }
        Algorithm::RS512 | Algorithm::PS512 | Algorithm::HS512 | Algorithm::EdDSA => {
            &digest::SHA512
        }
        _ => &digest::SHA256,
    };
    let d = digest::digest(which, token.as_bytes());
    let bytes = d.as_ref();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
#[path = "id_token_tests.rs"]
mod tests;
