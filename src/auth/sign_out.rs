//! `/oauth2/sign_out`: protected against other sites, ends the session here,
//! revokes the refresh token, then ends the provider session.

use http::header;
use http::request::Parts;

use super::context::LoginCtx;
use crate::pages::{self, Outcome, Rejection};
use crate::session::store::Loaded;

use super::handled::{append_cookies, load_session, param, query_pairs, Handled};
use crate::session::RequestCookies;

/// Where a browser says a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// This origin, or the user's own navigation (`Sec-Fetch-Site: none`).
    Same,
    /// Another site (or a same-site sibling, which is another origin).
    Cross,
    /// No fetch metadata and no `Origin`: an old browser or not a browser.
    Unknown,
}

/// `Sec-Fetch-Site` when the browser sends it (all current ones do), else
/// `Origin` compared with tollgate's own.
fn request_site(headers: &http::HeaderMap, own: &url::Url) -> Site {
    if let Some(v) = headers.get("sec-fetch-site") {
        return match v.as_bytes() {
            b"same-origin" | b"none" => Site::Same,
            _ => Site::Cross,
        };
    }
    match headers.get(header::ORIGIN).map(|v| v.as_bytes()) {
        None => Site::Unknown,
        Some(o) if o == own.origin().ascii_serialization().as_bytes() => Site::Same,
        Some(_) => Site::Cross,
    }
}

/// `/oauth2/sign_out?rd=/path`: delete the session (the server-side record
/// and every cookie), revoke its refresh token where the provider allows
/// (RFC 7009), then end the provider session when it publishes an
/// `end_session_endpoint`.
pub async fn sign_out(ctx: &LoginCtx<'_>, parts: &Parts) -> Result<Handled, Rejection> {
    let pairs = query_pairs(parts);
    let rd = ctx.redirects.or_root(param(&pairs, "rd"));
    // A page on another site must not be able to sign the user out (CSRF,
    // security-cases D-8): a cross-site POST is refused; a GET that is not
    // shown to be same-origin asks first, with a button that POSTs from here.
    match (
        parts.method == http::Method::POST,
        request_site(&parts.headers, ctx.redirects.origin()),
    ) {
        (_, Site::Same) | (true, Site::Unknown) => {}
        (false, Site::Unknown) if !ctx.session.confirm_sign_out => {}
        (true, Site::Cross) => return Err(Rejection::CrossSite),
        (false, _) => {
            return Ok(Handled::new(
                pages::confirm_sign_out(&rd),
                Outcome::SignOutConfirm,
            ))
        }
    }
    // With the store down the browser's cookies are still cleared: the
    // user asked to leave, and the record expires by itself.
    let (session, cleared) = match load_session(ctx.sessions, &parts.headers).await {
        Ok(Loaded { session, handle }) => {
            let cleared = match ctx.sessions.delete(&handle, session.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "could not delete the server-side session at sign-out");
                    ctx.sessions.cookies.clear(&handle.present)
                }
            };
            (session, cleared)
        }
        Err(_) => {
            let present = ctx
                .sessions
                .cookies
                .present(&RequestCookies::of(&parts.headers));
            (None, ctx.sessions.cookies.clear(&present))
        }
    };

    // The session's own provider; with no session, the only one if there
    // is one (its session may outlive ours).
    let owner = match &session {
        Some(s) => ctx.for_provider(s.provider_id()),
        None => (!ctx.providers.several()).then(|| ctx.clone()),
    };
    let Some(ctx) = owner else {
        let mut resp = pages::redirect(&rd);
        append_cookies(&mut resp, cleared);
        return Ok(Handled {
            response: resp,
            outcome: Outcome::SignOut,
            user: session.map(|s| s.sub.clone()),
        });
    };
    let provider = ctx.provider.current.clone();
    if let (Some(p), Some(rt)) = (
        &provider,
        session.as_ref().and_then(|s| s.refresh_token.as_deref()),
    ) {
        if let Some(endpoint) = &p.metadata.revocation_endpoint {
            if let Err(e) = p.tokens.revoke(endpoint, rt).await {
                tracing::warn!(error = %e, "revoking the refresh token at sign-out failed");
            }
        }
    }
    let location = match provider.and_then(|p| p.metadata.end_session_endpoint.clone()) {
        Some(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                if let Some(hint) = session.as_ref().and_then(|s| s.id_token.as_deref()) {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("client_id", &ctx.provider.settings.client_id)
                    .append_pair(
                        "post_logout_redirect_uri",
                        ctx.provider.settings.post_logout_redirect_url.as_str(),
                    );
            }
            url.to_string()
        }
        None => rd,
    };
    let user = session.as_ref().map(|s| s.sub.clone());
    if let Some(u) = &user {
        tracing::info!(target: "tollgate::audit", event = "logout", user = %u, "signed out");
    }
    let mut resp = pages::redirect(&location);
    append_cookies(&mut resp, cleared);
    Ok(Handled {
        response: resp,
        outcome: Outcome::SignOut,
        user,
    })
}

/// `/oauth2/signed_out`: "signed out" only when no valid session came with
/// the request; otherwise who is still signed in, and a sign-out button.
pub async fn signed_out(ctx: &LoginCtx<'_>, parts: &Parts) -> Handled {
    let user = match load_session(ctx.sessions, &parts.headers).await {
        Ok(Loaded {
            session: Some(s), ..
        }) => Some(s.email.clone().unwrap_or_else(|| s.sub.clone())),
        _ => None,
    };
    match user {
        Some(u) => Handled::new(pages::still_signed_in(&u), Outcome::SignedOut),
        None => Handled::new(pages::signed_out(), Outcome::SignedOut),
    }
}
