//! The application state and the request path, top to bottom:
//! router (`/oauth2/*`, probes) → session lookup → authentication →
//! header rewrite → upstream. Every failure is a [`Rejection`] turned into a
//! response in one place ([`crate::auth::rescue`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::auth::{self, Handled};
use crate::config::Config;
use crate::oidc::{IdTokenValidator, Provider};
use crate::pages::{self, ClientKind, Rejection};
use crate::proxy::headers::{self, Forwarding, StripList};
use crate::proxy::Upstream;
use crate::session::login::LoginCookies;
use crate::session::{Codec, RequestCookies, SessionCookies};
use crate::Body;

/// Everything a request needs, built once from the config.
pub struct App {
    pub config: Config,
    pub codec: Codec,
    pub session_cookies: SessionCookies,
    pub login_cookies: LoginCookies,
    pub validator: IdTokenValidator,
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
        Ok(Self {
            codec: Codec::new(&config.session.secrets),
            session_cookies: SessionCookies::new(&config.session),
            login_cookies: LoginCookies::new(
                &config.session.cookie_name,
                config.provider.redirect_url.path(),
                config.session.secure,
            ),
            validator,
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

    /// Ready: discovery and keys loaded, and not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.shutting_down.load(Ordering::Relaxed) && self.provider().is_some()
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
                let resp = if self.is_ready() {
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
        let (parts, _body) = req.into_parts();
        let get_like = parts.method == Method::GET || parts.method == Method::HEAD;
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
            "/oauth2/sign_out" if get_like || parts.method == Method::POST => {
                auth::sign_out(self, &parts)
            }
            "/oauth2/userinfo" if get_like => auth::userinfo(self, &parts),
            "/oauth2/start" | "/oauth2/callback" | "/oauth2/sign_out" | "/oauth2/userinfo" => {
                Err(Rejection::MethodNotAllowed)
            }
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

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        let found = self
            .session_cookies
            .read(&self.codec, &request_cookies(req.headers()));
        let Some(session) = found.session.as_ref() else {
            return self.unauthenticated(&req, kind);
        };

        let upgrade = headers::is_upgrade(req.headers());
        headers::prepare_request(
            req.headers_mut(),
            upgrade,
            &self.strip,
            &self.session_cookies,
            &self.config.upstream,
            &Forwarding {
                peer: peer.ip(),
                proto: if self.config.server.public_url.scheme() == "https" {
                    "https"
                } else {
                    "http"
                },
                session: Some(session),
            },
        );
        let user = Some(session.sub.clone());
        match self.upstream.forward(req, upgrade).await {
            Ok(mut resp) => {
                if found.reseal {
                    // Sealed with a previous key: move it to the current one.
                    if let Ok(c) = self
                        .session_cookies
                        .write(&self.codec, session, &found.present)
                    {
                        auth::append_cookies(&mut resp, c);
                    }
                }
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
    fn unauthenticated(&self, req: &Request<Incoming>, kind: ClientKind) -> Handled {
        if kind == ClientKind::Api {
            return Handled::new(Rejection::Unauthenticated.respond(kind), "unauthorized");
        }
        let return_to = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let return_to = auth::redirect::or_root(Some(return_to), &self.config.server.public_url);
        match auth::login_redirect(self, return_to) {
            Ok(mut h) => {
                let stale = self
                    .session_cookies
                    .present(&request_cookies(req.headers()));
                if !stale.is_empty() {
                    auth::append_cookies(&mut h.response, self.session_cookies.clear(&stale));
                }
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
