//! The application state and the request path, top to bottom:
//! router (`/oauth2/*`, probes) → session lookup → refresh → header rewrite
//! → upstream. Every failure is a [`Rejection`] turned into a response in
//! one place ([`Rejection::respond`], via [`crate::auth::rescue`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::refresh::{needs_refresh, RefreshFailure, Refresher};
use crate::auth::{self, Handled};
use crate::config::Config;
use crate::oidc::{IdTokenValidator, Provider};
use crate::pages::{self, ClientKind, Rejection};
use crate::proxy::headers::{self, Forwarding, StripList};
use crate::proxy::Upstream;
use crate::session::login::LoginCookies;
use crate::session::redis::RedisStore;
use crate::session::store::{Backend, Handle, Loaded, SessionStore, StoreError};
use crate::session::{now, Codec, RequestCookies, Session, SessionCookies};
use crate::Body;

/// Everything a request needs, built once from the config.
pub struct App {
    pub config: Config,
    pub sessions: SessionStore,
    pub login_cookies: LoginCookies,
    pub validator: IdTokenValidator,
    pub refresher: Refresher,
    pub upstream: Upstream,
    pub strip: StripList,
    /// Client for provider calls.
    pub http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    shutting_down: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build the provider HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Upstream(#[from] crate::proxy::UpstreamError),
}

impl App {
    pub fn new(config: Config) -> Result<Self, AppError> {
        let http = crate::oidc::http_client(config.provider.timeout)?;
        let p = &config.provider;
        let validator = IdTokenValidator {
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
            algorithms: p.id_token_algorithms.clone(),
            leeway: p.clock_skew,
            hmac_secret: p.client_secret.as_ref().map(|s| s.expose().to_vec()),
        };
        let backend = match &config.session.redis {
            Some(r) => Backend::Redis(Box::new(RedisStore::new(
                r.clone(),
                config.session.lifetime,
            ))),
            None => Backend::Cookie,
        };
        Ok(Self {
            sessions: SessionStore {
                cookies: SessionCookies::new(&config.session),
                codec: Codec::new(&config.session.secrets),
                backend,
            },
            login_cookies: LoginCookies::new(
                &config.session.cookie_name,
                config.provider.redirect_url.path(),
                config.session.secure,
            ),
            validator,
            refresher: Refresher::default(),
            upstream: Upstream::new(&config.upstream)?,
            strip: StripList::new(&config.upstream),
            http,
            provider: RwLock::new(None),
            shutting_down: AtomicBool::new(false),
            config,
        })
    }

    /// The provider, once discovery has succeeded.
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_provider(&self, provider: Arc<Provider>) {
        *self.provider.write().unwrap_or_else(|e| e.into_inner()) = Some(provider);
    }

    /// Ready: discovery and keys loaded, the session store answering, and
    /// not shutting down.
    pub async fn is_ready(&self) -> bool {
        if self.shutting_down.load(Ordering::Relaxed) || self.provider().is_none() {
            return false;
        }
        match &self.sessions.backend {
            Backend::Cookie => true,
            Backend::Redis(r) => r.ping().await,
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Handles one request and writes its access-log line.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The path only: queries carry codes and states.
        let path = req.uri().path().to_string();
        let handled = self.route(req, peer).await;
        let status = handled.response.status().as_u16();
        tracing::info!(
            target: "tollgate::access",
            %method,
            path = %path,
            status,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            user = handled.user.as_deref().unwrap_or("-"),
            outcome = handled.outcome,
            "request"
        );
        handled.response
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Handled {
        let kind = ClientKind::of(req.headers());
        match req.uri().path() {
            "/healthz" => Handled::new(pages::text(StatusCode::OK, "ok\n"), "probe"),
            "/readyz" => {
                let resp = if self.is_ready().await {
                    pages::text(StatusCode::OK, "ready\n")
                } else {
                    pages::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                };
                Handled::new(resp, "probe")
            }
            p if p.starts_with("/oauth2/") => self.oauth2(req, kind).await,
            _ => self.proxy(req, peer, kind).await,
        }
    }

    async fn oauth2(&self, req: Request<Incoming>, kind: ClientKind) -> Handled {
        let (parts, body) = req.into_parts();
        let get_like = parts.method == Method::GET || parts.method == Method::HEAD;
        let post = parts.method == Method::POST;
        let result = match parts.uri.path() {
            "/oauth2/start" if get_like => auth::start(self, &parts),
            "/oauth2/callback" if get_like => match auth::callback(self, &parts).await {
                Ok(h) => Ok(h),
                Err((rejection, clear)) => {
                    if let Rejection::LoginFailed(f) = &rejection {
                        tracing::warn!(target: "tollgate::audit", event = "login_failed", check = f.check(), reason = %f, "login refused");
                    }
                    return Handled::new(auth::rescue(rejection, kind, clear), "login_failed");
                }
            },
            "/oauth2/sign_out" if get_like || post => auth::sign_out(self, &parts).await,
            "/oauth2/userinfo" if get_like => auth::userinfo(self, &parts).await,
            "/oauth2/backchannel_logout" if post => {
                return auth::backchannel::logout(self, &parts, body).await;
            }
            "/oauth2/start"
            | "/oauth2/callback"
            | "/oauth2/sign_out"
            | "/oauth2/userinfo"
            | "/oauth2/backchannel_logout" => Err(Rejection::MethodNotAllowed),
            _ => Err(Rejection::NotFound),
        };
        match result {
            Ok(h) => h,
            Err(r) => {
                // The userinfo endpoint always answers JSON, whoever asks.
                let kind = if parts.uri.path() == "/oauth2/userinfo" {
                    ClientKind::Api
                } else {
                    kind
                };
                let outcome = match r {
                    Rejection::Unauthenticated => "unauthorized",
                    Rejection::CrossSite => "forbidden",
                    _ => "error",
                };
                Handled::new(r.respond(kind), outcome)
            }
        }
    }

    /// The session a request carries; an unreachable store is a 503.
    pub async fn load_session(&self, headers: &http::HeaderMap) -> Result<Loaded, Rejection> {
        self.sessions
            .load(&request_cookies(headers))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "session store failed");
                Rejection::SessionStoreUnavailable
            })
    }

