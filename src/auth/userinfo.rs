//! `/oauth2/userinfo`: who the session says the caller is.

use http::request::Parts;
use http::StatusCode;

use crate::pages::{self, Outcome, Rejection};
use crate::session::store::SessionStore;

use super::handled::{load_session, Handled};

/// `/oauth2/userinfo`: the session's identity as JSON (oauth2-proxy's shape).
pub async fn userinfo(sessions: &SessionStore, parts: &Parts) -> Result<Handled, Rejection> {
    let session = load_session(sessions, &parts.headers)
        .await?
        .session
        .ok_or(Rejection::Unauthenticated)?;
    let body = serde_json::json!({
        "user": session.sub,
        "email": session.email,
        "preferredUsername": session.preferred_username,
        "groups": session.groups,
    });
    Ok(Handled {
        response: pages::json(StatusCode::OK, &body),
        outcome: Outcome::Userinfo,
        user: Some(session.sub.clone()),
    })
}
