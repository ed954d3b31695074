//! Microsoft Graph, for Entra ID's group overage: when a user is in more
//! groups than fit a token, the ID token carries `_claim_names.groups`
//! instead, and the groups are read from Graph with the user's access
//! token (`GET /v1.0/me/transitiveMemberOf/microsoft.graph.group`, paged
//! by `@odata.nextLink`; Microsoft Graph reference, "List a user's
//! transitive memberships").

use serde::Deserialize;
use url::Url;

/// Most pages followed (999 groups each).
const MAX_PAGES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Microsoft Graph unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("Microsoft Graph answered HTTP {0}")]
    Status(u16),
    #[error("Microsoft Graph's answer is not a group list")]
    Invalid,
    #[error("Microsoft Graph's next page is not on {0}")]
    ForeignNextLink(String),
    #[error("more than {MAX_PAGES} pages of groups")]
    TooMany,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<Group>,
    #[serde(rename = "@odata.nextLink", default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Group {
    id: String,
}

/// The object ids of every group the access token's user belongs to,
/// directly or not. Next pages are followed only on Graph's own origin:
/// the access token never goes anywhere else.
pub async fn member_groups(
    http: &reqwest::Client,
    graph: &Url,
    access_token: &str,
) -> Result<Vec<String>, GraphError> {
    let mut url = graph
        .join("v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id&$top=999")
        .map_err(|_| GraphError::Invalid)?;
    let mut groups = Vec::new();
    for _ in 0..MAX_PAGES {
        let resp = http
            .get(url.clone())
            .bearer_auth(access_token)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(GraphError::Unreachable)?;
        if !resp.status().is_success() {
            return Err(GraphError::Status(resp.status().as_u16()));
        }
        let body = super::read_limited(resp)
            .await
            .map_err(GraphError::Unreachable)?;
        let page: Page = serde_json::from_slice(&body).map_err(|_| GraphError::Invalid)?;
        groups.extend(page.value.into_iter().map(|g| g.id));
        let Some(next) = page.next else {
            return Ok(groups);
        };
        let next = Url::parse(&next).map_err(|_| GraphError::Invalid)?;
        if next.origin() != graph.origin() {
            return Err(GraphError::ForeignNextLink(
                graph.origin().ascii_serialization(),
            ));
        }
        url = next;
    }
    Err(GraphError::TooMany)
}
