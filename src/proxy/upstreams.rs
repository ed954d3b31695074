//! Several upstreams: each request goes to the route whose host and path
//! prefix it matches, the most specific host first (a name, then `*.`
//! and a name, then any host), then the longest prefix. A host no route
//! lists is answered 421, never sent to another host's upstream.

use super::headers::StripList;
use super::host::host_matches;
use super::settings::{UpstreamConfig, UpstreamRoute};
use super::{Upstream, UpstreamError};

/// One route: where it applies, and its upstream with its settings.
#[derive(Debug)]
pub struct Route {
    host: Option<String>,
    prefix: String,
    pub upstream: Upstream,
    pub config: UpstreamConfig,
    /// Client headers removed before this upstream sees the request.
    pub strip: StripList,
}

/// Every route, most specific first.
#[derive(Debug)]
pub struct Upstreams {
    routes: Vec<Route>,
    /// Some route names a host: requests are routed by their host.
    by_host: bool,
    /// Prefixes compare ignoring ASCII case (`upstream.case_insensitive_paths`).
    fold_case: bool,
}

impl Route {
    fn new(r: &UpstreamRoute) -> Result<Self, UpstreamError> {
        Ok(Self {
            host: r.host.clone(),
            prefix: r.path_prefix.clone(),
            upstream: Upstream::new(&r.upstream)?,
            config: r.upstream.clone(),
            strip: StripList::new(&r.upstream),
        })
    }

    /// A name beats `*.` and a longer name beats a shorter one; any host
    /// comes last.
    fn host_rank(&self) -> (u8, usize) {
        match &self.host {
            None => (0, 0),
            Some(h) if h.starts_with("*.") => (1, h.len()),
            Some(h) => (2, h.len()),
        }
    }

    fn admits(&self, host: Option<&str>, path: &str, fold_case: bool) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(pattern), Some(host)) => host_matches(pattern, host),
            (Some(_), None) => false,
        };
        host_ok && under(path, &self.prefix, fold_case)
    }
}

/// `path` is `prefix` or below it, at a segment boundary.
fn under(path: &str, prefix: &str, fold_case: bool) -> bool {
    let Some(head) = path.get(..prefix.len()) else {
        return false;
    };
    let same = if fold_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    same && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

impl Upstreams {
    pub fn new(routes: &[UpstreamRoute], fold_case: bool) -> Result<Self, UpstreamError> {
        let mut routes = routes
            .iter()
            .map(Route::new)
            .collect::<Result<Vec<_>, _>>()?;
        // Stable: equal ranks keep the configuration's order.
        routes.sort_by_key(|r| std::cmp::Reverse((r.host_rank(), r.prefix.len())));
        Ok(Self {
            by_host: routes.iter().any(|r| r.host.is_some()),
            routes,
            fold_case,
        })
    }

    /// Whether the request's host picks the route.
    pub fn by_host(&self) -> bool {
        self.by_host
    }

    /// Whether an entry names `host` (exactly, or by a `*.` pattern; an
    /// entry for any host does not count).
    pub fn lists(&self, host: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.host.as_deref().is_some_and(|p| host_matches(p, host)))
    }

    /// The route for a request's host (lower-case, no port; `None` when it
    /// sent none) and judged path; `None`: no route serves it.
    pub fn pick(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let route = self
            .routes
            .iter()
            .find(|r| r.admits(host, path, self.fold_case))?;
        // `/admin;x/y` is `/admin/y` to Tomcat-style servers (rules judge
        // both readings): when the two readings would go to different
        // upstreams, neither is chosen.
        let plain = super::path::without_params(path);
        if plain != path {
            let other = self
                .routes
                .iter()
                .find(|r| r.admits(host, &plain, self.fold_case));
            if !other.is_some_and(|o| std::ptr::eq(o, route)) {
                return None;
            }
        }
        Some(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: Option<&str>, prefix: &str, url: &str) -> UpstreamRoute {
        let (loaded, _) = crate::config::load_str(
            &format!(
                "[server]\npublic_url = \"https://auth.example.com\"\n\
                 [upstream]\nurl = \"{url}\"\n\
                 [provider]\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
                 [session]\nsecret = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n"
            ),
            &[],
        )
        .expect("config");
        UpstreamRoute {
            host: host.map(str::to_string),
            path_prefix: prefix.to_string(),
            upstream: loaded.upstream,
        }
    }

    fn table() -> Upstreams {
        Upstreams::new(
            &[
                config(None, "", "http://any"),
                config(Some("*.example.com"), "", "http://wild"),
                config(Some("app.example.com"), "", "http://app"),
                config(Some("app.example.com"), "/api", "http://api"),
            ],
            false,
        )
        .expect("routes")
    }

    fn picked(u: &Upstreams, host: Option<&str>, path: &str) -> Option<String> {
        u.pick(host, path).map(|r| r.config.url.to_string())
    }

    #[test]
    fn the_most_specific_host_then_the_longest_prefix_wins() {
        let u = table();
        assert_eq!(
            picked(&u, Some("app.example.com"), "/api/x").as_deref(),
            Some("http://api/")
        );
        assert_eq!(
            picked(&u, Some("app.example.com"), "/api").as_deref(),
            Some("http://api/")
        );
        assert_eq!(
            picked(&u, Some("app.example.com"), "/apix").as_deref(),
            Some("http://app/")
        );
        assert_eq!(
            picked(&u, Some("b.example.com"), "/api/x").as_deref(),
            Some("http://wild/")
        );
        assert_eq!(
            picked(&u, Some("a.b.example.com"), "/").as_deref(),
            Some("http://any/")
        );
        assert_eq!(picked(&u, None, "/").as_deref(), Some("http://any/"));
    }

    #[test]
    fn a_host_no_route_lists_has_no_upstream() {
        let u = Upstreams::new(&[config(Some("app.example.com"), "", "http://app")], false)
            .expect("routes");
        assert!(u.by_host());
        assert_eq!(picked(&u, Some("other.example.com"), "/"), None);
        assert_eq!(picked(&u, None, "/"), None);
        let u = Upstreams::new(
            &[config(Some("app.example.com"), "/api", "http://app")],
            true,
        )
        .expect("routes");
        assert!(u.pick(Some("app.example.com"), "/API/v1").is_some());
        assert!(u.pick(Some("app.example.com"), "/").is_none());
        let t = table();
        // `;params` on the last segment: both readings under `/api`.
        assert_eq!(
            picked(&t, Some("app.example.com"), "/api/y;jsessionid=1").as_deref(),
            Some("http://api/")
        );
        // `/api;x/y` is `/api/y` to Tomcat-style servers but not under
        // `/api` as written: the readings part ways, neither is chosen.
        assert_eq!(picked(&t, Some("app.example.com"), "/api;x/y"), None);
    }
}
