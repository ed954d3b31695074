//! The UserInfo endpoint (OIDC Core §5.3), used only to fill in identity
//! claims a provider leaves out of the ID token.

use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum UserInfoError {
    #[error("userinfo endpoint unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("userinfo endpoint answered HTTP {0}")]
    Status(u16),
    #[error("userinfo response is not JSON claims")]
    Invalid,
    /// OIDC Core §5.3.4: the `sub` must match the ID token's exactly.
    #[error("userinfo `sub` differs from the ID token's")]
    SubjectMismatch,
    /// 401: the headers, which may carry a DPoP nonce to retry with.
    #[error("userinfo endpoint answered HTTP 401")]
    Challenge(http::HeaderMap),
}

/// The access token as presented: `Bearer`, or `DPoP` with its proof.
pub struct Presented<'a> {
    pub access_token: &'a str,
    pub proof: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

pub async fn fetch(
    http: &reqwest::Client,
    endpoint: &Url,
    token: &Presented<'_>,
    subject: &str,
) -> Result<UserInfo, UserInfoError> {
    let started = std::time::Instant::now();
    let result = fetch_once(http, endpoint, token, subject).await;
    crate::telemetry::metrics::metrics().observe_provider("userinfo", started.elapsed());
    result
}

async fn fetch_once(
    http: &reqwest::Client,
    endpoint: &Url,
    token: &Presented<'_>,
    subject: &str,
) -> Result<UserInfo, UserInfoError> {
    let mut req = http
        .get(endpoint.clone())
        .header(http::header::ACCEPT, "application/json");
    req = match token.proof {
        Some(proof) => req
            .header(
                http::header::AUTHORIZATION,
                format!("DPoP {}", token.access_token),
            )
            .header(super::dpop::HEADER, proof),
        None => req.bearer_auth(token.access_token),
    };
    let resp = req.send().await.map_err(UserInfoError::Unreachable)?;
    if resp.status() == http::StatusCode::UNAUTHORIZED {
        return Err(UserInfoError::Challenge(resp.headers().clone()));
    }
    if !resp.status().is_success() {
        return Err(UserInfoError::Status(resp.status().as_u16()));
    }
    let body = super::read_limited(resp)
        .await
        .map_err(UserInfoError::Unreachable)?;
    let info: UserInfo = serde_json::from_slice(&body).map_err(|_| UserInfoError::Invalid)?;
    if info.sub != subject {
        return Err(UserInfoError::SubjectMismatch);
    }
    Ok(info)
}
