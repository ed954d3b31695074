//! Machine clients: `Authorization: Bearer <token>` instead of a cookie.
//!
//! A JWT access token is verified against the provider's keys (algorithm
//! allow-list, signature, `iss`, `exp`, `nbf`, `iat`) and must name one of
//! `authorization.bearer_audiences` in `aud`. An opaque token is asked
//! about at the provider's introspection endpoint (RFC 7662) when
//! `authorization.bearer_introspection` is on; answers are cached briefly,
//! keyed by the token's SHA-256. Bearer requests never redirect: a bad
//! token is a 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::context::BearerCtx;
pub use super::verdicts::BearerError;
use crate::oidc::id_token::{Audience, IdTokenClaims};
use crate::oidc::jwks::Refetch;
use crate::oidc::jws::{Jws, JwsError};
use crate::session::{now, Session};

/// The `Bearer` credentials of a request, if it sends exactly that scheme.
pub fn token(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[derive(Deserialize)]
struct AccessClaims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Authenticates a bearer token; the session it yields lives only for this
/// request.
pub async fn authenticate(ctx: &BearerCtx<'_>, token: &str) -> Result<Session, BearerError> {
    let is_jwt = token.split('.').count() == 3;
    if !is_jwt && !ctx.settings.introspection {
        return Err(BearerError::Invalid(
            "not a JWT, and introspection is off".into(),
        ));
    }
    // Verdicts are cached by the token's hash, for both kinds: a JWT's
    // signature check costs more than the whole rest of the request.
    let mut key = [0u8; 32];
    key.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref(),
    );
    if let Some(r) = ctx.verdicts.get(&key) {
        return r;
    }
    let result = if is_jwt {
        jwt(ctx, token).await
    } else {
        introspect(ctx, token).await
    };
    ctx.verdicts.put(key, &result);
    result
}

fn audiences(aud: &Option<Audience>) -> Vec<&str> {
    match aud {
        Some(Audience::One(a)) => vec![a.as_str()],
        Some(Audience::Many(a)) => a.iter().map(String::as_str).collect(),
        None => Vec::new(),
    }
}

async fn jwt(ctx: &BearerCtx<'_>, token: &str) -> Result<Session, BearerError> {
    // The keys, issuer and audiences of the provider, or of the extra
    // issuer the token names.
    let (keys, issuer, accepted) = match ctx.issuers.of_token(token) {
        Some(extra) => (
            extra
                .keys(ctx.provider.http)
                .await
                .ok_or(BearerError::Unavailable)?,
            extra.issuer.issuer.as_str(),
            extra.issuer.audiences.as_slice(),
        ),
        None => (
            ctx.provider
                .current
                .clone()
                .ok_or(BearerError::Unavailable)?
                .keys
                .clone(),
            ctx.provider.settings.issuer.as_str(),
            ctx.settings.audiences.as_slice(),
        ),
    };
    let jws = Jws {
        algorithms: &ctx.settings.algorithms,
        hmac_secret: None,
        refetch: Refetch::Throttled,
    };
    let c: AccessClaims = jws.verify(token, &keys).await.map_err(|e| match e {
        JwsError::UnknownKey(_) => BearerError::UnknownKey(format!("bearer token: {e}")),
        e => BearerError::Invalid(format!("bearer token: {e}")),
    })?;
    let leeway = ctx.provider.settings.clock_skew.as_secs_f64();
    let t = now() as f64;
    if c.iss.as_deref() != Some(issuer) {
        return Err(BearerError::Invalid("wrong issuer".into()));
    }
    let aud = audiences(&c.aud);
    if !aud.iter().any(|a| accepted.iter().any(|b| b == a)) {
        return Err(BearerError::Invalid("audience not accepted".into()));
    }
    match c.exp {
        Some(exp) if exp + leeway > t => {}
        _ => return Err(BearerError::Invalid("expired".into())),
    }
    // An ID token is not an access token (RFC 9068 §4): a `nonce` or an
    // `id+jwt`-style type gives one away.
    if c.rest.contains_key("nonce") {
        return Err(BearerError::Invalid(
            "an ID token, not an access token".into(),
        ));
    }
    if c.nbf.is_some_and(|nbf| nbf - leeway > t) || c.iat.is_some_and(|iat| iat - leeway > t) {
        return Err(BearerError::Invalid("not valid yet".into()));
    }
    let mut session = principal(ctx, token, c.rest, c.exp.map(|e| e as i64))?;
    if issuer != ctx.provider.settings.issuer {
        // An extra issuer is named by its URL.
        session.provider = Some(issuer.to_string());
    }
    Ok(session)
}

