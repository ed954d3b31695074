//! A small browser: a cookie jar that follows redirects and fills in the provider's login form.

// === browser ===

#[derive(Debug, Clone)]
struct StoredCookie {
    name: String,
    value: String,
    path: String,
}

/// A browser-like client: cookie jar (host-wide, path-matched, as browsers
/// do on localhost), manual redirects.
/// Cookie name prefixes as browsers enforce them (RFC 6265bis §4.1.3,
/// ignoring case): `__Secure-` needs `Secure`; `__Host-` needs `Secure`,
/// `Path=/` and no `Domain`. (Like browsers on localhost, the jar otherwise
/// keeps `Secure` cookies over plain http.)
fn prefix_allows(c: &cookie::Cookie<'_>) -> bool {
    let name = c.name().to_ascii_lowercase();
    let secure = c.secure() == Some(true);
    if name.starts_with("__host-") {
        return secure && c.path() == Some("/") && c.domain().is_none();
    }
    !name.starts_with("__secure-") || secure
}

pub struct Browser {
    http: reqwest::Client,
    jar: Vec<StoredCookie>,
    pub accept: &'static str,
}

/// One response, its body read.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            // Trusts the test CA too, for a provider served over HTTPS.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .add_root_certificate(super::test_ca())
                .build()
                .expect("client"),
            jar: Vec::new(),
            accept: "text/html,application/xhtml+xml,*/*;q=0.8",
        }
    }

    /// A browser that finds each of `names` on the loopback interface, as
    /// browsers do for `*.localhost` (RFC 6761), whatever the system
    /// resolver says. Its cookie jar, like [`Browser::new`]'s, ignores
    /// `Domain`: every host sees every cookie.
    pub fn resolving(names: &[&str]) -> Self {
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(super::test_ca());
        for name in names {
            http = http.resolve(name, std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        Self {
            http: http.build().expect("client"),
            ..Self::new()
        }
    }

    pub fn cookie_header(&self, url: &str) -> String {
        let path = url::Url::parse(url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        self.jar
            .iter()
            .filter(|c| path.starts_with(&c.path))
            .map(|c| format!("{}={}", c.name, c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.clone())
    }

    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.iter().map(|c| c.name.clone()).collect()
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.retain(|c| c.name != name);
        self.jar.push(StoredCookie {
            name: name.into(),
            value: value.into(),
            path: "/".into(),
        });
    }

    pub fn remove_cookies(&mut self, pred: impl Fn(&str) -> bool) {
        self.jar.retain(|c| !pred(&c.name));
    }

    fn store(&mut self, url: &str, set_cookies: &[String]) {
        for s in set_cookies {
            let Ok(c) = cookie::Cookie::parse(s.clone()) else {
                continue;
            };
            if !prefix_allows(&c) {
                continue;
            }
            let default_path = url::Url::parse(url)
                .map(|u| {
                    let p = u.path();
                    p[..p.rfind('/').unwrap_or(0).max(1)].to_string()
                })
                .unwrap_or_else(|_| "/".into());
            let path = c.path().map(str::to_string).unwrap_or(default_path);
            self.jar.retain(|x| !(x.name == c.name() && x.path == path));
            let expired = c.max_age().is_some_and(|m| m.is_zero() || m.is_negative())
                || c.expires_datetime()
                    .is_some_and(|e| e < cookie::time::OffsetDateTime::now_utc());
            if !expired {
                self.jar.push(StoredCookie {
                    name: c.name().into(),
                    value: c.value().into(),
                    path,
                });
            }
        }
    }

    /// One request, cookies sent and stored, no redirect followed.
    pub async fn request(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.request(method, url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header("accept", self.accept);
        }
        let cookies = self.cookie_header(url);
        if !cookies.is_empty() {
            req = req.header("cookie", cookies);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let page = Page {
            url: url.to_string(),
            status,
            headers,
            body,
        };
        self.store(url, &page.set_cookies());
        page
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.request(reqwest::Method::GET, url, None, &[]).await
    }

    /// Follows a sign-out link on the site itself, as a browser does
    /// (`Sec-Fetch-Site: same-origin`).
    pub async fn sign_out(&mut self, url: &str) -> Page {
        self.request(
            reqwest::Method::GET,
            url,
            None,
            &[("sec-fetch-site", "same-origin")],
        )
        .await
    }

    /// Submits the first form on `page` with its inputs (hidden ones
    /// included), as a browser would; returns the response, not followed.
    pub async fn submit_form(&mut self, page: &Page) -> Page {
        let form = page.body.split("<form").nth(1).expect("a form");
        let action = form
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("action");
        let mut fields: Vec<(String, String)> = Vec::new();
        for input in form.split("<input").skip(1) {
            let attr = |name: &str| {
                input
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .map(str::to_string)
            };
            if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
                fields.push((n, v));
            }
        }
        let target = url::Url::parse(&page.url)
            .and_then(|b| b.join(action))
            .expect("action url")
            .to_string();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.request(reqwest::Method::POST, &target, Some(&pairs), &[])
            .await
    }

    /// Follows redirects (at most 20) from `url`; returns the last page.
    pub async fn follow(&mut self, url: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..20 {
            match (page.status, page.location()) {
                (301 | 302 | 303 | 307 | 308, Some(loc)) => {
                    let next = url::Url::parse(&page.url)
                        .and_then(|b| b.join(loc))
                        .expect("location")
                        .to_string();
                    page = self.get(&next).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Follows redirects from `url`; when the provider's login form shows
    /// up, signs in as `user`; returns the first page that is not a
    /// redirect after that.
    pub async fn login(&mut self, url: &str, user: &str) -> Page {
        let page = self.follow(url).await;
        self.submit_login(page, user).await
    }

    /// Fills in the login form on `page` (if it is one) and follows on.
    pub async fn submit_login(&mut self, page: Page, user: &str) -> Page {
        if page.status != 200 || !page.body.contains("name=\"login\"") {
            return page;
        }
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("form action");
        let target = url::Url::parse(&page.url)
            .and_then(|b| b.join(action))
            .expect("action url")
            .to_string();
        let posted = self
            .request(
                reqwest::Method::POST,
                &target,
                Some(&[("login", user), ("password", "any")]),
                &[],
            )
            .await;
        let next = posted.location().expect("redirect after login").to_string();
        let next = url::Url::parse(&target)
            .and_then(|b| b.join(&next))
            .expect("url")
            .to_string();
        self.follow(&next).await
    }

    /// Follows redirects from `url` but stops at the callback, returning
    /// the callback URL the provider produced (not yet visited).
    pub async fn until_callback(&mut self, url: &str, user: &str) -> String {
        let mut page = self.get(url).await;
        for _ in 0..20 {
            if page.status == 200 && page.body.contains("name=\"login\"") {
                let action = page
                    .body
                    .split("action=\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .expect("form action")
                    .to_string();
                let target = url::Url::parse(&page.url)
                    .and_then(|b| b.join(&action))
                    .expect("url")
                    .to_string();
                page = self
                    .request(
                        reqwest::Method::POST,
                        &target,
                        Some(&[("login", user), ("password", "any")]),
                        &[],
                    )
                    .await;
                continue;
            }
            let loc = page.location().unwrap_or_else(|| {
                panic!("stuck at {} ({}): {}", page.url, page.status, page.body)
            });
            let next = url::Url::parse(&page.url)
                .and_then(|b| b.join(loc))
                .expect("location")
                .to_string();
            if next.contains("/oauth2/callback") {
                return next;
            }
            page = self.get(&next).await;
        }
        panic!("never reached the callback");
    }
}
