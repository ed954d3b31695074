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

use std::collections::BTreeSet;

use crate::auth::bearer::{self, BearerError, Introspections};
use crate::auth::refresh::{needs_refresh, RefreshFailure, Refresher};
use crate::auth::{self, Handled};
use crate::authz::{Decision, Identity};
use crate::config::Config;
use crate::oidc::{IdTokenValidator, Provider};
use crate::pages::{self, ClientKind, Rejection};
use crate::proxy::assertion::Assertions;
use crate::proxy::forwarded::{Original, TrustedProxies};
use crate::proxy::headers::{self, Forwarding, StripList};
use crate::proxy::path;
use crate::proxy::Upstream;
use crate::session::login::LoginCookies;
use crate::session::redis::RedisStore;
use crate::session::store::{Backend, Handle, Loaded, SessionStore, StoreError};
use crate::session::{now, Codec, RequestCookies, Session, SessionCookies};
use crate::telemetry::{self, metrics::metrics};
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
    pub trusted: TrustedProxies,
    /// Signs `X-Tollgate-Assertion` (when `upstream.assertion` is on).
    pub assertions: Option<Assertions>,
    pub introspections: Introspections,
    /// Claim paths that rules and `[headers]` read, kept in sessions.
    pub claim_paths: BTreeSet<String>,
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
    #[error(transparent)]
    Assertion(#[from] crate::proxy::assertion::AssertionError),
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, and a `Host`
/// is an authority (`host[:port]`), never `a b` or `app:443@evil`. HTTP/1.0
/// may omit it; HTTP/2 carries `:authority` instead.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    // HTTP/2 `:authority` (and an absolute-form target) arrives in the URI,
    // parsed by `http`'s lenient `Authority`: held to the same rule.
    if let Some(a) = req.uri().authority() {
        if !crate::proxy::forwarded::is_authority(a.as_str()) {
            return false;
        }
    }
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => false,
        (None, _) => req.version() != http::Version::HTTP_11,
        (Some(h), None) => h.to_str().is_ok_and(crate::proxy::forwarded::is_authority),
    }
}

