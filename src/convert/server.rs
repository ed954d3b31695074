//! `[server]`, `[server.tls]` and `[metrics]`.

use std::net::SocketAddr;

use super::doc::{list, q, Section};
use super::{insecure_url, ConvertError, Ctx};

pub(super) fn map(cx: &mut Ctx) -> Result<(), ConvertError> {
    listen(cx);
    public_url(cx);
    proxies(cx)?;
    redirect_domains(cx);
    probes(cx);
    if let Some(prefix) = cx.text("proxy_prefix") {
        if prefix.trim_end_matches('/') == "/oauth2" {
            cx.mapped("proxy_prefix");
        } else {
            cx.unmapped(
                "proxy_prefix",
                "tollgate's endpoints are always under /oauth2/ (update links and the redirect URI registered at the provider)",
            );
        }
    }
    Ok(())
}

/// oauth2-proxy's `[http://]host:port` as a socket address. `Ok((addr,
/// Some(why)))` when it had to be changed.
pub(super) fn listen_addr(raw: &str) -> Result<(String, Option<&'static str>), &'static str> {
    let lower = raw.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .unwrap_or(&lower)
        .trim_end_matches('/');
    if rest.starts_with("unix:") || rest.starts_with("fd:") {
        return Err("tollgate listens on a TCP address only (no Unix or systemd socket)");
    }
    if rest.is_empty() || rest == "-" {
        return Err("an empty address turned this listener off; tollgate has no such switch");
    }
    if let Some(port) = rest.strip_prefix(':') {
        if port.parse::<u16>().is_ok() {
            // Go's ":4180" is every interface.
            return Ok((format!("0.0.0.0:{port}"), None));
        }
    }
    if let Some(port) = rest.strip_prefix("localhost:") {
        if port.parse::<u16>().is_ok() {
            return Ok((
                format!("127.0.0.1:{port}"),
                Some("localhost written as 127.0.0.1: tollgate takes an IP address"),
            ));
        }
    }
    if rest.parse::<SocketAddr>().is_ok() {
        return Ok((rest.to_string(), None));
    }
    Err("not an IP address and port such as 0.0.0.0:4180")
}

fn set_listen(cx: &mut Ctx, option: &str, raw: &str) {
    match listen_addr(raw) {
        Ok((addr, None)) => {
            cx.doc.set(Section::Server, "listen", q(&addr));
            cx.mapped(option);
        }
        Ok((addr, Some(why))) => {
            cx.doc.review(Section::Server, "listen", q(&addr), why);
            cx.changed(option, why);
        }
        Err(why) => {
            cx.doc.placeholder(
                Section::Server,
                "listen",
                q("0.0.0.0:4180"),
                "the IP address and port to listen on",
            );
            cx.unmapped(option, why);
        }
    }
}

/// `server.listen` and `[server.tls]`: as oauth2-proxy's legacy options,
/// HTTPS alone when a certificate is set, else plain HTTP.
fn listen(cx: &mut Ctx) {
    let cert = cx.text("tls_cert_file");
    let key = cx.text("tls_key_file");
    if let (Some(cert), Some(key)) = (&cert, &key) {
        cx.doc.set(Section::ServerTls, "cert_file", q(cert));
        cx.doc.set(Section::ServerTls, "key_file", q(key));
        cx.mapped("tls_cert_file");
        cx.mapped("tls_key_file");
        let https = cx.text("https_address").unwrap_or_else(|| ":443".into());
        set_listen(cx, "https_address", &https);
        if cx.given("http_address") {
            cx.changed(
                "http_address",
                "not used: with a TLS certificate oauth2-proxy served HTTPS only on https_address, and tollgate serves HTTPS on server.listen",
            );
        }
    } else {
        for option in ["tls_cert_file", "tls_key_file"] {
            if cx.given(option) {
                cx.unmapped(
                    option,
                    "tls_cert_file and tls_key_file go together ([server.tls] needs both)",
                );
            }
        }
        if cx.given("https_address") {
            cx.unmapped(
                "https_address",
                "unused without tls_cert_file and tls_key_file, as in oauth2-proxy",
            );
        }
        match cx.text("http_address") {
            Some(h) => set_listen(cx, "http_address", &h),
            None => cx.doc.note(
                Section::Server,
                "listen",
                q("127.0.0.1:4180"),
                "oauth2-proxy's default http_address (tollgate's own default is 0.0.0.0:4180)",
            ),
        }
    }
    match cx.text("tls_min_version").as_deref() {
        None => {}
        Some("TLS1.2") => cx.mapped("tls_min_version"),
        Some(_) => cx.changed(
            "tls_min_version",
            "tollgate accepts TLS 1.2 and 1.3; there is no setting",
        ),
    }
}

/// `server.public_url` and `provider.redirect_url`, from `redirect_url`.
fn public_url(cx: &mut Ctx) {
    let placeholder = |cx: &mut Ctx| {
        cx.doc.placeholder(
            Section::Server,
            "public_url",
            q("https://app.example.com"),
            "required: the origin users browse (oauth2-proxy derived it from each request's Host)",
        );
    };
    let Some(raw) = cx.text("redirect_url") else {
        placeholder(cx);
        return;
    };
    let parsed = url::Url::parse(&raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(u) = parsed else {
        placeholder(cx);
        cx.unmapped(
            "redirect_url",
            "not an absolute http(s) URL: tollgate builds the redirect URI from server.public_url (left to fill in)",
        );
        return;
    };
    let origin = u.origin().ascii_serialization();
    let insecure = insecure_url(&raw);
    match insecure {
        Some(why) => cx
            .doc
            .review(Section::Server, "public_url", q(&origin), why),
        None => cx.doc.set(Section::Server, "public_url", q(&origin)),
    }
    if u.path() != "/oauth2/callback" {
        cx.changed(
            "redirect_url",
            "tollgate serves the callback only at /oauth2/callback: register server.public_url + \"/oauth2/callback\" at the provider",
        );
        return;
    }
    if u.query().is_none() && u.fragment().is_none() {
        match insecure {
            Some(why) => cx
                .doc
                .review(Section::Provider, "redirect_url", q(&raw), why),
            None => cx.doc.set(Section::Provider, "redirect_url", q(&raw)),
        }
    }
    match insecure {
        Some(why) => cx.changed("redirect_url", why),
        None => cx.mapped("redirect_url"),
    }
}

/// `server.trusted_proxies`, from `reverse_proxy` and `trusted_proxy_ips`.
fn proxies(cx: &mut Ctx) -> Result<(), ConvertError> {
    let reverse = cx.flag("reverse_proxy")?;
    let trusted = cx.list("trusted_proxy_ips");
    if reverse != Some(true) {
        if reverse.is_some() {
            cx.mapped("reverse_proxy");
        }
        if !trusted.is_empty() {
            cx.unmapped(
                "trusted_proxy_ips",
                "unused without reverse_proxy = true, as in oauth2-proxy",
            );
        }
        return Ok(());
    }
    if trusted.is_empty() {
        cx.doc.placeholder(
            Section::Server,
            "trusted_proxies",
            list(&["10.0.0.0/8"]),
            "the addresses (or CIDR ranges) of the proxies in front of tollgate, whose X-Forwarded-* headers it may believe",
        );
        cx.changed(
            "reverse_proxy",
            "tollgate believes forwarding headers only from the peers in server.trusted_proxies, where oauth2-proxy believed every peer: list your proxies there (a commented placeholder was written)",
        );
    } else {
        cx.doc
            .set(Section::Server, "trusted_proxies", list(&trusted));
        cx.mapped("reverse_proxy");
        cx.mapped("trusted_proxy_ips");
    }
    Ok(())
}

/// `server.allowed_redirect_domains`, from `whitelist_domains`.
fn redirect_domains(cx: &mut Ctx) {
    let entries = cx.list("whitelist_domains");
    if entries.is_empty() {
        return;
    }
    let mut out: Vec<String> = Vec::new();
    let mut any_port = false;
    for entry in &entries {
        let entry = entry.to_ascii_lowercase();
        let (host, port) = match entry.rsplit_once(':') {
            // A bare IPv6 address: no port.
            Some((h, _)) if h.contains(':') && !h.ends_with(']') => (entry.as_str(), None),
            Some((h, "*")) => {
                any_port = true;
                (h, None)
            }
            Some((h, p)) => (h, Some(p)),
            None => (entry.as_str(), None),
        };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        // oauth2-proxy's ".example.com" and "*.example.com" admit
        // example.com itself too; tollgate's admit subdomains only.
        let wildcard = host.strip_prefix("*.").or_else(|| host.strip_prefix('.'));
        let hosts = match wildcard {
            Some(apex) => vec![format!(".{apex}{port}"), format!("{apex}{port}")],
            None => vec![format!("{host}{port}")],
        };
        for h in hosts {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    cx.doc
        .set(Section::Server, "allowed_redirect_domains", list(&out));
    if any_port {
        cx.doc.review(
            Section::Server,
            "allowed_redirect_domains",
            list(&out),
            "\":*\" (any port) has no tollgate form: those hosts are admitted on the default port only",
        );
        cx.changed(
            "whitelist_domains",
            "an entry with \":*\" (any port) admits the default port only in tollgate: add host:port entries for the others",
        );
    } else {
        cx.mapped("whitelist_domains");
    }
}

/// `server.health_path` and `ready_path`: oauth2-proxy's paths are kept,
/// so probes that call /ping and /ready keep working.
fn probes(cx: &mut Ctx) {
    let probes = [
        ("ping_path", "health_path", "/ping", "/healthz"),
        ("ready_path", "ready_path", "/ready", "/readyz"),
    ];
    for (option, key, theirs, ours) in probes {
        let given = cx.text(option);
        let path = given.clone().unwrap_or_else(|| theirs.to_string());
        let plain = path.starts_with('/')
            && !path.starts_with("/oauth2/")
            && !path.contains(['?', '#', '%', ' ']);
        if !plain {
            cx.unmapped(
                option,
                "tollgate's probe paths are plain absolute paths outside /oauth2/",
            );
            continue;
        }
        if given.is_some() {
            cx.doc.set(Section::Server, key, q(&path));
            cx.mapped(option);
        } else {
            let note = format!("oauth2-proxy's default {option} (tollgate's own is {ours})");
            cx.doc.note(Section::Server, key, q(&path), &note);
        }
    }
}

/// `[metrics]`, and the request-id header.
pub(super) fn telemetry(cx: &mut Ctx) {
    if let Some(raw) = cx.text("metrics_address") {
        match listen_addr(&raw) {
            Ok((addr, why)) => {
                cx.doc.set(Section::Metrics, "listen", q(&addr));
                match why {
                    Some(why) => cx.changed("metrics_address", why),
                    None => cx.mapped("metrics_address"),
                }
            }
            Err(why) => cx.unmapped("metrics_address", why),
        }
    }
    if let Some(header) = cx.text("request_id_header") {
        if header.eq_ignore_ascii_case("x-request-id") {
            cx.mapped("request_id_header");
        } else {
            cx.unmapped(
                "request_id_header",
                "tollgate reads and sends the request id as X-Request-Id only",
            );
        }
    }
}
