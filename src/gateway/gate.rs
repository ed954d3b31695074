//! Who is asking: a bearer token (when enabled) or the session cookie,
//! refreshed when due, becomes a [`Principal`]; otherwise the login
//! redirect or 401. Then the authorization rules' verdict.

use std::sync::Arc;

use http::Method;

use super::App;
use crate::auth::bearer::{self, BearerError};
use crate::auth::refresh::{needs_refresh, RefreshFailure, Refresher};
use crate::auth::{self, Handled};
use crate::authz::{Decision, Identity};
use crate::pages::{ClientKind, Outcome, Rejection};
use crate::proxy::path;
use crate::session::store::{Handle, Loaded};
use crate::session::{now, Session};
use crate::telemetry::metrics::metrics;

impl App {
    /// Who is asking: a bearer token (when enabled) or the session cookie,
    /// refreshed when due.
    pub(super) async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        kind: ClientKind,
    ) -> Result<Principal, Failure> {
        if self.config.bearer.enabled() {
            if let Some(token) = bearer::token(headers) {
                return match bearer::authenticate(&self.bearer_ctx(), token).await {
                    Ok(session) => Ok(Principal {
                        session: Arc::new(session),
                        set_cookies: Vec::new(),
                        via: Via::Bearer,
                    }),
                    Err(BearerError::Invalid(reason) | BearerError::UnknownKey(reason)) => {
                        tracing::info!(target: "tollgate::audit", event = "bearer_refused", reason = %reason, "bearer token refused");
                        Err(Failure::Respond(Box::new(Handled::new(
                            Rejection::InvalidToken.respond(kind.machine()),
                            Outcome::Unauthorized,
                        ))))
                    }
                    Err(BearerError::Unavailable) => Err(Failure::Respond(Box::new(Handled::new(
                        Rejection::ProviderNotReady.respond(kind.machine()),
                        Outcome::Error,
                    )))),
                };
            }
        }
        let loaded = self.load_session(headers).await.map_err(|r| {
            Failure::Respond(Box::new(Handled::new(r.respond(kind), Outcome::Error)))
        })?;
        self.fresh_session(loaded, kind).await
    }

    /// Refreshes the access token when due.
    async fn fresh_session(&self, loaded: Loaded, kind: ClientKind) -> Result<Principal, Failure> {
        let Loaded { session, handle } = loaded;
        let Some(session) = session else {
            return Err(Failure::Login {
                clear: self.clear_stale(&handle),
            });
        };
        // A session from a provider no longer configured is no session:
        // nothing could refresh it or end it at its provider.
        let Some(slot) = self.providers.get(session.provider_id()) else {
            tracing::info!(target: "tollgate::audit", event = "session_ended", user = %session.sub, provider = session.provider_id(), "the session's provider is no longer configured");
            return Err(Failure::Login {
                clear: self.clear_stale(&handle),
            });
        };
        if !needs_refresh(&session, self.config.session.refresh_before, now()) {
            let set_cookies = if handle.reseal {
                self.save_quietly(&session, &handle).await
            } else {
                Vec::new()
            };
            return Ok(Principal {
                session,
                set_cookies,
                via: Via::Cookie,
            });
        }
        match Refresher
            .refresh(&self.refresh_ctx(slot), &handle, &session)
            .await
        {
            Ok(new) => {
                // The Redis store saved the record under its lock; the
                // cookie store hands every response the new cookie.
                let set_cookies = if self.sessions.is_server_side() && !handle.reseal {
                    Vec::new()
                } else {
                    self.save_quietly(&new, &handle).await
                };
                Ok(Principal {
                    session: Arc::new(new),
                    set_cookies,
                    via: Via::Cookie,
                })
            }
            Err(RefreshFailure::Ended(reason)) => {
                tracing::info!(target: "tollgate::audit", event = "session_ended", user = %session.sub, reason = %reason, "refresh refused; session ended");
                let clear = self
                    .sessions
                    .delete(&handle, Some(&*session))
                    .await
                    .unwrap_or_else(|_| self.sessions.cookies.clear(&handle.present));
                Err(Failure::Login { clear })
            }
            Err(RefreshFailure::BackingOff(failures)) => {
                // Only while the current token is valid: forward it. Logged
                // when the attempt failed, not at every request after it.
                tracing::debug!(user = %session.sub, failures, "refresh backing off; forwarding the current access token");
                Ok(Principal {
                    session,
                    set_cookies: Vec::new(),
                    via: Via::Cookie,
                })
            }
            Err(RefreshFailure::Unavailable(reason)) => {
                // The old token may still be good for a while.
                if session.access_expires_at.is_some_and(|e| e > now()) {
                    tracing::warn!(user = %session.sub, reason = %reason, "refresh failed; forwarding the current access token");
                    return Ok(Principal {
                        session,
                        set_cookies: Vec::new(),
                        via: Via::Cookie,
                    });
                }
                tracing::warn!(user = %session.sub, reason = %reason, "refresh failed and the access token has expired");
                Err(Failure::Respond(Box::new(Handled {
                    response: Rejection::RefreshUnavailable.respond(kind),
                    outcome: Outcome::Error,
                    user: Some(session.sub.clone()),
                })))
            }
        }
    }

    fn clear_stale(&self, handle: &Handle) -> Vec<String> {
        if handle.present.is_empty() {
            Vec::new()
        } else {
            self.sessions.cookies.clear(&handle.present)
        }
    }

    async fn save_quietly(&self, session: &Session, handle: &Handle) -> Vec<String> {
        match self.sessions.save(session, handle).await {
            Ok(c) => c,
            Err(e) => {
                metrics().store_errors.inc();
                tracing::warn!(error = %e, "could not store the session");
                Vec::new()
            }
        }
    }

    /// The rules' verdict for a principal on a judged target (`None`: the
    /// path is unknown, see [`crate::authz::Policy::decide_unknown_path`]):
    /// the 403 answer when they deny.
    /// The 403 when `/oauth2/auth`'s per-request constraints refuse `p`.
    pub(super) fn narrowed(
        &self,
        p: &Principal,
        constraints: &crate::authz::Constraints,
        kind: ClientKind,
    ) -> Option<Handled> {
        let reason = constraints.check(&identity(p)).err()?;
        tracing::info!(target: "tollgate::audit", event = "denied", user = %p.session.sub, reason, "forward-auth request denied by its allowed_* constraints");
        Some(forbidden(p, kind))
    }

    pub(super) fn denied(
        &self,
        p: &Principal,
        asked: &Asked<'_>,
        kind: ClientKind,
    ) -> Option<Handled> {
        let who = identity(p);
        let policy = &self.rules.policy;
        let Asked {
            method,
            host,
            target,
        } = *asked;
        let path = target.map_or("-", path::Target::path);
        let decision = match target {
            Some(t) => policy.decide_at(&who, method, host, t.path()),
            None => policy.decide_unknown_path(&who),
        };
        match decision {
            Decision::Allow => None,
            Decision::Deny { reason } => {
                tracing::info!(target: "tollgate::audit", event = "denied", user = %p.session.sub, %method, path, reason = %reason, "request denied by authorization rules");
                Some(forbidden(p, kind))
            }
        }
    }
}