impl App {
    pub fn new(config: Config) -> Result<Self, AppError> {
        let roots = match &config.provider.ca_file {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem)?,
            None => Vec::new(),
        };
        let http = crate::oidc::http_client(config.provider.timeout, &roots)?;
        let p = &config.provider;
        let validator = IdTokenValidator {
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
            algorithms: p.id_token_algorithms.clone(),
            leeway: p.clock_skew,
            max_age: p.id_token_max_age,
            trusted_audiences: p.trusted_audiences.clone(),
            strict_audience: p.strict_audience,
            hmac_secret: p.client_secret.as_ref().map(|s| s.expose().to_vec()),
        };
        crate::session::revoked::REVOKED.set_capacity(config.session.max_remembered_logouts);
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
                // `__Host-` cookies must have `Path=/`; otherwise only the
                // callback needs the login cookies.
                if crate::config::is_host_cookie(&config.session.cookie_name) {
                    "/"
                } else {
                    config.provider.redirect_url.path()
                },
                config.session.secure,
            ),
            validator,
            refresher: Refresher,
            upstream: Upstream::new(&config.upstream)?,
            strip: StripList::new(&config.upstream),
            trusted: TrustedProxies::new(config.server.trusted_proxies.clone()),
            assertions: match &config.upstream.assertion {
                Some(a) => Some(Assertions::new(
                    a,
                    config.server.public_url.as_str().trim_end_matches('/'),
                )?),
                None => None,
            },
            introspections: Introspections::default(),
            claim_paths: {
                let mut paths = config.rules.policy.claim_paths();
                paths.extend(config.upstream.claim_headers.iter().map(|(_, c)| c.clone()));
                paths
            },
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

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Takes over what a running instance already has, so a reload costs
    /// no rediscovery and no reconnection: the provider (when the issuer and
    /// its CA are unchanged; client credentials come from the new config)
    /// and the Redis connection (when `[session.redis]` is unchanged).
    /// Returns which of the two still need setting up.
    pub fn take_over(&self, old: &App) -> Pending {
        let same_provider = old.config.provider.issuer == self.config.provider.issuer
            && old.config.provider.ca_file == self.config.provider.ca_file
            && old.config.provider.timeout == self.config.provider.timeout;
        let provider = match old.provider() {
            Some(p) if same_provider => {
                self.set_provider(p.reconfigured(&self.config.provider, &self.http));
                false
            }
            _ => true,
        };
        let store = match (&self.sessions.backend, &old.sessions.backend) {
            (Backend::Redis(new), Backend::Redis(old)) => !new.adopt(old),
            (Backend::Redis(_), Backend::Cookie) => true,
            _ => false,
        };
        Pending {
            discovery: provider,
            store,
        }
    }

    /// Handles one request: a request id, the route, the access-log line
    /// and the request metrics.
    pub async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        // The path only: queries carry codes and states.
        let path = req.uri().path().to_string();
        let id = telemetry::choose_request_id(req.headers());
        let id_header = http::HeaderValue::from_str(&id).ok();
        if let Some(v) = &id_header {
            req.headers_mut().insert("x-request-id", v.clone());
        }
        let mut handled = telemetry::REQUEST_ID
            .scope(id.clone(), self.route(req, peer))
            .await;
        if let Some(v) = id_header {
            handled.response.headers_mut().insert("x-request-id", v);
        }
        let status = handled.response.status().as_u16();
        let took = started.elapsed();
        metrics().request(handled.outcome, status, took);
        tracing::info!(
            target: "tollgate::access",
            %method,
            path = %path,
            status,
            duration_ms = took.as_secs_f64() * 1000.0,
            user = handled.user.as_deref().unwrap_or("-"),
            outcome = handled.outcome,
            request_id = %id,
            "request"
        );
        handled.response
    }

    async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Handled {
        let kind = ClientKind::of(req.headers());
        if !host_is_valid(&req) {
            return Handled::new(Rejection::BadHost.respond(kind), "error");
        }
        // RFC 9110 §11.6.2: one set of credentials. With two, which one was
        // checked and which one the upstream reads could differ.
        if req
            .headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .nth(1)
            .is_some()
        {
            let r = Rejection::RepeatedHeader("Authorization");
            return Handled::new(r.respond(kind), "error");
        }
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
            p if p.starts_with("/oauth2/") => self.oauth2(req, peer, kind).await,
            _ => self.proxy(req, peer, kind).await,
        }
    }

    async fn oauth2(&self, req: Request<Incoming>, peer: SocketAddr, kind: ClientKind) -> Handled {
        let (parts, body) = req.into_parts();
        let get_like = parts.method == Method::GET || parts.method == Method::HEAD;
        let post = parts.method == Method::POST;
        let result = match parts.uri.path() {
            "/oauth2/start" if get_like => auth::start(self, &parts),
            "/oauth2/callback" if get_like => match auth::callback(self, &parts).await {
                Ok(h) => Ok(h),
                Err((rejection, clear)) => {
                    if let Rejection::LoginFailed(f) = &rejection {
                        metrics().login("failed", f.check());
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
            "/oauth2/auth" => return self.forward_auth(&parts, peer, kind).await,
            "/oauth2/signed_out" if get_like => Ok(Handled::new(pages::signed_out(), "signed_out")),
            "/oauth2/jwks" if get_like => match &self.assertions {
                Some(a) => Ok(Handled::new(pages::json(StatusCode::OK, &a.jwks()), "jwks")),
                None => Err(Rejection::NotFound),
            },
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
                metrics().store_errors.inc();
                tracing::warn!(error = %e, "session store failed");
                Rejection::SessionStoreUnavailable
            })
    }

    /// Who is asking: a bearer token (when enabled) or the session cookie,
    /// refreshed when due.
    async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        kind: ClientKind,
    ) -> Result<Principal, Failure> {
        if self.config.bearer.enabled() {
            if let Some(token) = bearer::token(headers) {
                return match bearer::authenticate(self, token).await {
                    Ok(session) => Ok(Principal {
                        session,
                        set_cookies: Vec::new(),
                        via: "bearer",
                    }),
                    Err(BearerError::Invalid(reason) | BearerError::UnknownKey(reason)) => {
                        tracing::info!(target: "tollgate::audit", event = "bearer_refused", reason = %reason, "bearer token refused");
                        Err(Failure::Respond(Handled::new(
                            Rejection::InvalidToken.respond(ClientKind::Api),
                            "unauthorized",
                        )))
                    }
                    Err(BearerError::Unavailable) => Err(Failure::Respond(Handled::new(
                        Rejection::ProviderNotReady.respond(ClientKind::Api),
                        "error",
                    ))),
                };
            }
        }
        let loaded = self
            .load_session(headers)
            .await
            .map_err(|r| Failure::Respond(Handled::new(r.respond(kind), "error")))?;
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
        if !needs_refresh(&session, self.config.session.refresh_before, now()) {
            let set_cookies = if handle.reseal {
                self.save_quietly(&session, &handle).await
            } else {
                Vec::new()
            };
            return Ok(Principal {
                session,
                set_cookies,
                via: "cookie",
            });
        }
        match self.refresher.refresh(self, &handle, &session).await {
            Ok(new) => {
                // The Redis store saved the record under its lock; the
                // cookie store hands every response the new cookie.
                let set_cookies = if self.sessions.is_server_side() && !handle.reseal {
                    Vec::new()
                } else {
                    self.save_quietly(&new, &handle).await
                };
                Ok(Principal {
                    session: new,
                    set_cookies,
                    via: "cookie",
                })
            }
            Err(RefreshFailure::Ended(reason)) => {
                tracing::info!(target: "tollgate::audit", event = "session_ended", user = %session.sub, reason = %reason, "refresh refused; session ended");
                let clear = self
                    .sessions
                    .delete(&handle, Some(&session))
                    .await
                    .unwrap_or_else(|_| self.sessions.cookies.clear(&handle.present));
                Err(Failure::Login { clear })
            }
            Err(RefreshFailure::Unavailable(reason)) => {
                // The old token may still be good for a while.
                if session.access_expires_at.is_some_and(|e| e > now()) {
                    tracing::warn!(user = %session.sub, reason = %reason, "refresh failed; forwarding the current access token");
                    return Ok(Principal {
                        session,
                        set_cookies: Vec::new(),
                        via: "cookie",
                    });
                }
                tracing::warn!(user = %session.sub, reason = %reason, "refresh failed and the access token has expired");
                Err(Failure::Respond(Handled {
                    response: Rejection::RefreshUnavailable.respond(kind),
                    outcome: "error",
                    user: Some(session.sub),
                }))
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
    fn denied(
        &self,
        p: &Principal,
        method: &Method,
        target: Option<&path::Target>,
        kind: ClientKind,
    ) -> Option<Handled> {
        let who = Identity {
            email: p.session.email.as_deref(),
            email_verified: p.session.email_verified,
            groups: &p.session.groups,
            claims: &p.session.claims,
        };
        let policy = &self.config.rules.policy;
        let path = target.map_or("-", path::Target::path);
        let decision = match target {
            Some(t) => policy.decide(&who, method, t.path()),
            None => policy.decide_unknown_path(&who),
        };
        match decision {
            Decision::Allow => None,
            Decision::Deny { reason } => {
                tracing::info!(target: "tollgate::audit", event = "denied", user = %p.session.sub, %method, path, reason = %reason, "request denied by authorization rules");
                let who = p
                    .session
                    .email
                    .clone()
                    .unwrap_or_else(|| p.session.sub.clone());
                let mut response = Rejection::Forbidden { user: who }.respond(kind);
                // A refresh that happened on the way still counts.
                auth::append_cookies(&mut response, p.set_cookies.clone());
                Some(Handled {
                    response,
                    outcome: "forbidden",
                    user: Some(p.session.sub.clone()),
                })
            }
        }
    }

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        // Every decision below judges `target`, and the upstream receives
        // `target`: the client's URI is not read again.
        let target = match path::Target::of(req.uri()) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(error = %e, "request path refused");
                return Handled::new(Rejection::BadPath.respond(kind), "error");
            }
        };
        let method = req.method().clone();
        let path = target.path();
        let upgrade = headers::is_upgrade(req.headers());
        let trusted = self.trusted.trusts(peer.ip());

        if self
            .config
            .rules
            .public
            .matches(&method, path, req.headers())
        {
            self.prepare(&mut req, upgrade, peer, trusted, None);
            return match self.upstream.forward(req, &target, upgrade).await {
                Ok(resp) => Handled::new(resp, "public"),
                Err(r) => Handled::new(r.respond(kind), "upstream_error"),
            };
        }

        let principal = match self.authenticate(req.headers(), kind).await {
            Ok(p) => p,
            Err(Failure::Respond(h)) => return h,
            Err(Failure::Login { clear }) => return self.unauthenticated(&target, kind, clear),
        };
        if let Some(h) = self.denied(&principal, &method, Some(&target), kind) {
            return h;
        }
        self.prepare(&mut req, upgrade, peer, trusted, Some(&principal.session));
        let Principal {
            session,
            set_cookies,
            via,
        } = principal;
        let user = Some(session.sub);
        match self.upstream.forward(req, &target, upgrade).await {
            Ok(mut resp) => {
                auth::append_cookies(&mut resp, set_cookies);
                Handled {
                    response: resp,
                    outcome: if via == "bearer" {
                        "proxied_bearer"
                    } else {
                        "proxied"
                    },
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

    /// Header hygiene and identity for the upstream request.
    fn prepare(
        &self,
        req: &mut Request<Incoming>,
        upgrade: bool,
        peer: SocketAddr,
        trusted: bool,
        session: Option<&Session>,
    ) {
        let assertion = match (&self.assertions, session) {
            (Some(a), Some(s)) => a.sign(s),
            _ => None,
        };
        headers::prepare_request(
            req.headers_mut(),
            upgrade,
            &self.strip,
            &self.sessions.cookies,
            &self.config.upstream,
            &Forwarding {
                peer: peer.ip(),
                trusted,
                proto: if self.config.server.public_url.scheme() == "https" {
                    "https"
                } else {
                    "http"
                },
                port: self
                    .config
                    .server
                    .public_url
                    .port_or_known_default()
                    .unwrap_or(80),
                session,
                assertion: assertion.as_deref(),
            },
        );
    }

    /// `/oauth2/auth`, the forward-auth endpoint (oauth2-proxy's contract):
    /// 202 with `X-Auth-Request-*` when allowed, 401 without a session, 403
    /// when the rules deny. With `?mode=redirect` (Traefik, Caddy) a browser
    /// without a session gets the login redirect itself. The original
    /// method and URI come from `X-Forwarded-*` / `X-Original-*`, believed
    /// only from `server.trusted_proxies`.
    async fn forward_auth(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        let trusted = self.trusted.trusts(peer.ip());
        let original = Original::from_headers(&parts.headers, trusted);
        if original.invalid {
            tracing::info!(%peer, "forward-auth request with a malformed or conflicting original URI or method");
            return Handled::new(Rejection::BadPath.respond(ClientKind::Api), "error");
        }
        let method = original.method.clone().unwrap_or(Method::GET);
        // The path every decision below judges: the trusted original URI,
        // or none at all.
        let target = match original.uri.as_deref().map(path::Target::parse) {
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                return Handled::new(Rejection::BadPath.respond(ClientKind::Api), "error")
            }
            None => {
                untrusted_forward_auth(peer, trusted);
                None
            }
        };
        if let Some(t) = &target {
            if self
                .config
                .rules
                .public
                .matches(&method, t.path(), &parts.headers)
            {
                return Handled::new(pages::status(StatusCode::ACCEPTED), "public");
            }
        }
        let redirect_mode = parts.uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "mode" && v == "redirect")
        });
        let principal = match self.authenticate(&parts.headers, kind).await {
            Ok(p) => p,
            Err(Failure::Respond(h)) => return h,
            Err(Failure::Login { clear }) => {
                if redirect_mode && kind == ClientKind::Browser {
                    let back = target.as_ref().and_then(|t| original.url(t));
                    let return_to = self.config.rules.redirects.or_root(back.as_deref());
                    return match auth::login_redirect(self, return_to) {
                        Ok(mut h) => {
                            auth::append_cookies(&mut h.response, clear);
                            h
                        }
                        Err(r) => Handled::new(r.respond(kind), "error"),
                    };
                }
                let mut resp = Rejection::Unauthenticated.respond(ClientKind::Api);
                auth::append_cookies(&mut resp, clear);
                return Handled::new(resp, "unauthorized");
            }
        };
        if let Some(h) = self.denied(&principal, &method, target.as_ref(), kind) {
            return h;
        }
        let s = &principal.session;
        let mut resp = pages::status(StatusCode::ACCEPTED);
        {
            let h = resp.headers_mut();
            let mut set = |name: &'static str, value: &str| {
                if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
                    h.insert(name, v);
                }
            };
            set("x-auth-request-user", &s.sub);
            if let Some(e) = &s.email {
                set("x-auth-request-email", e);
            }
            if let Some(u) = &s.preferred_username {
                set("x-auth-request-preferred-username", u);
            }
            if !s.groups.is_empty() {
                set("x-auth-request-groups", &s.groups.join(","));
            }
            if self.config.upstream.pass_access_token {
                set("x-auth-request-access-token", &s.access_token);
            }
            if let Some(a) = self.assertions.as_ref().and_then(|a| a.sign(s)) {
                set(crate::proxy::assertion::HEADER, &a);
            }
        }
        auth::append_cookies(&mut resp, principal.set_cookies);
        Handled {
            response: resp,
            outcome: "auth_allowed",
            user: Some(principal.session.sub),
        }
    }

    /// No valid session: browsers are sent to log in (and lose any stale
    /// session cookies), API clients get 401 JSON.
    fn unauthenticated(
        &self,
        target: &path::Target,
        kind: ClientKind,
        clear: Vec<String>,
    ) -> Handled {
        if kind == ClientKind::Api {
            let mut resp = Rejection::Unauthenticated.respond(kind);
            auth::append_cookies(&mut resp, clear);
            return Handled::new(resp, "unauthorized");
        }
        let return_to = self.config.rules.redirects.or_root(Some(target.as_str()));
        match auth::login_redirect(self, return_to) {
            Ok(mut h) => {
                auth::append_cookies(&mut h.response, clear);
                h
            }
            Err(r) => Handled::new(r.respond(kind), "error"),
        }
    }

    /// The claims a session keeps (those rules and `[headers]` read).
    pub fn stored_claims(
        &self,
        claims: &crate::oidc::IdTokenClaims,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.claim_paths
            .iter()
            .filter_map(|p| Some((p.clone(), claims.claim_value(p)?)))
            .collect()
    }
}

