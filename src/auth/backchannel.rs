//! `POST /oauth2/backchannel_logout`: OpenID Connect Back-Channel Logout 1.0.
//! The provider tells us a session ended; every tollgate session of that
//! provider session (`sid`), or of the subject when only `sub` is given,
//! ends too. With the Redis store the records are deleted; with the cookie
//! store the ended sessions are remembered in this process
//! ([`crate::session::revoked`]), which covers one replica only.

use std::time::Duration;

use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::Handled;
use crate::gateway::state::App;
use crate::oidc::logout_token;
use crate::pages::{self, ClientKind, Rejection};
use crate::session::revoked::JtiRefused;
use crate::session::store::Backend;

/// Largest request body accepted (a logout token is a few kilobytes).
const MAX_BODY: usize = 64 * 1024;
/// How long a `jti` is remembered: longer than any acceptable token's life.
const JTI_TTL: Duration = Duration::from_secs(3600);

pub async fn logout(app: &App, parts: &Parts, body: Incoming) -> Handled {
    let count = |result: &'static str| {
        crate::telemetry::metrics::metrics()
            .backchannel_logouts
            .get_or_create(&crate::telemetry::metrics::ResultLabels { result })
            .inc();
    };
    let bad = |reason: &str| {
        count("refused");
        tracing::warn!(target: "tollgate::audit", event = "backchannel_logout_refused", reason = %reason, "logout token refused");
        // §2.8: 400 with an OAuth error body.
        let mut resp = pages::json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"error": "invalid_request", "error_description": reason}),
        );
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Handled::new(resp, "backchannel_refused")
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return bad("expected an application/x-www-form-urlencoded body");
    }
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return bad("unreadable or oversized body"),
    };
    let tokens: Vec<String> = form_urlencoded::parse(&bytes)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .collect();
    let [token] = tokens.as_slice() else {
        return bad("exactly one logout_token is required");
    };
    let Some(provider) = app.provider() else {
        return Handled::new(
            Rejection::ProviderNotReady.respond(ClientKind::Api),
            "error",
        );
    };
    let claims = match logout_token::validate(&app.validator, token, &provider.keys).await {
        Ok(c) => c,
        Err(e) => return bad(&e.to_string()),
    };
    // A token older than the replay memory could be replayed: refuse it.
    if claims
        .iat
        .is_some_and(|iat| (crate::session::now() as f64) - iat > JTI_TTL.as_secs_f64())
    {
        return bad("logout token is too old (`iat` more than an hour ago)");
    }
    let jti = claims.jti.as_deref().unwrap_or_default();
    let issuer = &app.config.provider.issuer;
    let now = crate::session::now();
    let ended = match &app.sessions.backend {
        Backend::Redis(redis) => match redis.claim_jti(issuer, jti, JTI_TTL).await {
            Ok(true) => {
                redis
                    .end(
                        claims.sid.as_deref().filter(|s| !s.is_empty()),
                        claims.sub.as_deref(),
                    )
                    .await
            }
            Ok(false) => return bad(&logout_token::LogoutTokenError::Replay.to_string()),
            Err(e) => Err(e),
        },
        Backend::Cookie => {
            let revoked = &crate::session::revoked::REVOKED;
            match revoked.claim_jti(issuer, jti, now, JTI_TTL.as_secs() as i64) {
                Ok(()) => {}
                Err(JtiRefused::Replay) => {
                    return bad(&logout_token::LogoutTokenError::Replay.to_string())
                }
                // Refused rather than forgetting a live `jti` (§2.8: 400).
                Err(JtiRefused::Full) => {
                    return bad("the logout-token replay memory is full of live entries \
                                (session.max_remembered_logouts); try again later")
                }
            }
            let _ = revoked.end_provider_session(
                claims.sid.as_deref().filter(|s| !s.is_empty()),
                claims.sub.as_deref().filter(|s| !s.is_empty()),
                now,
                app.config.session.lifetime.as_secs() as i64,
            );
            Ok(0)
        }
    };
    match ended {
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
                outcome: "backchannel_logout",
                user: claims.sub,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "session store failed during back-channel logout");
            Handled::new(
                Rejection::SessionStoreUnavailable.respond(ClientKind::Api),
                "error",
            )
        }
    }
}
