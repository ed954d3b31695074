//! Logout Token validation, OpenID Connect Back-Channel Logout 1.0 §2.6.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::id_token::{Audience, IdTokenValidator};
use super::jwks::{KeyCache, Refetch};
use super::jws::{is_hmac, Jws, JwsError};

/// The `events` member that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    #[error("logout token: {0}")]
    Jws(#[from] JwsError),
    #[error("logout token `typ` header `{0}` is not a logout token's")]
    WrongType(String),
    #[error("logout token `iss` is missing or is not the issuer")]
    Issuer,
    #[error("logout token `aud` is missing or does not contain the client id")]
    Audience,
    #[error("logout token has no `iat`")]
    MissingIat,
    #[error("logout token `iat` is in the future")]
    IssuedInFuture,
    #[error("logout token is expired (or has no `exp`)")]
    Expired,
    #[error("logout token `events` has no back-channel logout event")]
    NoEvent,
    #[error("logout token names neither `sid` nor `sub`")]
    NoSubject,
    #[error("logout token carries a `nonce` (forbidden, §2.4)")]
    Nonce,
    #[error("logout token has no `jti`")]
    NoJti,
    #[error("logout token was already used (`jti` replay)")]
    Replay,
}

#[derive(Debug, Deserialize)]
pub struct LogoutClaims {
    #[serde(default)]
    pub iss: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub iat: Option<f64>,
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub jti: Option<String>,
    #[serde(default)]
    pub events: Option<Map<String, Value>>,
    /// Present at all, even as `null`, is refused (§2.4: a logout token
    /// MUST NOT contain a `nonce` claim).
    #[serde(default, deserialize_with = "present")]
    pub nonce: Option<Value>,
}

/// `Some` for any value, `null` included; the field's `default` gives `None`
/// only when the member is absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Checks signature, `iss`, `aud`, `iat`, `exp`, `events`, `sid`/`sub`, no
/// `nonce`, and the presence of `jti` (replay is checked by the store).
pub async fn validate(
    validator: &IdTokenValidator,
    token: &str,
    keys: &KeyCache,
) -> Result<LogoutClaims, LogoutTokenError> {
    // Signed like ID tokens, but never with a MAC: anyone can post to the
    // back-channel endpoint, and the client secret is no signing key.
    let algorithms: Vec<_> = validator
        .algorithms
        .iter()
        .copied()
        .filter(|a| !is_hmac(*a))
        .collect();
    let jws = Jws {
        algorithms: &algorithms,
        hmac_secret: None,
        refetch: Refetch::Throttled,
    };
    let claims: LogoutClaims = jws.verify(token, keys).await?;
    // §2.4 recommends explicit typing (`logout+jwt`); an ID token or an
    // access token must never pass as a logout token (§4.1).
    if let Some(t) = jsonwebtoken::decode_header(token)
        .map_err(|e| JwsError::Malformed(e.to_string()))?
        .typ
    {
        let t = t.to_ascii_lowercase();
        if !matches!(t.as_str(), "logout+jwt" | "application/logout+jwt" | "jwt") {
            return Err(LogoutTokenError::WrongType(crate::oidc::token::sanitize(
                &t,
            )));
        }
    }
    check(validator, &claims, now())?;
    Ok(claims)
}

fn now() -> f64 {
    crate::session::now() as f64
}

