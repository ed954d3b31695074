//! `/oauth2/auth`: an ingress asks whether to let a request through.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, StatusCode};

use super::gate::Failure;
use super::App;
use crate::auth::{self, Handled};
use crate::authz::Constraints;
use crate::pages::{self, ClientKind, Outcome, Rejection};
use crate::proxy::forwarded::Original;
use crate::proxy::path;
use crate::telemetry::metrics::metrics;

/// Envoy's `ext_authz` HTTP service calls tollgate at this prefix followed
/// by the original path (its `path_prefix`).
pub const EXT_AUTHZ: &str = "/oauth2/ext_authz";

/// What an authorization caller asks about, however it said it.
struct Question {
    method: Method,
    /// The host the original request was for (lower-case, no port), when
    /// known.
    host: Option<String>,
    /// The path every decision judges: the original URI, or none at all.
    target: Option<path::Target>,
    /// Where a browser sent to log in comes back to.
    back: Option<String>,
    /// A browser without a session gets the login redirect (else 401).
    redirect: bool,
    /// The caller is in `server.trusted_proxies` and asks about a request
    /// for the application (not for tollgate's own `/oauth2/` paths, which
    /// a browser reaches through the same proxy): it may have credentials.
    credentials: bool,
    /// The status that means "allowed": 202 for `/oauth2/auth`, 200 for
    /// Envoy (which allows only on 200).
    allowed: StatusCode,
    constraints: Option<Constraints>,
}