/// What a reloaded instance still has to set up itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub discovery: bool,
    pub store: bool,
}

/// An authenticated requester.
pub struct Principal {
    pub session: Session,
    /// Cookies to set on the response (a refreshed or re-sealed session).
    pub set_cookies: Vec<String>,
    pub via: &'static str,
}

/// Why a request is not authenticated.
pub enum Failure {
    /// No usable session: log in (browsers) or 401 (APIs); clear these cookies.
    Login { clear: Vec<String> },
    /// A finished answer (503, invalid bearer token).
    Respond(Handled),
}

/// Counts a forward-auth request without a believed original URI, and says
/// once, loudly, what it costs: public routes are not consulted and path
/// rules decide as for every path.
fn untrusted_forward_auth(peer: SocketAddr, trusted: bool) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    metrics().forward_auth_untrusted.inc();
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            trusted,
            "forward-auth request without a trusted X-Forwarded-Uri/X-Original-URI: public routes \
             are not consulted and rules allow only users they allow on every path; add the \
             ingress to server.trusted_proxies (further cases are counted in \
             tollgate_forward_auth_untrusted_total)"
        );
    }
}

/// The cookies of a request.
pub fn request_cookies(headers: &http::HeaderMap) -> RequestCookies<'_> {
    RequestCookies::parse(
        headers
            .get_all(header::COOKIE)
            .iter()
            .map(http::HeaderValue::as_bytes),
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
