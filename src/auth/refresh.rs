//! Access-token refresh (RFC 6749 §6), single-flight.
//!
//! Providers that rotate refresh tokens revoke the whole grant when an old
//! one is used again, so a race here logs the user out. Hence:
//!
//! * in the process, every request carrying the same refresh token shares
//!   one refresh, and its result is kept for [`REUSE_WINDOW`] for requests
//!   that still carry the old cookie;
//! * across replicas (Redis store), a short lock per session makes one
//!   replica refresh while the others wait and re-read the record;
//! * a refresh that failed for a passing reason (provider down, slow or
//!   busy) is not retried by every following request while the current
//!   access token is still valid (and forwarded): the refresh token backs
//!   off exponentially, with jitter so that sessions that failed together
//!   do not retry together. Once the token has expired, requests try again
//!   (they cannot proceed otherwise).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::context::RefreshCtx;
use crate::oidc::id_token::Expect;
use crate::oidc::TokenError;
use crate::session::store::{Backend, Handle};
use crate::session::{now, Session};

/// How long a finished refresh answers for the refresh token it replaced.
pub const REUSE_WINDOW: Duration = Duration::from_secs(60);
/// Longest a replica holds the cross-replica refresh lock.
pub const LOCK_TTL: Duration = Duration::from_secs(15);
/// How often a replica waiting for another one's refresh looks again.
const LOCK_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshFailure {
    /// The provider refused the refresh token (`invalid_grant`) or sent an
    /// ID token that does not validate: the session is over.
    #[error("the provider ended the session: {0}")]
    Ended(String),
    /// The provider or the session store could not be reached.
    #[error("refresh failed: {0}")]
    Unavailable(String),
    /// Not attempted: the last attempts failed and the backoff lasts.
    #[error("refresh not attempted: backing off after {0} failed refresh(es)")]
    BackingOff(u32),
}

type Flight = Arc<OnceCell<Result<Session, RefreshFailure>>>;

#[derive(Default)]
pub struct Refresher;

/// Refreshes in flight or recently finished, by refresh-token hash. Process
/// wide, so a configuration reload does not forget them: with a provider
/// that rotates refresh tokens, a forgotten result would send the old token
/// again and end the session.
static FLIGHTS: std::sync::LazyLock<Flights> = std::sync::LazyLock::new(Mutex::default);

type Flights = Mutex<HashMap<Vec<u8>, (Instant, Flight)>>;

/// Refresh tokens whose last refresh failed for a passing reason: when the
/// next attempt may be made, and how many failed in a row.
static BACKOFF: std::sync::LazyLock<Backoffs> = std::sync::LazyLock::new(Mutex::default);
type Backoffs = Mutex<HashMap<Vec<u8>, (Instant, u32)>>;

/// The first wait after a failed refresh; it doubles with each further
/// failure up to [`BACKOFF_MAX`], and each wait is drawn from half to one
/// and a half times that.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The wait after `failures` failed refreshes in a row, with `jitter` in
/// [0, 1) spreading it over [0.5, 1.5) times the nominal wait.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let nominal = BACKOFF_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(BACKOFF_MAX);
    nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// Whether the access token expires within `before` and can be refreshed.
pub fn needs_refresh(session: &Session, before: Duration, now: i64) -> bool {
    session.refresh_token.is_some()
        && session
            .access_expires_at
            .is_some_and(|exp| exp.saturating_sub(now) <= before.as_secs() as i64)
}

impl Refresher {
    /// Refreshes `session`, sharing the work with every concurrent (or
    /// recent) request that carries the same refresh token.
    pub async fn refresh(
        &self,
        ctx: &RefreshCtx<'_>,
        handle: &Handle,
        session: &Session,
    ) -> Result<Session, RefreshFailure> {
        let Some(rt) = session.refresh_token.as_deref() else {
            return Err(RefreshFailure::Ended("no refresh token".into()));
        };
        let key = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rt.as_bytes())
            .as_ref()
            .to_vec();
        // While the current access token is still good, a refresh can
        // wait: back off. Once it has expired the request cannot proceed
        // without one, so it tries (still one flight per token, within
        // `provider.max_concurrent_calls`).
        let still_valid = session.access_expires_at.is_some_and(|e| e > now());
        if let Some(failures) = backing_off(&key).filter(|_| still_valid) {
            return Err(RefreshFailure::BackingOff(failures));
        }
        let flight = {
            let mut flights = FLIGHTS.lock().unwrap_or_else(|e| e.into_inner());
            flights.retain(|_, (started, _)| started.elapsed() < REUSE_WINDOW);
            flights
                .entry(key.clone())
                .or_insert_with(|| (Instant::now(), Flight::default()))
                .1
                .clone()
        };
        let result = flight
            .get_or_init(|| refresh_once(ctx, handle, session))
            .await
            .clone();
        if matches!(result, Err(RefreshFailure::Unavailable(_))) {
            // A passing failure is not kept as the answer: the next attempt,
            // after the backoff, asks the provider again.
            let mut flights = FLIGHTS.lock().unwrap_or_else(|e| e.into_inner());
            let before = flights.len();
            flights.retain(|_, (_, f)| !Arc::ptr_eq(f, &flight));
            let first = flights.len() < before;
            drop(flights);
            // Of the requests that shared the flight, the first here counts
            // the failure.
            if first {
                failed(key);
            }
        } else {
            BACKOFF
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        result
    }
}

