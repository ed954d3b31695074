//! Which handler a request goes to: the `Host` check, the probes, the
//! `/oauth2/*` table, and everything else to the forwarder.

use std::net::SocketAddr;

use http::{header, Method, Request, StatusCode};
use hyper::body::Incoming;

use super::App;
use crate::auth::{self, Handled};
use crate::pages::{self, ClientKind, Outcome, Rejection};
use crate::telemetry::metrics::metrics;

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
        (Some(h), None) => h.to_str().is_ok_and(|h| {
            // An absolute-form target or `:authority` beside a `Host` that
            // names another host: a proxy in front may have judged the
            // one, tollgate would route by the other (RFC 9112 §3.2.2).
            crate::proxy::forwarded::is_authority(h)
                && req.uri().authority().is_none_or(|a| {
                    crate::proxy::forwarded::host_name(a.as_str())
                        == crate::proxy::forwarded::host_name(h)
                })
        }),
    }
}

impl App {
    pub(super) async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Handled {
        let kind = ClientKind::of(req.headers());
        if !host_is_valid(&req) {
            return Handled::new(Rejection::BadHost.respond(kind), Outcome::Error);
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
            return Handled::new(r.respond(kind), Outcome::Error);
        }
        let server = &self.config.server;
        let path = req.uri().path();
        if server.health_path.as_deref() == Some(path) {
            return Handled::new(pages::text(StatusCode::OK, "ok\n"), Outcome::Probe);
        }
        if server.ready_path.as_deref() == Some(path) {
            let resp = if self.is_ready().await {
                pages::text(StatusCode::OK, "ready\n")
            } else {
                pages::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            };
            return Handled::new(resp, Outcome::Probe);
        }
        if path.starts_with("/oauth2/") {
            // tollgate's own endpoints are chosen by the path as sent: one
            // that is not in normal form (`/oauth2/ext_authz/../start`) would
            // be read differently by a proxy in front that routed it.
            if !crate::proxy::path::normalize(path).is_ok_and(|n| n == path) {
                return Handled::new(Rejection::BadPath.respond(kind), Outcome::Error);
            }
            self.oauth2(req, peer, kind).await
        } else {
            self.proxy(req, peer, kind).await
        }
    }

    /// The authorization response: in the query, or (form_post) in a POST
    /// body, never both.
    async fn callback(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        kind: ClientKind,
    ) -> Handled {
        let pairs = if parts.method == Method::POST {
            match auth::form_pairs(&parts, body, 64 * 1024).await {
                Ok(p) if parts.uri.query().is_none() => p,
                _ => {
                    let r = Rejection::BadParameter("form_post body");
                    return Handled::new(r.respond(kind), Outcome::Error);
                }
            }
        } else {
            auth::handled::query_pairs(&parts)
        };
        let host = crate::proxy::forwarded::request_host(&parts.headers, &parts.uri);
        match auth::callback(&self.login_ctx_at(host.as_deref()), &parts, &pairs).await {
            Ok(h) => h,
            Err((rejection, clear)) => {
                if let Rejection::LoginFailed(f) = &rejection {
                    metrics().login("failed", f.check());
                    tracing::warn!(target: "tollgate::audit", event = "login_failed", check = f.check(), reason = %f, "login refused");
                }
                Handled::new(auth::rescue(rejection, kind, clear), Outcome::LoginFailed)
            }
        }
    }

    /// `/oauth2/start` asked on another listed host while every host shares
    /// one sign-in (`session.domain`): the same start on `public_url`'s
    /// host, where the callback will find the login cookie, coming back to
    /// the page on the host it was asked on. `None`: start here.
    fn start_on_own_host(
        &self,
        host: Option<&str>,
        parts: &http::request::Parts,
    ) -> Option<String> {
        let public = &self.config.server.public_url;
        let host = host.filter(|h| {
            !self.per_host_sessions && Some(*h) != public.host_str() && self.upstreams.lists(h)
        })?;
        let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
        let origin = format!("{}://{host}{port}", public.scheme());
        let mut to = public.join(crate::config::START_PATH).ok()?;
        let mut rd = None;
        {
            let mut query = to.query_pairs_mut();
            for (k, v) in auth::handled::query_pairs(parts) {
                if k == "rd" {
                    rd = Some(v);
                } else {
                    query.append_pair(&k, &v);
                }
            }
            // A path on the host asked on; anything else as given (the
            // redirect policy judges it after the sign-in).
            let back = match rd.as_deref() {
                Some(p) if p.starts_with('/') && !p.starts_with("//") => format!("{origin}{p}"),
                Some(other) => other.to_string(),
                None => format!("{origin}/"),
            };
            query.append_pair("rd", &back);
        }
        Some(to.into())
    }

    async fn oauth2(&self, req: Request<Incoming>, peer: SocketAddr, kind: ClientKind) -> Handled {
        let (parts, body) = req.into_parts();
        let get_like = parts.method == Method::GET || parts.method == Method::HEAD;
        let post = parts.method == Method::POST;
        let result = match parts.uri.path() {
            "/oauth2/start" | "/oauth2/sign_in" if get_like => {
                let host = crate::proxy::forwarded::request_host(&parts.headers, &parts.uri);
                match self.start_on_own_host(host.as_deref(), &parts) {
                    Some(to) => Ok(Handled::new(pages::redirect(&to), Outcome::LoginRedirect)),
                    None => auth::start(&self.login_ctx_at(host.as_deref()), &parts).await,
                }
            }
            "/oauth2/callback"
                if get_like
                    || (post && self.config.providers.iter().any(|p| p.login.form_post)) =>
            {
                return self.callback(parts, body, kind).await;
            }
            "/oauth2/sign_out" if get_like || post => {
                auth::sign_out(&self.login_ctx(), &parts).await
            }
            "/oauth2/userinfo" if get_like => auth::userinfo(&self.sessions, &parts).await,
            "/oauth2/backchannel_logout" if post => {
                return auth::backchannel::logout(&self.logout_ctx(), &parts, body).await;
            }
            "/oauth2/auth" => return self.forward_auth(&parts, peer, kind).await,
            p if p.starts_with(super::forward_auth::EXT_AUTHZ)
                && p[super::forward_auth::EXT_AUTHZ.len()..].starts_with('/') =>
            {
                return self.ext_authz(&parts, peer, kind).await;
            }
            "/oauth2/signed_out" if get_like => {
                Ok(auth::sign_out::signed_out(&self.login_ctx(), &parts).await)
            }
            "/oauth2/jwks" if get_like => match &self.assertions {
                Some(a) => Ok(Handled::new(
                    pages::json(StatusCode::OK, &a.jwks()),
                    Outcome::Jwks,
                )),
                None => Err(Rejection::NotFound),
            },
            "/oauth2/client_jwks" if get_like => match self.providers.client_jwks() {
                Some(k) => Ok(Handled::new(pages::json(StatusCode::OK, &k), Outcome::Jwks)),
                None => Err(Rejection::NotFound),
            },
            "/oauth2/start"
            | "/oauth2/sign_in"
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
                    Rejection::Unauthenticated => Outcome::Unauthorized,
                    Rejection::CrossSite => Outcome::Forbidden,
                    _ => Outcome::Error,
                };
                Handled::new(r.respond(kind), outcome)
            }
        }
    }
}