    /// Refreshes the access token when due. Returns the session to use and
    /// the cookies to set, or the rejection that ends this request.
    async fn fresh_session(
        &self,
        loaded: Loaded,
        kind: ClientKind,
        uri: &http::Uri,
    ) -> Result<(Session, Vec<String>), Handled> {
        let Loaded { session, handle } = loaded;
        let Some(session) = session else {
            return Err(self.unauthenticated(uri, kind, &handle));
        };
        if !needs_refresh(&session, self.config.session.refresh_before, now()) {
            let cookies = if handle.reseal {
                self.save_quietly(&session, &handle).await
            } else {
                Vec::new()
            };
            return Ok((session, cookies));
        }
        match self.refresher.refresh(self, &handle, &session).await {
            Ok(new) => {
                // The Redis store saved the record under its lock; the
                // cookie store hands every response the new cookie.
                let cookies = if self.sessions.is_server_side() && !handle.reseal {
                    Vec::new()
                } else {
                    self.save_quietly(&new, &handle).await
                };
                Ok((new, cookies))
            }
            Err(RefreshFailure::Ended(reason)) => {
                tracing::info!(target: "tollgate::audit", event = "session_ended", user = %session.sub, reason = %reason, "refresh refused; session ended");
                let cleared = self
                    .sessions
                    .delete(&handle, Some(&session))
                    .await
                    .unwrap_or_else(|_| self.sessions.cookies.clear(&handle.present));
                let mut h = self.unauthenticated(uri, kind, &Handle::default());
                auth::append_cookies(&mut h.response, cleared);
                Err(h)
            }
            Err(RefreshFailure::Unavailable(reason)) => {
                // The old token may still be good for a while.
                if session.access_expires_at.is_some_and(|e| e > now()) {
                    tracing::warn!(user = %session.sub, reason = %reason, "refresh failed; forwarding the current access token");
                    return Ok((session, Vec::new()));
                }
                tracing::warn!(user = %session.sub, reason = %reason, "refresh failed and the access token has expired");
                Err(Handled {
                    response: Rejection::RefreshUnavailable.respond(kind),
                    outcome: "error",
                    user: Some(session.sub),
                })
            }
        }
    }

    async fn save_quietly(&self, session: &Session, handle: &Handle) -> Vec<String> {
        match self.sessions.save(session, handle).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "could not store the session");
                Vec::new()
            }
        }
    }

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        let loaded = match self.load_session(req.headers()).await {
            Ok(l) => l,
            Err(r) => return Handled::new(r.respond(kind), "error"),
        };
        let uri = req.uri().clone();
        let (session, set_cookies) = match self.fresh_session(loaded, kind, &uri).await {
            Ok(s) => s,
            Err(h) => return h,
        };

        let upgrade = headers::is_upgrade(req.headers());
        headers::prepare_request(
            req.headers_mut(),
            upgrade,
            &self.strip,
            &self.sessions.cookies,
            &self.config.upstream,
            &Forwarding {
                peer: peer.ip(),
                proto: if self.config.server.public_url.scheme() == "https" {
                    "https"
                } else {
                    "http"
                },
                session: Some(&session),
            },
        );
        let user = Some(session.sub);
        match self.upstream.forward(req, upgrade).await {
            Ok(mut resp) => {
                auth::append_cookies(&mut resp, set_cookies);
                Handled {
                    response: resp,
                    outcome: "proxied",
                    user,
                }
            }
            Err(r) => Handled {
                response: r.respond(kind),
                outcome: "upstream_error",
                user,
            },
        }
    }

    /// No valid session: browsers are sent to log in (and lose any stale
    /// session cookies), API clients get 401 JSON.
    fn unauthenticated(&self, uri: &http::Uri, kind: ClientKind, handle: &Handle) -> Handled {
        let stale = if handle.present.is_empty() {
            Vec::new()
        } else {
            self.sessions.cookies.clear(&handle.present)
        };
        if kind == ClientKind::Api {
            let mut resp = Rejection::Unauthenticated.respond(kind);
            auth::append_cookies(&mut resp, stale);
            return Handled::new(resp, "unauthorized");
        }
        let return_to = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let return_to = auth::redirect::or_root(Some(return_to), &self.config.server.public_url);
        match auth::login_redirect(self, return_to) {
            Ok(mut h) => {
                auth::append_cookies(&mut h.response, stale);
                h
            }
            Err(r) => Handled::new(r.respond(kind), "error"),
        }
    }
}

/// The cookies of a request.
pub fn request_cookies(headers: &http::HeaderMap) -> RequestCookies<'_> {
    RequestCookies::parse(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

impl From<StoreError> for Rejection {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge(_) => Rejection::LoginFailed(auth::LoginFailure::SessionTooLarge),
            StoreError::Unavailable(_) => Rejection::SessionStoreUnavailable,
        }
    }
}