#[tracing::instrument(
    target = "tollgate::trace",
    name = "introspection",
    skip_all,
    fields(otel.kind = "client")
)]
async fn introspect(ctx: &BearerCtx<'_>, token: &str) -> Result<Session, BearerError> {
    let provider = ctx
        .provider
        .current
        .clone()
        .ok_or(BearerError::Unavailable)?;
    let endpoint = provider
        .metadata
        .introspection_endpoint
        .as_ref()
        .ok_or_else(|| BearerError::Invalid("the provider has no introspection endpoint".into()))?;
    let answer = provider
        .tokens
        .introspect(endpoint, token)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "introspection failed");
            BearerError::Unavailable
        })?;
    if answer.get("active").and_then(Value::as_bool) != Some(true) {
        return Err(BearerError::Invalid("inactive".into()));
    }
    let Value::Object(mut claims) = answer else {
        return Err(BearerError::Invalid(
            "malformed introspection answer".into(),
        ));
    };
    if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
        if iss != ctx.provider.settings.issuer {
            return Err(BearerError::Invalid("wrong issuer".into()));
        }
    }
    // Tokens issued to this client, or to an accepted audience.
    let aud: Option<Audience> = claims
        .get("aud")
        .cloned()
        .and_then(|a| serde_json::from_value(a).ok());
    let client_id = claims.get("client_id").and_then(Value::as_str);
    let ours = client_id == Some(ctx.provider.settings.client_id.as_str())
        || audiences(&aud)
            .iter()
            .any(|a| ctx.settings.audiences.iter().any(|b| b == a));
    if !ours {
        return Err(BearerError::Invalid("audience not accepted".into()));
    }
    let exp = claims.get("exp").and_then(Value::as_i64);
    if exp.is_some_and(|e| e <= now()) {
        return Err(BearerError::Invalid("expired".into()));
    }
    claims.remove("active");
    principal(ctx, token, claims, exp)
}

/// The per-request identity of a bearer token's claims.
fn principal(
    ctx: &BearerCtx<'_>,
    token: &str,
    claims: Map<String, Value>,
    exp: Option<i64>,
) -> Result<Session, BearerError> {
    let get = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
    let sub = get("sub")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BearerError::Invalid("no sub".into()))?;
    let view = IdTokenClaims {
        iss: None,
        sub: Some(sub.clone()),
        aud: None,
        azp: None,
        exp: None,
        iat: None,
        nbf: None,
        nonce: None,
        auth_time: None,
        sid: None,
        email: get("email"),
        email_verified: claims.get("email_verified").and_then(Value::as_bool),
        name: get("name"),
        preferred_username: get("preferred_username").or_else(|| get("username")),
        other: claims,
    };
    let mut session = Session {
        sub,
        access_token: token.to_string(),
        access_expires_at: exp,
        issued_at: now(),
        expires_at: exp.unwrap_or_else(|| now() + 60),
        provider: Session::provider_field(&ctx.provider.settings.id),
        ..Session::default()
    };
    super::profile::Profile::of(&ctx.claims, &view).fill(&mut session);
    Ok(session)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bearer_scheme_is_parsed_strictly() {
        let mut h = http::HeaderMap::new();
        for (v, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            h.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static(v),
            );
            assert_eq!(super::token(&h), want, "{v}");
        }
    }
}
