//! tollgate: an OAuth 2.0 / OpenID Connect authentication sidecar.
//!
//! The request path, top to bottom, and where each step lives:
//!
//! | step | module |
//! |---|---|
//! | listener, HTTP/1.1 + HTTP/2, connection limits and timeouts, graceful drain | [`server`] (`conn.rs`: one connection's limits) |
//! | request id, access log, metrics: once per request | [`gateway`] (`mod.rs`) |
//! | router: `Host` check, probes, `/oauth2/*`, everything else | `gateway/router.rs` |
//! | gate: bearer token or session cookie → refresh → principal; the rules' verdict | `gateway/gate.rs` |
//! | forward: the judged target, header hygiene, the upstream; forward-auth | `gateway/forward.rs`, `gateway/forward_auth.rs` |
//! | what every request shares (provider, stores, upstream client, compiled rules) | `gateway/state.rs` |
//! | `/oauth2/*` handlers, bearer tokens, refresh, safe redirects | [`auth`] |
//! | session model, cookie codec and chunks, cookie or Redis store, logout memory | [`session`] |
//! | authorization rules | [`authz`] |
//! | discovery, JWKS, JWS, ID and logout tokens, token endpoint, PKCE | [`oidc`] |
//! | path normalization and the judged `Target`, public routes, header hygiene, identity assertion, upstream client | [`proxy`] |
//! | every generated response (errors, pages): the one place errors become responses | [`pages`] |
//! | configuration: load, validate (one file per section); plain data in types each component owns (`settings.rs`) | [`config`] |
//! | `tollgate convert`: an oauth2-proxy configuration as tollgate's (pure, beside the request path) | [`convert`] |
//! | secret bytes that never print | [`secret`] |
//! | logging, metrics | [`telemetry`] |
//!
//! Imports point down this table and never form a circle: handlers in
//! [`auth`] borrow the shared state (`gateway/state.rs`), never the router.
// The request future (handler, tracing span, request-id scope) nests
// deeper than the compiler's default layout depth.
#![recursion_limit = "256"]

pub mod auth;
pub mod authz;
pub mod config;
pub mod convert;
pub mod gateway;
pub mod oidc;
pub mod pages;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;

/// Response body: the upstream's streamed body, or one we generated.
pub type Body = http_body_util::Either<proxy::UpstreamBody, http_body_util::Full<bytes::Bytes>>;