/// How many refreshes of this token failed in a row, while the backoff
/// after the last one lasts.
fn backing_off(key: &[u8]) -> Option<u32> {
    let backoff = BACKOFF.lock().unwrap_or_else(|e| e.into_inner());
    backoff
        .get(key)
        .filter(|(retry_at, _)| Instant::now() < *retry_at)
        .map(|(_, failures)| *failures)
}

/// Records one more failed refresh of this token (only the request that
/// ran the failed flight does, so a failure counts once).
fn failed(key: Vec<u8>) {
    let mut backoff = BACKOFF.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    // Forget tokens that have not been tried for longer than any wait.
    backoff.retain(|_, (retry_at, _)| now.saturating_duration_since(*retry_at) < BACKOFF_MAX * 2);
    let failures = backoff.get(&key).map_or(0, |(_, n)| *n) + 1;
    backoff.insert(key, (now + backoff_wait(failures), failures));
}

fn backoff_wait(failures: u32) -> Duration {
    backoff(failures, jitter())
}

#[tracing::instrument(
    target = "tollgate::trace",
    name = "refresh",
    skip_all,
    fields(otel.kind = "client")
)]
async fn refresh_once(
    ctx: &RefreshCtx<'_>,
    handle: &Handle,
    session: &Session,
) -> Result<Session, RefreshFailure> {
    match (&ctx.sessions.backend, &handle.ticket) {
        (Backend::Redis(redis), Some(ticket)) => {
            let token = crate::oidc::random_token(16);
            let started = Instant::now();
            loop {
                match redis.try_lock(ticket, &token, LOCK_TTL).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => return Err(RefreshFailure::Unavailable(e.to_string())),
                }
                // Another replica is refreshing: when its result lands, use it.
                if let Ok(Some(current)) = redis.get(ticket).await {
                    if current.refresh_token != session.refresh_token {
                        return Ok(current);
                    }
                }
                if started.elapsed() > LOCK_TTL {
                    return Err(RefreshFailure::Unavailable(
                        "timed out waiting for another replica's refresh".into(),
                    ));
                }
                tokio::time::sleep(LOCK_POLL).await;
            }
            // The lock is ours; the record may have moved on meanwhile.
            let result = match redis.get(ticket).await {
                Ok(Some(current)) if current.refresh_token != session.refresh_token => Ok(current),
                Ok(Some(current)) => match call_provider(ctx, &current).await {
                    Ok(new) => match redis.replace(ticket, &new).await {
                        Ok(true) => Ok(new),
                        // Signed out (or ended by back-channel logout) while
                        // the provider answered: the session stays ended.
                        Ok(false) => Err(RefreshFailure::Ended(
                            "the session ended during the refresh".into(),
                        )),
                        Err(e) => Err(RefreshFailure::Unavailable(e.to_string())),
                    },
                    Err(e) => Err(e),
                },
                Ok(None) => Err(RefreshFailure::Ended("session record is gone".into())),
                Err(e) => Err(RefreshFailure::Unavailable(e.to_string())),
            };
            if let Err(e) = redis.unlock(ticket, &token).await {
                tracing::warn!(error = %e, "releasing the refresh lock failed; it expires by itself");
            }
            result
        }
        _ => call_provider(ctx, session).await,
    }
}

/// One refresh-token grant at the provider, and the session it yields.
async fn call_provider(ctx: &RefreshCtx<'_>, session: &Session) -> Result<Session, RefreshFailure> {
    let result = call_provider_once(ctx, session).await;
    let label = match &result {
        Ok(_) => "refreshed",
        Err(RefreshFailure::Ended(_)) => "session_ended",
        Err(RefreshFailure::Unavailable(_) | RefreshFailure::BackingOff(_)) => "failed",
    };
    crate::telemetry::metrics::metrics()
        .refreshes
        .get_or_create(&crate::telemetry::metrics::ResultLabels { result: label })
        .inc();
    result
}

