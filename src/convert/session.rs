//! `[session]` and `[session.redis]`: the cookie and where sessions live.

use super::doc::{human, list, q, Section};
use super::{ConvertError, Ctx};
use crate::config::{decode_key, MIN_SECRET_BYTES};

pub(super) fn map(cx: &mut Ctx) -> Result<(), ConvertError> {
    secret(cx);
    cookie(cx)?;
    lifetime(cx)?;
    store(cx)?;
    Ok(())
}

/// What stands in for a session secret tollgate cannot use: not base64, so
/// tollgate refuses to start until it is replaced.
const SECRET_PLACEHOLDER: &str = "<output of `tollgate generate-secret`>";

/// `session.secret` / `secret_file`. A secret is carried only when it is
/// base64 of at least 32 bytes; anything weaker becomes a placeholder.
fn secret(cx: &mut Ctx) {
    let placeholder = |cx: &mut Ctx, why: &str| {
        cx.doc
            .review(Section::Session, "secret", q(SECRET_PLACEHOLDER), why);
    };
    let file = cx.text("cookie_secret_file");
    if let Some(f) = &file {
        cx.doc.review(
            Section::Session,
            "secret_file",
            q(f),
            "the file must hold base64 of at least 32 random bytes (`tollgate generate-secret`), not oauth2-proxy's raw bytes",
        );
        cx.changed(
            "cookie_secret_file",
            "tollgate reads base64 of at least 32 random bytes from the file, where oauth2-proxy read 16, 24 or 32 raw bytes: fill it with the output of `tollgate generate-secret`",
        );
    }
    match (cx.text("cookie_secret"), file.is_some()) {
        (Some(_), true) => cx.changed(
            "cookie_secret",
            "not carried: cookie_secret_file is set and tollgate takes one of the two",
        ),
        (Some(secret), false) => {
            let strong = decode_key(&secret).is_some_and(|k| k.len() >= MIN_SECRET_BYTES);
            if strong {
                cx.doc.set(Section::Session, "secret", q(&secret));
                cx.mapped("cookie_secret");
            } else {
                placeholder(cx, "replace with the output of `tollgate generate-secret` (oauth2-proxy's secret was too short for tollgate)");
                cx.changed(
                    "cookie_secret",
                    "not carried: tollgate needs base64 of at least 32 random bytes, and this secret is shorter (oauth2-proxy accepts 16, 24 or 32 bytes, raw or base64); a placeholder was written: replace it with the output of `tollgate generate-secret`",
                );
            }
        }
        (None, false) => {
            placeholder(cx, "required: the output of `tollgate generate-secret`");
            cx.changed(
                "cookie_secret",
                "not set (oauth2-proxy requires it): a placeholder was written; replace it with the output of `tollgate generate-secret`",
            );
        }
        (None, true) => {}
    }
}

/// The cookie's name and attributes.
fn cookie(cx: &mut Ctx) -> Result<(), ConvertError> {
    if let Some(name) = cx.text("cookie_name") {
        let ok = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if ok {
            cx.doc.set(Section::Session, "cookie_name", q(&name));
            cx.mapped("cookie_name");
        } else {
            cx.unmapped(
                "cookie_name",
                "tollgate's cookie names use letters, digits, `_`, `-` and `.` only; the default _tollgate stays",
            );
        }
    }
    let domains = cx.list("cookie_domains");
    if let Some(first) = domains.first() {
        cx.doc.set(Section::Session, "domain", q(first));
        if domains.len() == 1 {
            cx.mapped("cookie_domains");
        } else {
            cx.changed(
                "cookie_domains",
                "tollgate sets one cookie domain, the first; oauth2-proxy picked the longest one matching each request's host",
            );
        }
    }
    if let Some(path) = cx.text("cookie_path") {
        cx.doc.set(Section::Session, "path", q(&path));
        cx.mapped("cookie_path");
    }
    if let Some(secure) = cx.flag("cookie_secure")? {
        cx.doc.set(Section::Session, "secure", secure.to_string());
        cx.mapped("cookie_secure");
    }
    match cx.text("cookie_samesite").map(|s| s.to_ascii_lowercase()) {
        Some(s) if matches!(s.as_str(), "lax" | "strict" | "none") => {
            cx.doc.set(Section::Session, "same_site", q(&s));
            cx.mapped("cookie_samesite");
        }
        Some(_) => cx.unmapped(
            "cookie_samesite",
            "tollgate's session.same_site is \"lax\", \"strict\" or \"none\"; the default \"lax\" stays",
        ),
        None => {}
    }
    if let Some(ms) = cx.duration("cookie_refresh")? {
        let why = if ms == 0 {
            "tollgate refreshes the access token anyway, when it is about to expire (session.refresh_before, 60s by default); there is nothing to set"
        } else {
            "tollgate refreshes the access token when it is about to expire (session.refresh_before, 60s by default), not a fixed time after the last refresh; there is nothing to set"
        };
        cx.changed("cookie_refresh", why);
    }
    Ok(())
}

/// `session.lifetime`, from `cookie_expire`.
fn lifetime(cx: &mut Ctx) -> Result<(), ConvertError> {
    match cx.duration("cookie_expire")? {
        None => cx.doc.hint(
            Section::Session,
            "lifetime",
            q("168h"),
            "oauth2-proxy's default cookie_expire; tollgate's default is 12h",
        ),
        Some(0) => cx.changed(
            "cookie_expire",
            "0 (a browser-session cookie) has no tollgate form: sessions always have a lifetime; session.lifetime keeps its default, 12h",
        ),
        Some(ms) if ms < 60_000 => {
            cx.doc.set(Section::Session, "lifetime", q("1m"));
            cx.changed("cookie_expire", "raised to 1m, tollgate's shortest session.lifetime");
        }
        Some(ms) => {
            cx.doc.set(Section::Session, "lifetime", q(&human(ms)));
            cx.mapped("cookie_expire");
        }
    }
    Ok(())
}

