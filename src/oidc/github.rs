//! GitHub (github.com and GitHub Enterprise Server): OAuth 2.0 without ID
//! tokens. Who the user is comes from the REST API with the access token
//! (GitHub REST API reference: "Get the authenticated user", "List email
//! addresses for the authenticated user", "List organizations for the
//! authenticated user", "List teams for the authenticated user"), every
//! page followed through the `Link` header, never off the API's origin.

use serde::Deserialize;
use url::Url;

/// Most pages followed per list (100 entries each).
const MAX_PAGES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("the GitHub API is unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("the GitHub API answered HTTP {status} for {what}")]
    Status { status: u16, what: &'static str },
    #[error("the GitHub API's answer for {0} is not what its reference describes")]
    Invalid(&'static str),
    #[error("more than {MAX_PAGES} pages of {0}")]
    TooMany(&'static str),
}

/// The endpoints of one GitHub: `https://github.com` has its API at
/// `https://api.github.com`, a GitHub Enterprise Server at `<base>/api/v3`.
#[derive(Debug, Clone)]
pub struct Github {
    pub base: Url,
    pub api: Url,
}

impl Github {
    pub fn new(base: &Url) -> Self {
        let api = if base.host_str() == Some("github.com") {
            Url::parse("https://api.github.com/").ok()
        } else {
            base.join("api/v3/").ok()
        };
        Self {
            base: base.clone(),
            api: api.unwrap_or_else(|| base.clone()),
        }
    }

    pub fn authorize_url(&self) -> Option<Url> {
        self.base.join("login/oauth/authorize").ok()
    }

    pub fn token_url(&self) -> Option<Url> {
        self.base.join("login/oauth/access_token").ok()
    }
}

/// Who signed in, as a session keeps it.
#[derive(Debug, Clone)]
pub struct GithubUser {
    /// The numeric id: stable, unlike the login, which users can change.
    pub id: String,
    pub login: String,
    pub name: Option<String>,
    /// The primary address, only when GitHub says it is verified.
    pub email: Option<String>,
    /// Organisations (`acme`) and teams (`acme/ops`).
    pub groups: Vec<String>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

/// The signed-in user, their verified primary email and memberships.
pub async fn user(
    http: &reqwest::Client,
    gh: &Github,
    token: &str,
) -> Result<GithubUser, GithubError> {
    let api = &gh.api;
    let user: User = one(http, api, token, "user", "user").await?;
    let emails: Vec<Email> = list(http, api, token, "user/emails", "email addresses").await?;
    let orgs: Vec<Org> = list(http, api, token, "user/orgs", "organizations").await?;
    let teams: Vec<Team> = list(http, api, token, "user/teams", "teams").await?;
    let email = emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email);
    let mut groups: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
    groups.extend(
        teams
            .into_iter()
            .map(|t| format!("{}/{}", t.organization.login, t.slug)),
    );
    Ok(GithubUser {
        id: user.id.to_string(),
        login: user.login,
        name: user.name,
        email,
        groups,
    })
}

async fn get(
    http: &reqwest::Client,
    url: Url,
    token: &str,
    what: &'static str,
) -> Result<(Vec<u8>, Option<String>), GithubError> {
    let resp = http
        .get(url)
        .bearer_auth(token)
        .header(http::header::ACCEPT, "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .send()
        .await
        .map_err(GithubError::Unreachable)?;
    if !resp.status().is_success() {
        return Err(GithubError::Status {
            status: resp.status().as_u16(),
            what,
        });
    }
    let next = resp
        .headers()
        .get(http::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(next_link);
    let body = super::read_limited(resp)
        .await
        .map_err(GithubError::Unreachable)?;
    Ok((body, next))
}

async fn one<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    api: &Url,
    token: &str,
    path: &str,
    what: &'static str,
) -> Result<T, GithubError> {
    let url = api.join(path).map_err(|_| GithubError::Invalid(what))?;
    let (body, _) = get(http, url, token, what).await?;
    serde_json::from_slice(&body).map_err(|_| GithubError::Invalid(what))
}

async fn list<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    api: &Url,
    token: &str,
    path: &str,
    what: &'static str,
) -> Result<Vec<T>, GithubError> {
    let mut url = api
        .join(&format!("{path}?per_page=100"))
        .map_err(|_| GithubError::Invalid(what))?;
    let mut all = Vec::new();
    for _ in 0..MAX_PAGES {
        let (body, next) = get(http, url, token, what).await?;
        let page: Vec<T> = serde_json::from_slice(&body).map_err(|_| GithubError::Invalid(what))?;
        all.extend(page);
        let Some(next) = next else {
            return Ok(all);
        };
        let next = Url::parse(&next).map_err(|_| GithubError::Invalid(what))?;
        if next.origin() != api.origin() {
            return Err(GithubError::Invalid(what));
        }
        url = next;
    }
    Err(GithubError::TooMany(what))
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\""));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_name_the_next_page() {
        let h = r#"<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/user/orgs?page=2")
        );
        assert_eq!(next_link(r#"<https://x/1>; rel="prev""#), None);
    }

    #[test]
    fn github_com_and_enterprise_server_have_their_apis() {
        let com = Github::new(&Url::parse("https://github.com").expect("url"));
        assert_eq!(com.api.as_str(), "https://api.github.com/");
        let ghes = Github::new(&Url::parse("https://git.example.com/").expect("url"));
        assert_eq!(ghes.api.as_str(), "https://git.example.com/api/v3/");
        assert_eq!(
            ghes.token_url().expect("url").as_str(),
            "https://git.example.com/login/oauth/access_token"
        );
    }
}