async fn call_provider_once(
    ctx: &RefreshCtx<'_>,
    session: &Session,
) -> Result<Session, RefreshFailure> {
    let provider = ctx
        .provider
        .current
        .clone()
        .ok_or_else(|| RefreshFailure::Unavailable("provider not discovered".into()))?;
    let rt = session.refresh_token.as_deref().unwrap_or_default();
    let started = Instant::now();
    // Only `invalid_grant` means the grant is over (RFC 6749 §5.2), or
    // GitHub's word for it, `bad_refresh_token` (an expired or revoked
    // GitHub App refresh token). Other refusals (`invalid_client` after a
    // botched secret rotation, say) are configuration problems: logging
    // every user out would not fix them.
    let tokens = provider.tokens.refresh(rt).await.map_err(|e| match e {
        TokenError::Refused { error, .. }
            if error == "invalid_grant" || error == "bad_refresh_token" =>
        {
            RefreshFailure::Ended(error)
        }
        other => RefreshFailure::Unavailable(other.to_string()),
    })?;
    let mut new = session.clone();
    if let Some(id_token) = &tokens.id_token {
        // OIDC Core §12.2: validated like the first, for the same subject,
        // `auth_time` and (if repeated) `nonce`.
        let claims = ctx
            .provider
            .validator
            .validate(
                id_token,
                &provider.keys,
                Expect {
                    nonce: None,
                    subject: Some(&session.sub),
                    auth_time: session.auth_time,
                    original_nonce: session.nonce.as_deref(),
                    access_token: Some(&tokens.access_token),
                    // Checked at login; a refresh repeats `auth_time`.
                    ..Expect::default()
                },
            )
            .await
            .map_err(|e| RefreshFailure::Ended(e.to_string()))?;
        let mut profile = super::profile::Profile::of(&ctx.claims, &claims);
        if ctx.claims.kind.wants_access_token_roles(&claims.other) {
            let roles = super::profile::access_token_claims(
                &ctx.provider,
                &provider.keys,
                &tokens.access_token,
                &session.sub,
            )
            .await;
            if let Some(roles) = roles {
                profile.add_groups(&ctx.claims, &roles);
            }
        }
        profile.update(&mut new);
        new.id_token = Some(id_token.clone());
        if claims.sid.is_some() {
            new.sid = claims.sid.clone();
        }
    }
    let issued = now();
    new.access_token = tokens.access_token;
    new.access_expires_at = tokens.expires_in.map(|s| issued.saturating_add(s as i64));
    if let Some(rt) = tokens.refresh_token {
        new.refresh_token = Some(rt);
    }
    tracing::info!(
        target: "tollgate::audit",
        event = "refresh",
        user = %session.sub,
        provider_ms = started.elapsed().as_micros() as f64 / 1000.0,
        "access token refreshed"
    );
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_is_spread_by_jitter() {
        assert_eq!(backoff(1, 0.5), BACKOFF_BASE);
        assert_eq!(backoff(2, 0.5), BACKOFF_BASE * 2);
        assert_eq!(backoff(3, 0.0), BACKOFF_BASE * 2, "half of 4 s");
        assert_eq!(backoff(40, 0.5), BACKOFF_MAX);
        assert!(backoff(40, 1.0) <= BACKOFF_MAX.mul_f64(1.5));
        assert!(backoff(1, 0.0) >= BACKOFF_BASE / 2);
    }

    fn session(exp: Option<i64>, rt: bool) -> Session {
        Session {
            sub: "a".into(),
            access_token: "at".into(),
            access_expires_at: exp,
            refresh_token: rt.then(|| "rt".into()),
            expires_at: i64::MAX,
            ..Session::default()
        }
    }

    #[test]
    fn refresh_is_due_within_the_window_and_only_with_a_refresh_token() {
        let before = Duration::from_secs(60);
        assert!(needs_refresh(
            &session(Some(1_000 + 60), true),
            before,
            1_000
        ));
        assert!(needs_refresh(&session(Some(900), true), before, 1_000));
        assert!(!needs_refresh(
            &session(Some(1_000 + 61), true),
            before,
            1_000
        ));
        assert!(!needs_refresh(&session(Some(900), false), before, 1_000));
        assert!(!needs_refresh(&session(None, true), before, 1_000));
    }
}