/// Every `redis_*` option.
const REDIS_OPTIONS: [&str; 12] = [
    "redis_connection_url",
    "redis_username",
    "redis_password",
    "redis_use_sentinel",
    "redis_sentinel_password",
    "redis_sentinel_master_name",
    "redis_sentinel_connection_urls",
    "redis_use_cluster",
    "redis_cluster_connection_urls",
    "redis_ca_path",
    "redis_insecure_skip_tls_verify",
    "redis_connection_idle_timeout",
];

/// `session.store`.
fn store(cx: &mut Ctx) -> Result<(), ConvertError> {
    match cx
        .text("session_store_type")
        .map(|s| s.to_ascii_lowercase())
    {
        Some(s) if s == "redis" => {
            cx.doc.set(Section::Session, "store", q("redis"));
            cx.mapped("session_store_type");
            return redis(cx);
        }
        Some(s) if s == "cookie" => cx.mapped("session_store_type"),
        Some(_) => cx.unmapped(
            "session_store_type",
            "tollgate keeps sessions in the cookie or in Redis: the cookie store stays",
        ),
        None => {}
    }
    for option in REDIS_OPTIONS {
        if cx.given(option) {
            cx.unmapped(option, "unused: session_store_type is not redis");
        }
    }
    Ok(())
}

/// `[session.redis]`.
fn redis(cx: &mut Ctx) -> Result<(), ConvertError> {
    let sentinel = cx.flag("redis_use_sentinel")?;
    let cluster = cx.flag("redis_use_cluster")?;
    if let Some(url) = cx.text("redis_connection_url") {
        cx.doc.set(Section::SessionRedis, "url", q(&url));
        cx.mapped("redis_connection_url");
    }
    if sentinel == Some(true) {
        sentinel_mode(cx, cluster == Some(true));
    } else if cluster == Some(true) {
        cluster_mode(cx);
    } else {
        for option in ["redis_use_sentinel", "redis_use_cluster"] {
            if cx.given(option) {
                cx.mapped(option);
            }
        }
    }
    if let Some(user) = cx.text("redis_username") {
        cx.doc.set(Section::SessionRedis, "username", q(&user));
        cx.mapped("redis_username");
    }
    if let Some(password) = cx.text("redis_password") {
        cx.doc.set(Section::SessionRedis, "password", q(&password));
        cx.mapped("redis_password");
    }
    Ok(())
}

/// Sentinel mode.
fn sentinel_mode(cx: &mut Ctx, also_cluster: bool) {
    cx.doc.set(Section::SessionRedis, "mode", q("sentinel"));
    cx.mapped("redis_use_sentinel");
    if also_cluster {
        for option in ["redis_use_cluster", "redis_cluster_connection_urls"] {
            if cx.given(option) {
                cx.unmapped(
                    option,
                    "oauth2-proxy refuses sentinel and cluster together; sentinel mode was kept",
                );
            }
        }
    }
    if let Some(master) = cx.text("redis_sentinel_master_name") {
        cx.doc
            .set(Section::SessionRedis, "sentinel_master", q(&master));
        cx.mapped("redis_sentinel_master_name");
    }
    let mut nodes = cx.list("redis_sentinel_connection_urls");
    if let Some(password) = cx.text("redis_sentinel_password") {
        // tollgate reads the sentinels' own credentials from their URLs.
        let mut all = true;
        for node in &mut nodes {
            let with_password = url::Url::parse(node).ok().and_then(|mut u| {
                u.set_password(Some(&password)).ok()?;
                Some(u.to_string())
            });
            match with_password {
                Some(n) => *node = n,
                None => all = false,
            }
        }
        if all {
            cx.changed("redis_sentinel_password", "written into each sentinel URL in session.redis.nodes: tollgate reads the sentinels' credentials from their URLs");
        } else {
            cx.unmapped("redis_sentinel_password", "tollgate reads the sentinels' credentials from their URLs (redis://:password@host:26379): put it there");
        }
    }
    write_nodes(cx, "redis_sentinel_connection_urls", &nodes);
}

/// Cluster mode.
fn cluster_mode(cx: &mut Ctx) {
    cx.doc.set(Section::SessionRedis, "mode", q("cluster"));
    cx.mapped("redis_use_cluster");
    for option in [
        "redis_sentinel_master_name",
        "redis_sentinel_connection_urls",
        "redis_sentinel_password",
    ] {
        if cx.given(option) {
            cx.unmapped(
                option,
                "only used with redis_use_sentinel, as in oauth2-proxy",
            );
        }
    }
    let nodes = cx.list("redis_cluster_connection_urls");
    write_nodes(cx, "redis_cluster_connection_urls", &nodes);
}

fn write_nodes(cx: &mut Ctx, option: &str, nodes: &[String]) {
    if nodes.is_empty() {
        cx.doc.placeholder(
            Section::SessionRedis,
            "nodes",
            list(&["redis://redis-1:6379"]),
            "required in this mode: the node URLs",
        );
    } else {
        cx.doc.set(Section::SessionRedis, "nodes", list(nodes));
        cx.mapped(option);
    }
}
