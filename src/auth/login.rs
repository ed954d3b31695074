//! `/oauth2/start` and the login redirect every unauthenticated browser gets:
//! a fresh `state`, `nonce` and PKCE verifier in a login cookie, then the
//! provider's authorization endpoint.

use http::request::Parts;

use super::context::LoginCtx;
use crate::oidc::pkce::Pkce;
use crate::oidc::random_token;
use crate::pages::{self, Outcome, Rejection};
use crate::session::LoginState;

use super::handled::{append_cookies, param, query_pairs, Handled};

/// `/oauth2/start?rd=/path`: begin a login explicitly.
pub fn start(ctx: &LoginCtx<'_>, parts: &Parts) -> Result<Handled, Rejection> {
    let pairs = query_pairs(parts);
    let rd = ctx.redirects.or_root(param(&pairs, "rd"));
    login_redirect(ctx, rd)
}

/// The 302 to the provider's authorization endpoint, with a fresh state,
/// nonce and PKCE challenge, and the login cookie that remembers them.
pub fn login_redirect(ctx: &LoginCtx<'_>, return_to: String) -> Result<Handled, Rejection> {
    let provider = ctx
        .provider
        .current
        .clone()
        .ok_or(Rejection::ProviderNotReady)?;
    let cfg = ctx.provider.settings;
    let state = random_token(32);
    let nonce = random_token(32);
    let pkce = cfg.pkce.then(Pkce::generate);

    let mut url = provider.metadata.authorization_endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &cfg.client_id)
            .append_pair("redirect_uri", cfg.redirect_url.as_str())
            .append_pair("scope", &cfg.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce);
        if let Some(p) = &pkce {
            q.append_pair("code_challenge", &p.challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    let login = LoginState::new(state, nonce, pkce.map(|p| p.verifier), return_to);
    crate::telemetry::metrics::metrics().login("started", "");
    let mut resp = pages::redirect(url.as_str());
    append_cookies(
        &mut resp,
        ctx.login_cookies.begin(&ctx.sessions.codec, login),
    );
    Ok(Handled::new(resp, Outcome::LoginRedirect))
}