impl App {
    /// `/oauth2/auth`, the forward-auth endpoint (oauth2-proxy's contract):
    /// 202 with `X-Auth-Request-*` when allowed, 401 without a session, 403
    /// when the rules deny. With `?mode=redirect` (Traefik, Caddy) a browser
    /// without a session gets the login redirect itself. The original
    /// method and URI come from `X-Forwarded-*` / `X-Original-*`, believed
    /// only from `server.trusted_proxies`.
    pub(super) async fn forward_auth(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        let trusted = self.trusted.trusts(peer.ip());
        let original = Original::from_headers(&parts.headers, trusted);
        if original.invalid {
            tracing::info!(%peer, "forward-auth request with a malformed or conflicting original URI or method");
            return Handled::new(Rejection::BadPath.respond(ClientKind::Api), Outcome::Error);
        }
        let target = match original.uri.as_deref().map(path::Target::parse) {
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                return Handled::new(Rejection::BadPath.respond(ClientKind::Api), Outcome::Error)
            }
            None => {
                untrusted_forward_auth(peer, trusted);
                None
            }
        };
        // Credentials only when asked about a request for the app: with no
        // original URI, or one for tollgate's own paths, the caller may be
        // relaying a browser's call to `/oauth2/auth` itself.
        let credentials = trusted && target.as_ref().is_some_and(|t| !is_own_path(t));
        let query = parts.uri.query().unwrap_or_default();
        let constraints = match Constraints::from_query(query) {
            Ok(c) => c,
            Err(name) => {
                return Handled::new(
                    Rejection::BadParameter(name).respond(ClientKind::Api),
                    Outcome::Error,
                )
            }
        };
        // oauth2-proxy's X-Auth-Request-Redirect names the page to return
        // to; the redirect policy still applies.
        let back = redirect_header(&parts.headers)
            .or_else(|| target.as_ref().and_then(|t| original.url(t)));
        let question = Question {
            method: original.method.clone().unwrap_or(Method::GET),
            host: original
                .host
                .as_deref()
                .and_then(crate::proxy::forwarded::host_name),
            target,
            back,
            redirect: form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == "mode" && v == "redirect"),
            credentials,
            allowed: StatusCode::ACCEPTED,
            constraints,
        };
        self.answer(parts, kind, question).await
    }

    /// `/oauth2/ext_authz/<original path>`: Envoy's `ext_authz` HTTP
    /// service. Envoy sends the original method, path (behind its
    /// `path_prefix`), query and headers; it lets the request through only
    /// on 200 (with the identity headers it copies upstream) and returns
    /// any other answer to the client: 401 for API clients, the login
    /// redirect for browsers, 403 when the rules deny.
    pub(super) async fn ext_authz(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        kind: ClientKind,
    ) -> Handled {
        let trusted = self.trusted.trusts(peer.ip());
        let rest = parts.uri.path().strip_prefix(EXT_AUTHZ).unwrap_or_default();
        let original = match parts.uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        };
        let target = match path::Target::parse(&original) {
            Ok(t) if rest.starts_with('/') => t,
            _ => return Handled::new(Rejection::BadPath.respond(ClientKind::Api), Outcome::Error),
        };
        // The page to come back to: on the host Envoy was asked for.
        let back = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| crate::proxy::forwarded::is_authority(h))
            .map(|host| {
                let scheme = self.config.server.public_url.scheme();
                format!("{scheme}://{host}{}", target.as_str())
            });
        let credentials = trusted && !is_own_path(&target);
        let question = Question {
            method: parts.method.clone(),
            host: parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(crate::proxy::forwarded::host_name),
            target: Some(target),
            back,
            redirect: true,
            credentials,
            allowed: StatusCode::OK,
            constraints: None,
        };
        self.answer(parts, kind, question).await
    }

    /// The decision, once the question is known: public routes, the
    /// session or bearer token, the rules and the constraints.
    async fn answer(&self, parts: &http::request::Parts, kind: ClientKind, q: Question) -> Handled {
        if let Some(t) = &q.target {
            if self
                .rules
                .public
                .matches(&q.method, q.host.as_deref(), t.path(), &parts.headers)
            {
                return Handled::new(pages::status(q.allowed), Outcome::Public);
            }
        }
        let principal = match self.authenticate(&parts.headers, kind).await {
            Ok(p) => p,
            Err(Failure::Respond(h)) => return *h,
            Err(Failure::Login { clear }) => {
                if q.redirect && kind == ClientKind::Browser {
                    return self.to_sign_in(q.back.as_deref(), None, kind, clear).await;
                }
                let mut resp = Rejection::Unauthenticated.respond(ClientKind::Api);
                auth::append_cookies(&mut resp, clear);
                return Handled::new(resp, Outcome::Unauthorized);
            }
        };
        let asked = super::gate::Asked {
            method: &q.method,
            host: q.host.as_deref(),
            target: q.target.as_ref(),
        };
        if let Some(h) = self.denied(&principal, &asked, kind) {
            return h;
        }
        if let Some(h) = q
            .constraints
            .and_then(|c| self.narrowed(&principal, &c, kind))
        {
            return h;
        }
        self.allowed(principal, q.credentials, q.allowed)
    }

    /// The 202 (200 for Envoy) with the identity headers, and the
    /// credentials only for a trusted caller (the ingress that asked): a browser can call
    /// `/oauth2/auth` itself, and a script on the page could read an
    /// access token or assertion from the answer.
    ///
    /// Every header the gateway may copy to the upstream is in the
    /// answer, empty when there is nothing to say (no email, no groups, a
    /// credential withheld): gateways that copy headers from the answer
    /// (Envoy's `allowed_upstream_headers`, Istio, Traefik, Caddy) then
    /// overwrite a client-sent copy instead of letting it through.
    fn allowed(
        &self,
        principal: super::gate::Principal,
        credentials: bool,
        status: StatusCode,
    ) -> Handled {
        let s = &principal.session;
        let mut resp = pages::status(status);
        {
            let h = resp.headers_mut();
            let mut set = |name: &'static str, value: Option<&str>| {
                let v = value
                    .and_then(|v| http::HeaderValue::from_bytes(v.as_bytes()).ok())
                    .unwrap_or_else(|| http::HeaderValue::from_static(""));
                h.insert(name, v);
            };
            set("x-auth-request-user", Some(&s.sub));
            set("x-auth-request-email", s.email.as_deref());
            set(
                "x-auth-request-preferred-username",
                s.preferred_username.as_deref(),
            );
            let groups = s.groups.join(",");
            set(
                "x-auth-request-groups",
                Some(&groups).filter(|g| !g.is_empty()).map(|g| g.as_str()),
            );
            let upstream = &self.config.upstream;
            set(
                "x-auth-request-provider",
                upstream.pass_provider.then(|| s.provider_id()),
            );
            set(
                "x-auth-request-access-token",
                Some(s.access_token.as_str()).filter(|_| credentials && upstream.pass_access_token),
            );
            let signed = self
                .assertions
                .as_ref()
                .filter(|_| credentials)
                .and_then(|a| a.sign(s));
            set(crate::proxy::assertion::HEADER, signed.as_deref());
        }
        auth::append_cookies(&mut resp, principal.set_cookies);
        Handled {
            response: resp,
            outcome: Outcome::AuthAllowed,
            user: Some(principal.session.sub.clone()),
        }
    }
}

/// `X-Auth-Request-Redirect`, when it is one visible-ASCII value.
fn redirect_header(headers: &http::HeaderMap) -> Option<String> {
    let mut values = headers.get_all("x-auth-request-redirect").iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// Counts a forward-auth request without a believed original URI, and says
/// once, loudly, what it costs: public routes are not consulted and path
/// rules decide as for every path.
/// A path under tollgate's own `/oauth2/`: a proxy asking about it is
/// relaying a browser's own call, not checking a request for the app.
fn is_own_path(target: &path::Target) -> bool {
    target.path().starts_with("/oauth2/")
}

fn untrusted_forward_auth(peer: SocketAddr, trusted: bool) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    metrics().forward_auth_untrusted.inc();
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    let fix = if trusted {
        "have the proxy send X-Forwarded-Uri (or X-Original-URI)"
    } else {
        "add the ingress to server.trusted_proxies"
    };
    tracing::warn!(
        %peer,
        trusted,
        "forward-auth request without a trusted X-Forwarded-Uri/X-Original-URI: public routes \
         are not consulted and rules allow only users they allow on every path; {fix} \
         (further cases are counted in tollgate_forward_auth_untrusted_total)"
    );
}