pub(crate) fn check(
    v: &IdTokenValidator,
    c: &LogoutClaims,
    now: f64,
) -> Result<(), LogoutTokenError> {
    let leeway = v.leeway.as_secs_f64();
    if c.iss.as_deref() != Some(v.issuer.as_str()) {
        return Err(LogoutTokenError::Issuer);
    }
    let aud = match &c.aud {
        Some(Audience::One(a)) => vec![a.as_str()],
        Some(Audience::Many(a)) => a.iter().map(String::as_str).collect(),
        None => vec![],
    };
    if !aud.contains(&v.client_id.as_str()) {
        return Err(LogoutTokenError::Audience);
    }
    match c.iat {
        None => return Err(LogoutTokenError::MissingIat),
        Some(iat) if iat - leeway > now => return Err(LogoutTokenError::IssuedInFuture),
        Some(_) => {}
    }
    // `exp` is REQUIRED in the final specification (§2.4).
    match c.exp {
        Some(exp) if exp + leeway > now => {}
        _ => return Err(LogoutTokenError::Expired),
    }
    let has_event = c
        .events
        .as_ref()
        .and_then(|e| e.get(BACKCHANNEL_EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(LogoutTokenError::NoEvent);
    }
    if c.sid.as_deref().is_none_or(str::is_empty) && c.sub.as_deref().is_none_or(str::is_empty) {
        return Err(LogoutTokenError::NoSubject);
    }
    if c.nonce.is_some() {
        return Err(LogoutTokenError::Nonce);
    }
    if c.jti.as_deref().is_none_or(str::is_empty) {
        return Err(LogoutTokenError::NoJti);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn v() -> IdTokenValidator {
        IdTokenValidator {
            tenants: None,
            issuer: "https://op.test".into(),
            client_id: "tollgate".into(),
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            leeway: Duration::from_secs(60),
            max_age: Some(Duration::from_secs(600)),
            trusted_audiences: Vec::new(),
            strict_audience: false,
            hmac_secret: None,
        }
    }

    fn claims(mutate: impl FnOnce(&mut Map<String, Value>)) -> LogoutClaims {
        let mut c = json!({
            "iss": "https://op.test", "aud": "tollgate", "iat": 1000, "exp": 1300, "jti": "j1",
            "sid": "s1", "sub": "alice", "events": {BACKCHANNEL_EVENT: {}}
        });
        if let Some(m) = c.as_object_mut() {
            mutate(m);
        }
        serde_json::from_value(c).expect("claims")
    }

    #[test]
    fn a_proper_logout_token_passes() {
        assert_eq!(check(&v(), &claims(|_| {}), 1000.0), Ok(()));
        assert_eq!(
            check(
                &v(),
                &claims(|m| {
                    m.remove("sid");
                }),
                1000.0
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &v(),
                &claims(|m| {
                    m.remove("sub");
                }),
                1000.0
            ),
            Ok(())
        );
    }

    type Mutation = Box<dyn FnOnce(&mut Map<String, Value>)>;

    #[test]
    fn each_rule_refuses() {
        let cases: Vec<(Mutation, LogoutTokenError)> = vec![
            (
                Box::new(|m| {
                    m.insert("iss".into(), json!("https://op.testINVALID"));
                }),
                LogoutTokenError::Issuer,
            ),
            (
                Box::new(|m| {
                    m.insert("aud".into(), json!("tollgateINVALID"));
                }),
                LogoutTokenError::Audience,
            ),
            (
                Box::new(|m| {
                    m.remove("iat");
                }),
                LogoutTokenError::MissingIat,
            ),
            (
                Box::new(|m| {
                    m.insert("exp".into(), json!(500));
                }),
                LogoutTokenError::Expired,
            ),
            (
                Box::new(|m| {
                    m.remove("events");
                }),
                LogoutTokenError::NoEvent,
            ),
            (
                Box::new(|m| {
                    m.insert(
                        "events".into(),
                        json!({"http://schemas.openid.net/event/foobar": {}}),
                    );
                }),
                LogoutTokenError::NoEvent,
            ),
            (
                Box::new(|m| {
                    m.insert("events".into(), json!({BACKCHANNEL_EVENT: "x"}));
                }),
                LogoutTokenError::NoEvent,
            ),
            (
                Box::new(|m| {
                    m.remove("sid");
                    m.remove("sub");
                }),
                LogoutTokenError::NoSubject,
            ),
            (
                Box::new(|m| {
                    m.insert(
                        "nonce".into(),
                        json!("logout_tokens_must_not_contain_a_nonce"),
                    );
                }),
                LogoutTokenError::Nonce,
            ),
            (
                Box::new(|m| {
                    m.insert("nonce".into(), Value::Null);
                }),
                LogoutTokenError::Nonce,
            ),
            (
                Box::new(|m| {
                    m.remove("jti");
                }),
                LogoutTokenError::NoJti,
            ),
        ];
        for (mutate, expected) in cases {
            assert_eq!(check(&v(), &claims(mutate), 1000.0), Err(expected));
        }
    }
}
