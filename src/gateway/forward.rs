//! Forwarding a request: the judged target (normalized once), public
//! routes, the gate, header hygiene and identity, then the upstream.

use std::net::SocketAddr;

use http::Request;
use hyper::body::Incoming;

use super::gate::{Failure, Principal, Via};
use super::App;
use crate::auth::{self, Handled};
use crate::pages::{ClientKind, Outcome, Rejection};
use crate::proxy::headers::{self, Forwarding};
use crate::proxy::path;
use crate::proxy::upstreams::Route;
use crate::session::Session;

impl App {
    pub(super) async fn proxy(
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
                return Handled::new(Rejection::BadPath.respond(kind), Outcome::Error);
            }
        };
        let method = req.method().clone();
        let path = target.path();
        let upgrade = headers::is_upgrade(req.headers());
        let trusted = self.trusted.trusts(peer.ip());
        // The client's host, worked out only when routes or rules judge
        // it (the common configuration pays nothing for it).
        let client_host = (self.upstreams.by_host() || self.rules.judges_hosts)
            .then(|| crate::proxy::forwarded::request_host(req.headers(), req.uri()))
            .flatten();
        let Some(route) = self.upstreams.pick(client_host.as_deref(), path) else {
            tracing::info!(
                host = client_host.as_deref().unwrap_or("-"),
                "no upstream serves this host"
            );
            return Handled::new(Rejection::UnknownHost.respond(kind), Outcome::Error);
        };
        // Rules judge the host the upstream receives: the client's
        // (`pass_host_header`), else none that rules could know (then a
        // host rule refuses whom it would refuse).
        let host = client_host
            .as_deref()
            .filter(|_| route.config.pass_host_header);

        if self
            .rules
            .public
            .matches(&method, host, path, req.headers())
        {
            self.prepare(&mut req, route, upgrade, peer, trusted, None);
            return match route.upstream.forward(req, &target, upgrade).await {
                Ok(resp) => Handled::new(resp, Outcome::Public),
                Err(e) => Handled::new(Rejection::from(e).respond(kind), Outcome::UpstreamError),
            };
        }

        let principal = match self.authenticate(req.headers(), kind).await {
            Ok(p) => p,
            Err(Failure::Respond(h)) => return *h,
            Err(Failure::Login { clear }) => {
                let at = client_host.as_deref();
                return self.unauthenticated(&target, at, kind, clear).await;
            }
        };
        let asked = super::gate::Asked {
            method: &method,
            host,
            target: Some(&target),
        };
        if let Some(h) = self.denied(&principal, &asked, kind) {
            return h;
        }
        self.prepare(
            &mut req,
            route,
            upgrade,
            peer,
            trusted,
            Some(&principal.session),
        );
        let Principal {
            session,
            set_cookies,
            via,
        } = principal;
        let user = Some(session.sub.clone());
        match route.upstream.forward(req, &target, upgrade).await {
            Ok(mut resp) => {
                auth::append_cookies(&mut resp, set_cookies);
                Handled {
                    response: resp,
                    outcome: match via {
                        Via::Bearer => Outcome::ProxiedBearer,
                        Via::Cookie => Outcome::Proxied,
                    },
                    user,
                }
            }
            Err(e) => Handled {
                response: Rejection::from(e).respond(kind),
                outcome: Outcome::UpstreamError,
                user,
            },
        }
    }

    /// Header hygiene and identity for the upstream request.
    fn prepare(
        &self,
        req: &mut Request<Incoming>,
        route: &Route,
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
            &route.strip,
            &self.sessions.cookies,
            &route.config,
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

    /// No valid session: browsers are sent to log in (and lose any stale
    /// session cookies), API clients get 401 JSON.
    async fn unauthenticated(
        &self,
        target: &path::Target,
        host: Option<&str>,
        kind: ClientKind,
        clear: Vec<String>,
    ) -> Handled {
        if kind != ClientKind::Browser {
            let mut resp = Rejection::Unauthenticated.respond(kind);
            auth::append_cookies(&mut resp, clear);
            return Handled::new(resp, Outcome::Unauthorized);
        }
        // On another host than tollgate's own, the page is named whole.
        let public = &self.config.server.public_url;
        let back = match host.filter(|h| Some(*h) != public.host_str()) {
            Some(h) => {
                let port = public.port().map(|p| format!(":{p}")).unwrap_or_default();
                format!("{}://{h}{port}{}", public.scheme(), target.as_str())
            }
            None => target.as_str().to_string(),
        };
        self.to_sign_in(Some(&back), host, kind, clear).await
    }

    /// A browser's way to sign in on `host`, coming back to `back`
    /// (within the redirect policy, else `/`): straight to the provider
    /// when `back` is on tollgate's own host, or on a listed host with a
    /// session of its own; for another host (`[[upstreams]]` sharing one
    /// session, or forward-auth for several sites), through
    /// `<public_url>/oauth2/start?rd=<back>`, so that the login cookie is
    /// set where the callback will look for it.
    pub(super) async fn to_sign_in(
        &self,
        back: Option<&str>,
        host: Option<&str>,
        kind: ClientKind,
        clear: Vec<String>,
    ) -> Handled {
        let return_to = self.rules.redirects.or_root(back);
        let public = &self.config.server.public_url;
        let ctx = self.login_ctx_at(host);
        let elsewhere = url::Url::parse(&return_to)
            .ok()
            .filter(|u| ctx.callback_host.is_none() && u.origin() != public.origin());
        let result = match elsewhere.and_then(|_| public.join(crate::config::START_PATH).ok()) {
            Some(mut start) => {
                start.query_pairs_mut().append_pair("rd", &return_to);
                Ok(Handled::new(
                    crate::pages::redirect(start.as_str()),
                    Outcome::LoginRedirect,
                ))
            }
            None => auth::login::sign_in(&ctx, return_to).await,
        };
        match result {
            Ok(mut h) => {
                auth::append_cookies(&mut h.response, clear);
                h
            }
            Err(r) => Handled::new(r.respond(kind), Outcome::Error),
        }
    }
}
