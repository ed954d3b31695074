//! tollgate: an OAuth 2.0 / OpenID Connect authentication sidecar.
//!
//! The request path, top to bottom, and where each step lives:
//!
//! | step | module |
//! |---|---|
//! | listener, HTTP/1.1 + HTTP/2, graceful drain | [`server`] |
//! | router: `/oauth2/*`, probes, everything else | [`app`] |
//! | session cookie: open, chunks, key ring | [`session`] |
//! | login, callback, sign-out, userinfo, forward-auth, bearer tokens, refresh; safe redirects | [`auth`] |
//! | authorization rules | [`authz`] |
//! | discovery, JWKS, ID-token validation, token endpoint, PKCE | [`oidc`] |
//! | path normalization, public routes, header hygiene, identity assertion, upstream client | [`proxy`] |
//! | every generated response (errors, pages) | [`pages`] |
//! | configuration: load, validate | [`config`] |
//! | logging | [`telemetry`] |

pub mod app;
pub mod auth;
pub mod authz;
pub mod config;
pub mod oidc;
pub mod pages;
pub mod proxy;
pub mod server;
pub mod session;
pub mod telemetry;

/// Response body: the upstream's streamed body, or one we generated.
pub type Body = http_body_util::Either<hyper::body::Incoming, http_body_util::Full<bytes::Bytes>>;
