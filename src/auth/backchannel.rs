//! `POST /oauth2/backchannel_logout`: OpenID Connect Back-Channel Logout 1.0.
//! The provider tells us a session ended; every tollgate session of that
//! provider session (`sid`), or of the subject when only `sub` is given,
//! ends too. With the Redis store the records are deleted; with the cookie
//! store the ended sessions are remembered in this process
//! ([`crate::session::revoked`]), which covers one replica only.

use std::time::Duration;

use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use hyper::body::Incoming;

use super::context::LogoutCtx;
use super::handled::Handled;
use crate::oidc::logout_token::{self, LogoutClaims, LogoutTokenError};
use crate::oidc::registry::Slot;
use crate::pages::{self, ClientKind, Outcome, Rejection};
use crate::session::revoked::JtiRefused;
use crate::session::store::Backend;
use crate::session::Session;

/// Largest request body accepted (a logout token is a few kilobytes).
const MAX_BODY: usize = 64 * 1024;
/// How long a `jti` is remembered: longer than any acceptable token's life.
const JTI_TTL: Duration = Duration::from_secs(3600);

pub async fn logout(ctx: &LogoutCtx<'_>, parts: &Parts, body: Incoming) -> Handled {
    let token = match logout_token_param(parts, body).await {
        Ok(t) => t,
        Err(reason) => return refused(reason),
    };
    let iss = super::issuers::unverified_issuer(&token);
    let Some(slot) = ctx.providers.by_issuer(iss.as_deref()) else {
        return refused("the logout token's issuer is not a configured provider");
    };
    let Some(provider) = slot.current() else {
        return Handled::new(
            Rejection::ProviderNotReady.respond(ClientKind::Api),
            Outcome::Error,
        );
    };
    let claims = match logout_token::validate(&slot.validator, &token, &provider.keys).await {
        Ok(c) => c,
        Err(e) => return refused(&e.to_string()),
    };
    // A token older than the replay memory could be replayed: refuse it.
    if claims
        .iat
        .is_some_and(|iat| (crate::session::now() as f64) - iat > JTI_TTL.as_secs_f64())
    {
        return refused("logout token is too old (`iat` more than an hour ago)");
    }
    match end_sessions(ctx, slot, &claims).await {
        Ok(ended) => {
            tracing::info!(
                target: "tollgate::audit",
                event = "backchannel_logout",
                user = claims.sub.as_deref().unwrap_or("-"),
                sessions = ended,
                "provider ended the session"
            );
            count("ended");
            let mut resp = pages::text(StatusCode::OK, "");
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Handled {
                response: resp,
                outcome: Outcome::BackchannelLogout,
                user: claims.sub,
            }
        }
        Err(NotEnded::Refused(reason)) => refused(&reason),
        Err(NotEnded::Store(e)) => {
            tracing::warn!(error = %e, "session store failed during back-channel logout");
            Handled::new(
                Rejection::SessionStoreUnavailable.respond(ClientKind::Api),
                Outcome::Error,
            )
        }
    }
}

fn count(result: &'static str) {
    crate::telemetry::metrics::metrics()
        .backchannel_logouts
        .get_or_create(&crate::telemetry::metrics::ResultLabels { result })
        .inc();
}

/// §2.8: a refused logout token gets 400 with an OAuth error body.
fn refused(reason: &str) -> Handled {
    count("refused");
    tracing::warn!(target: "tollgate::audit", event = "backchannel_logout_refused", reason = %reason, "logout token refused");
    let mut resp = pages::json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({"error": "invalid_request", "error_description": reason}),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Handled::new(resp, Outcome::BackchannelRefused)
}

/// The one `logout_token` of a form-encoded body of at most [`MAX_BODY`].
async fn logout_token_param(parts: &Parts, body: Incoming) -> Result<String, &'static str> {
    let pairs = super::handled::form_pairs(parts, body, MAX_BODY).await?;
    let mut tokens = pairs.into_iter().filter(|(k, _)| k == "logout_token");
    match (tokens.next(), tokens.next()) {
        (Some((_, t)), None) => Ok(t),
        _ => Err("exactly one logout_token is required"),
    }
}

/// Why a valid logout token ended nothing.
enum NotEnded {
    Refused(String),
    Store(crate::session::redis::RedisError),
}

/// Claims the token's `jti` (replay) and ends the sessions it names:
/// Redis records are deleted; the cookie store remembers the logout.
/// Returns how many records were deleted (0 for the cookie store).
async fn end_sessions(
    ctx: &LogoutCtx<'_>,
    slot: &Slot,
    claims: &LogoutClaims,
) -> Result<usize, NotEnded> {
    let jti = claims.jti.as_deref().unwrap_or_default();
    let issuer = &slot.settings.issuer;
    // Another provider's `sid` or `sub` is another key.
    let scoped = |v: Option<&str>| {
        v.filter(|v| !v.is_empty())
            .map(|v| Session::scoped(slot.id(), v).into_owned())
    };
    let sid = scoped(claims.sid.as_deref());
    let sub = scoped(claims.sub.as_deref());
    let (sid, sub) = (sid.as_deref(), sub.as_deref());
    let replay = || NotEnded::Refused(LogoutTokenError::Replay.to_string());
    match &ctx.sessions.backend {
        Backend::Redis(redis) => match redis.claim_jti(issuer, jti, JTI_TTL).await {
            Ok(true) => redis.end(sid, sub).await.map_err(NotEnded::Store),
            Ok(false) => Err(replay()),
            Err(e) => Err(NotEnded::Store(e)),
        },
        Backend::Cookie => {
            let revoked = &crate::session::revoked::REVOKED;
            let now = crate::session::now();
            match revoked.claim_jti(issuer, jti, now, JTI_TTL.as_secs() as i64) {
                Ok(()) => {}
                Err(JtiRefused::Replay) => return Err(replay()),
                // Refused rather than forgetting a live `jti` (§2.8: 400).
                Err(JtiRefused::Full) => {
                    return Err(NotEnded::Refused(
                        "the logout-token replay memory is full of live entries \
                         (session.max_remembered_logouts); try again later"
                            .into(),
                    ))
                }
            }
            let lifetime = ctx.lifetime.as_secs() as i64;
            let _ = revoked.end_provider_session(sid, sub, now, lifetime);
            Ok(0)
        }
    }
}
