//! `[upstream]`: where requests go, and what goes with them.

use super::doc::{human, q, Section};
use super::{ConvertError, Ctx};

pub(super) fn map(cx: &mut Ctx) -> Result<(), ConvertError> {
    urls(cx);
    headers(cx)?;
    if let Some(ms) = cx.duration("upstream_timeout")? {
        if ms == 0 {
            cx.unmapped(
                "upstream_timeout",
                "0 (no limit) has no tollgate form: upstream.timeout stays at its default, 60s",
            );
        } else {
            cx.doc.set(Section::Upstream, "timeout", q(&human(ms)));
            cx.mapped("upstream_timeout");
        }
    }
    if cx.given("flush_interval") {
        cx.changed(
            "flush_interval",
            "tollgate passes response bodies on as they arrive; there is nothing to set",
        );
    }
    Ok(())
}

/// One entry of `upstreams`.
enum Upstream {
    /// An http(s) server: tollgate's `upstream.url`, and the path
    /// oauth2-proxy routed to it.
    Http {
        url: String,
        path: String,
    },
    Other(&'static str),
}

fn classify(raw: &str) -> Upstream {
    let Ok(mut u) = url::Url::parse(raw) else {
        return Upstream::Other("not a URL");
    };
    match u.scheme() {
        "http" | "https" if u.host().is_some() => {
            let path = u.path().to_string();
            // oauth2-proxy proxies to the server's root whatever the path
            // (the path only chose the upstream), so the URL loses it.
            u.set_path("");
            u.set_query(None);
            u.set_fragment(None);
            Upstream::Http {
                url: u.as_str().trim_end_matches('/').to_string(),
                path,
            }
        }
        "static" => Upstream::Other(
            "static:// responses are not supported; for forward-auth (/oauth2/auth) tollgate still needs upstream.url (docs/ingress.md)",
        ),
        "file" => Upstream::Other("file:// is not supported: tollgate does not serve files"),
        "unix" => Upstream::Other("unix:// sockets are not supported: tollgate reaches the upstream over TCP"),
        _ => Upstream::Other("not an http(s) URL"),
    }
}

/// `upstream.url`: the first http(s) upstream.
fn urls(cx: &mut Ctx) {
    let all = cx.list("upstreams");
    cx.touch("upstreams");
    let mut chosen: Option<String> = None;
    for (i, raw) in all.iter().enumerate() {
        let option = format!("upstreams[{i}]");
        match classify(raw) {
            Upstream::Http { url, path } if chosen.is_none() => {
                chosen = Some(url);
                if path == "/" || path.is_empty() {
                    cx.mapped(&option);
                } else {
                    cx.changed(
                        &option,
                        "oauth2-proxy sent only the paths under this URL's path to it (a route, not a prefix); tollgate sends every path to upstream.url, so the path was dropped",
                    );
                }
            }
            Upstream::Http { .. } => cx.unmapped(
                &option,
                "tollgate serves one upstream today: only the first http(s) upstream was kept (route by path in a proxy in front, or run one tollgate per upstream)",
            ),
            Upstream::Other(why) => cx.unmapped(&option, why),
        }
    }
    match chosen {
        Some(url) => cx.doc.set(Section::Upstream, "url", q(&url)),
        None => cx.doc.placeholder(
            Section::Upstream,
            "url",
            q("http://127.0.0.1:8080"),
            "required: the application tollgate protects",
        ),
    }
}

/// The headers sent upstream.
fn headers(cx: &mut Ctx) -> Result<(), ConvertError> {
    if let Some(v) = cx.flag("pass_host_header")? {
        cx.doc
            .set(Section::Upstream, "pass_host_header", v.to_string());
        cx.mapped("pass_host_header");
    }
    match cx.flag("pass_access_token")? {
        Some(v) => {
            cx.doc
                .set(Section::Upstream, "pass_access_token", v.to_string());
            cx.mapped("pass_access_token");
        }
        None => cx.doc.note(
            Section::Upstream,
            "pass_access_token",
            "false".into(),
            "oauth2-proxy's default (tollgate's own default is true)",
        ),
    }
    user_headers(cx)?;
    match cx.flag("pass_authorization_header")? {
        Some(true) => {
            let why = "tollgate sends the access token as the Bearer token; oauth2-proxy sent the ID token";
            cx.doc.review(
                Section::Upstream,
                "pass_authorization_header",
                "true".into(),
                why,
            );
            cx.changed("pass_authorization_header", why);
        }
        Some(false) => cx.mapped("pass_authorization_header"),
        None => {}
    }
    if cx.flag("set_xauthrequest")?.is_some() {
        cx.changed(
            "set_xauthrequest",
            "tollgate's /oauth2/auth always answers X-Auth-Request-User, -Email, -Preferred-Username and -Groups (and -Access-Token with upstream.pass_access_token, to server.trusted_proxies only)",
        );
    }
    Ok(())
}

/// `upstream.pass_user_headers`: oauth2-proxy sent the identity headers
/// when `pass_user_headers` or `pass_basic_auth` (both on by default) was.
fn user_headers(cx: &mut Ctx) -> Result<(), ConvertError> {
    let basic = cx.flag("pass_basic_auth")?;
    let user = cx.flag("pass_user_headers")?;
    if basic.is_none() && user.is_none() {
        return Ok(());
    }
    let effective = basic.unwrap_or(true) || user.unwrap_or(true);
    cx.doc.set(
        Section::Upstream,
        "pass_user_headers",
        effective.to_string(),
    );
    match user {
        Some(u) if u == effective => cx.mapped("pass_user_headers"),
        Some(_) => cx.changed(
            "pass_user_headers",
            "kept on: pass_basic_auth (on by default) also sent the identity headers in oauth2-proxy",
        ),
        None => {}
    }
    match basic {
        Some(true) if cx.given("basic_auth_password") => cx.unmapped(
            "pass_basic_auth",
            "tollgate sends no Authorization: Basic upstream; the identity headers follow upstream.pass_user_headers",
        ),
        Some(_) => cx.changed(
            "pass_basic_auth",
            "covered by upstream.pass_user_headers (tollgate sends no Basic credentials)",
        ),
        None => {}
    }
    Ok(())
}