/// What a request asks for, as the rules judge it: the method, the host
/// (lower-case, no port; `None` when not known) and the normalized target
/// (`None` when not known).
#[derive(Clone, Copy)]
pub struct Asked<'a> {
    pub method: &'a Method,
    pub host: Option<&'a str>,
    pub target: Option<&'a path::Target>,
}

/// What the rules judge of a principal.
fn identity(p: &Principal) -> Identity<'_> {
    Identity {
        provider: Some(p.session.provider_id()),
        email: p.session.email.as_deref(),
        email_verified: p.session.email_verified,
        groups: &p.session.groups,
        claims: &p.session.claims,
    }
}

/// The 403 for a signed-in user, keeping cookies a refresh on the way set.
fn forbidden(p: &Principal, kind: ClientKind) -> Handled {
    let who = p
        .session
        .email
        .clone()
        .unwrap_or_else(|| p.session.sub.clone());
    let mut response = Rejection::Forbidden { user: who }.respond(kind);
    auth::append_cookies(&mut response, p.set_cookies.clone());
    Handled {
        response,
        outcome: Outcome::Forbidden,
        user: Some(p.session.sub.clone()),
    }
}

/// An authenticated requester.
pub struct Principal {
    /// Shared with the opened-session cache (cookie store): no copy per
    /// request.
    pub session: Arc<Session>,
    /// Cookies to set on the response (a refreshed or re-sealed session).
    pub set_cookies: Vec<String>,
    pub via: Via,
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// Why a request is not authenticated.
pub enum Failure {
    /// No usable session: log in (browsers) or 401 (APIs); clear these cookies.
    Login { clear: Vec<String> },
    /// A finished answer (503, invalid bearer token).
    Respond(Box<Handled>),
}
