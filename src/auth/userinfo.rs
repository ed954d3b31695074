//! `/oauth2/userinfo`: who the session says the caller is.

use http::request::Parts;
use http::StatusCode;

use crate::gateway::state::App;
use crate::pages::{self, Outcome, Rejection};

use super::handled::Handled;

/// `/oauth2/userinfo`: the session's identity as JSON (oauth2-proxy's shape).
pub async fn userinfo(app: &App, parts: &Parts) -> Result<Handled, Rejection> {
    let session = app
        .load_session(&parts.headers)
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
        user: Some(session.sub),
    })
}
