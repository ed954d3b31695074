//! Header hygiene between the client and the upstream.
//!
//! Order matters and is fixed in [`prepare_request`]: hop-by-hop headers go
//! first (so `Connection: X-Forwarded-User` cannot remove what we add), then
//! every client-sent copy of an identity header, in any case and with `_` for
//! `-`, then our own cookies; only then are `X-Forwarded-*` and identity
//! headers added.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::settings::UpstreamConfig;
use crate::session::cookies::cookie_pairs;
use crate::session::{Session, SessionCookies};

/// Hop-by-hop headers, RFC 9110 §7.6.1, plus the legacy ones proxies still
/// see (`Keep-Alive`, `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Headers that `Connection` may not nominate for removal: the request's
/// own `Host`, its framing, and the request id tollgate logs. (Everything
/// else tollgate sets is added after the hop-by-hop strip.)
const NOT_HOP_BY_HOP: [HeaderName; 3] = [
    header::HOST,
    header::CONTENT_LENGTH,
    HeaderName::from_static("x-request-id"),
];

/// Headers a client must never be able to set on the upstream request:
/// identity (ours and the oauth2-proxy family), forwarding information we
/// compute ourselves (RFC 7239 `Forwarded` and every de-facto `X-Forwarded-*`
/// / `X-Original-*` that frameworks read: Spring, Werkzeug's ProxyFix,
/// ASP.NET, Rails, Express), client-address headers CDNs set, and
/// URL/method overrides some frameworks honour.
const ALWAYS_STRIPPED: [&str; 38] = [
    "x-forwarded-user",
    "x-forwarded-provider",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-forwarded-id-token",
    "x-auth-request-user",
    "x-auth-request-provider",
    "x-auth-request-email",
    "x-auth-request-preferred-username",
    "x-auth-request-groups",
    "x-auth-request-access-token",
    "gap-auth",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-forwarded-method",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-original-host",
    "x-rewrite-url",
    "x-http-method-override",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-cluster-client-ip",
    "x-scheme",
    "front-end-https",
];

/// `a` equals `b` ignoring ASCII case and treating `_` as `-`.
fn same_header(a: &str, b: &str) -> bool {
    let norm = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// Names that [`prepare_request`] removes from every request.
#[derive(Debug, Clone)]
pub struct StripList {
    names: Vec<String>,
}

impl StripList {
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut names: Vec<String> = ALWAYS_STRIPPED.iter().map(|s| s.to_string()).collect();
        let h = &config.headers;
        for n in [
            &h.user,
            &h.email,
            &h.preferred_username,
            &h.groups,
            &h.access_token,
        ] {
            names.push(n.as_str().to_string());
        }
        for extra in [
            "x-http-method",
            "x-method-override",
            super::assertion::HEADER,
        ] {
            names.push(extra.to_string());
        }
        names.extend(
            config
                .claim_headers
                .iter()
                .map(|(h, _)| h.as_str().to_string()),
        );
        if config.pass_authorization_header {
            names.push("authorization".to_string());
        }
        names.sort();
        names.dedup();
        Self { names }
    }

    fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| same_header(n, name))
    }
}

/// Whether a request asks to switch protocols (RFC 9110 §7.8).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    lists_token(headers, header::CONNECTION, token)
}

/// Whether the comma-separated header `name` lists `token`.
fn lists_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers and those named in `Connection` (RFC 9110
/// §7.6.1), except `Host`, `Content-Length` and `X-Request-Id`; keeps `Upgrade` (with
/// `Connection: upgrade`) when the exchange upgrades.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !NOT_HOP_BY_HOP.contains(n))
        .collect();
    for n in named {
        if !(upgrade && n == header::UPGRADE) {
            headers.remove(n);
        }
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// What the upstream learns about the client.
pub struct Forwarding<'a> {
    pub peer: IpAddr,
    /// The peer is a trusted proxy: extend its `X-Forwarded-*` instead of
    /// replacing them.
    pub trusted: bool,
    pub proto: &'static str,
    /// The port browsers reach tollgate on (`server.public_url`).
    pub port: u16,
    pub session: Option<&'a Session>,
    /// A signed identity assertion for `X-Tollgate-Assertion`.
    pub assertion: Option<&'a str>,
}

/// Rewrites a request's headers for the upstream (see the module docs).
pub fn prepare_request(
    headers: &mut HeaderMap,
    upgrade: bool,
    strip: &StripList,
    cookies: &SessionCookies,
    config: &UpstreamConfig,
    fwd: &Forwarding<'_>,
) {
    // `TE: trailers` is the one TE HTTP/2 allows (RFC 9113 §8.2.2), and
    // gRPC servers require it: kept for an HTTP/2 upstream.
    let te_trailers = config.http2 && lists_token(headers, header::TE, "trailers");
    strip_hop_by_hop(headers, upgrade);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }

    // A trusted proxy's forwarding headers describe the real client; keep
    // them (exact spelling only) before the strip below removes the rest.
    let from_proxy = fwd.trusted.then(|| {
        let get = |n: &str| headers.get(n).cloned();
        (
            get("x-forwarded-for"),
            get("x-forwarded-proto"),
            get("x-forwarded-host"),
            get("x-real-ip"),
        )
    });
    let proxy_port = fwd
        .trusted
        .then(|| headers.get("x-forwarded-port").cloned())
        .flatten();
    let proxy_forwarded: Vec<HeaderValue> = if fwd.trusted {
        headers.get_all(header::FORWARDED).iter().cloned().collect()
    } else {
        Vec::new()
    };
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| strip.contains(k.as_str()))
        .cloned()
        .collect();
    for n in spoofed {
        headers.remove(n);
    }
    strip_own_cookies(headers, cookies);

    // X-Forwarded-For is ours alone unless a trusted proxy started it.
    let peer = fwd.peer.to_string();
    let (xff, proto, host, real_ip) = match from_proxy {
        Some((xff, proto, host, real_ip)) => (
            xff.and_then(|v| v.to_str().ok().map(|chain| format!("{chain}, {peer}")))
                .unwrap_or_else(|| peer.clone()),
            proto,
            host,
            real_ip,
        ),
        None => (peer.clone(), None, None, None),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Some(v) = real_ip.or_else(|| HeaderValue::from_str(&peer).ok()) {
        headers.insert(HeaderName::from_static("x-real-ip"), v);
    }
    let proto = proto.unwrap_or(HeaderValue::from_static(fwd.proto));
    let host = host.or_else(|| headers.get(header::HOST).cloned());
    let forwarded = forwarded_element(fwd.peer, host.as_ref(), &proto);
    headers.insert(HeaderName::from_static("x-forwarded-proto"), proto);
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-port"),
        proxy_port.unwrap_or_else(|| HeaderValue::from(fwd.port)),
    );
    // RFC 7239: a trusted proxy's elements, then ours.
    for v in proxy_forwarded {
        headers.append(header::FORWARDED, v);
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.append(header::FORWARDED, v);
    }

    if let Some(s) = fwd.session {
        add_identity(headers, s, config);
    }
    if let Some(a) = fwd.assertion.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(HeaderName::from_static(super::assertion::HEADER), a);
    }
}

/// tollgate's RFC 7239 element: `for` (an IPv6 address bracketed and
/// quoted, §6), `host` (quoted: it may hold `:`), `proto`. A host that
/// cannot be a quoted-string is left out.
fn forwarded_element(peer: IpAddr, host: Option<&HeaderValue>, proto: &HeaderValue) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(96);
    // Writing to a String cannot fail.
    let _ = match peer {
        IpAddr::V4(v4) => write!(out, "for={v4}"),
        IpAddr::V6(v6) => write!(out, "for=\"[{v6}]\""),
    };
    let host = host
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['"', '\\']));
    if let Some(h) = host {
        let _ = write!(out, ";host=\"{h}\"");
    }
    if let Ok(p) = proto.to_str() {
        if p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https") {
            out.push_str(";proto=");
            out.push_str(&p.to_ascii_lowercase());
        }
    }
    out
}

/// Adds the identity headers. Values that are not valid header values (a
/// claim holding CR or LF) are left out rather than sent.
fn add_identity(headers: &mut HeaderMap, s: &Session, config: &UpstreamConfig) {
    let h = &config.headers;
    let mut set = |name: &HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(name.clone(), v);
        } else {
            tracing::warn!(header = %name, "identity claim is not a valid header value; header not sent");
        }
    };
    if config.pass_user_headers {
        set(&h.user, &s.sub);
        if let Some(e) = &s.email {
            set(&h.email, e);
        }
        if let Some(u) = &s.preferred_username {
            set(&h.preferred_username, u);
        }
        if !s.groups.is_empty() {
            set(&h.groups, &s.groups.join(","));
        }
        if config.pass_provider {
            set(
                &HeaderName::from_static("x-forwarded-provider"),
                s.provider_id(),
            );
        }
    }
    if config.pass_access_token {
        set(&h.access_token, &s.access_token);
    }
    if config.pass_authorization_header {
        set(
            &header::AUTHORIZATION,
            &format!("Bearer {}", s.access_token),
        );
    }
    for (name, claim) in &config.claim_headers {
        match s.claims.get(claim) {
            Some(serde_json::Value::String(v)) => set(name, v),
            Some(serde_json::Value::Array(items)) => {
                let joined: Vec<String> = items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect();
                set(name, &joined.join(","));
            }
            Some(serde_json::Value::Null) | None => {}
            Some(other) => set(name, &other.to_string()),
        }
    }
}

/// Removes tollgate's own cookies from the `Cookie` header(s), keeping the
/// application's cookies byte for byte, non-UTF-8 ones included.
///
/// Works on bytes, so no cookie can hide the header from it. Several
/// `Cookie` headers (HTTP/2 sends one per cookie, RFC 9113 §8.2.3) become
/// one, joined with `; `, as an HTTP/1.1 upstream expects (RFC 6265 §5.4).
pub fn strip_own_cookies(headers: &mut HeaderMap, cookies: &SessionCookies) {
    let mut kept: Vec<&[u8]> = Vec::new();
    let (mut values, mut ours) = (0, false);
    for v in headers.get_all(header::COOKIE) {
        values += 1;
        for pair in cookie_pairs(v.as_bytes()).map(<[u8]>::trim_ascii) {
            if pair.is_empty() {
                continue;
            }
            if is_own_pair(pair, cookies) {
                ours = true;
            } else {
                kept.push(pair);
            }
        }
    }
    if values == 0 || (values == 1 && !ours) {
        return;
    }
    // Each pair came from a valid header value, and so does "; ".
    let joined = HeaderValue::from_bytes(&kept.join(&b"; "[..])).ok();
    headers.remove(header::COOKIE);
    if let Some(v) = joined.filter(|v| !v.is_empty()) {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether `name=value` (trimmed) names one of tollgate's cookies. A name
/// that is not UTF-8 never does.
fn is_own_pair(pair: &[u8], cookies: &SessionCookies) -> bool {
    let name = pair
        .split(|&b| b == b'=')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    std::str::from_utf8(name).is_ok_and(|n| cookies.is_ours(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::settings::IdentityHeaders;
    use crate::session::settings::SessionConfig;
    use std::time::Duration;

    fn upstream_config() -> UpstreamConfig {
        UpstreamConfig {
            url: url::Url::parse("http://127.0.0.1:1").expect("url"),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            pass_host_header: true,
            case_insensitive_paths: false,
            pass_user_headers: true,
            pass_provider: false,
            pass_access_token: true,
            pass_authorization_header: false,
            claim_headers: vec![(HeaderName::from_static("x-tenant"), "org.id".into())],
            assertion: None,
            ca_file: None,
            client_cert: None,
            max_in_flight: None,
            queue_timeout: std::time::Duration::ZERO,
            http2: false,
            headers: IdentityHeaders {
                user: HeaderName::from_static("x-forwarded-user"),
                email: HeaderName::from_static("x-forwarded-email"),
                preferred_username: HeaderName::from_static("x-forwarded-preferred-username"),
                groups: HeaderName::from_static("x-forwarded-groups"),
                access_token: HeaderName::from_static("x-forwarded-access-token"),
            },
        }
    }

    fn cookies() -> SessionCookies {
        SessionCookies::new(&SessionConfig::cookie_store(
            vec![],
            "_tollgate",
            Duration::from_secs(60),
            true,
        ))
    }

    fn session() -> Session {
        Session {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            preferred_username: Some("alice".into()),
            groups: vec!["dev".into(), "ops".into()],
            access_token: "AT".into(),
            refresh_token: Some("RT".into()),
            id_token: Some("IDT".into()),
            expires_at: i64::MAX,
            ..Session::default()
        }
    }

    fn run(pairs: &[(&str, &str)], session: Option<&Session>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v.as_bytes()).expect("value"),
            );
        }
        let cfg = upstream_config();
        let fwd = Forwarding {
            peer: "10.1.2.3".parse().expect("ip"),
            trusted: false,
            proto: "https",
            port: 443,
            session,
            assertion: None,
        };
        let upgrade = is_upgrade(&h);
        prepare_request(
            &mut h,
            upgrade,
            &StripList::new(&cfg),
            &cookies(),
            &cfg,
            &fwd,
        );
        h
    }

    #[test]
    fn spoofed_identity_headers_in_any_spelling_are_replaced() {
        let s = session();
        let h = run(
            &[
                ("X-Forwarded-User", "admin"),
                ("x_forwarded_user", "admin"),
                ("X-Forwarded_Email", "admin@corp.test"),
                ("X-Auth_Request_User", "admin"),
                ("x-forwarded-groups", "admins"),
                ("X-Forwarded-Access-Token", "forged"),
                ("X-Forwarded-For", "1.2.3.4"),
                ("X_Forwarded_For", "1.2.3.4"),
                ("X-Forwarded_Proto", "http"),
                ("X_Forwarded_Host", "evil.test"),
                ("X-Original-URL", "/admin"),
            ],
            Some(&s),
        );
        assert_eq!(
            h.get_all("x-forwarded-user").iter().collect::<Vec<_>>(),
            vec!["alice"]
        );
        assert_eq!(
            h.get_all("x-forwarded-email").iter().collect::<Vec<_>>(),
            vec!["alice@example.com"]
        );
        assert_eq!(h.get("x-forwarded-groups").expect("groups"), "dev,ops");
        assert_eq!(h.get("x-forwarded-access-token").expect("token"), "AT");
        assert_eq!(h.get("x-forwarded-for").expect("xff"), "10.1.2.3");
        for k in h.keys() {
            assert!(!k.as_str().contains('_'), "underscore header survived: {k}");
        }
        assert!(h.get("x-original-url").is_none());
        assert!(h.get("x-auth-request-user").is_none());
    }

    #[test]
    fn without_session_identity_headers_are_only_removed() {
        let h = run(
            &[("X-Forwarded-User", "admin"), ("X-Forwarded-Email", "a@b")],
            None,
        );
        assert!(h.get("x-forwarded-user").is_none() && h.get("x-forwarded-email").is_none());
    }

    #[test]
    fn connection_cannot_remove_injected_headers() {
        let s = session();
        let h = run(
            &[
                ("Connection", "close, X-Forwarded-User, X-Forwarded-Email"),
                ("Keep-Alive", "5"),
            ],
            Some(&s),
        );
        assert_eq!(h.get("x-forwarded-user").expect("user"), "alice");
        assert_eq!(
            h.get("x-forwarded-email").expect("email"),
            "alice@example.com"
        );
        assert!(h.get("connection").is_none() && h.get("keep-alive").is_none());
    }

    #[test]
    fn own_cookies_are_removed_others_kept() {
        let h = run(&[("Cookie", "other=1; _tollgate=abc; _tollgate_0=x; _tollgate_login_abcdefghijklmnop=y; theme=dark")], None);
        assert_eq!(h.get("cookie").expect("cookie"), "other=1; theme=dark");
        let h = run(&[("Cookie", "_tollgate=abc")], None);
        assert!(h.get("cookie").is_none());
    }

    #[test]
    fn cookies_are_stripped_from_bytes_and_joined_into_one_header() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_bytes(b"lang=caf\xe9; _tollgate=abc").expect("value"),
        );
        h.append("cookie", HeaderValue::from_static("_tollgate_1=x"));
        h.append("cookie", HeaderValue::from_static("theme=dark"));
        strip_own_cookies(&mut h, &cookies());
        let all: Vec<&[u8]> = h
            .get_all("cookie")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(all, vec![&b"lang=caf\xe9; theme=dark"[..]]);
        // UTF-8 too, and several headers without any of ours still merge.
        let h = run(&[("Cookie", "lang=café"), ("Cookie", "a=1")], None);
        assert_eq!(
            h.get("cookie").expect("cookie").as_bytes(),
            "lang=café; a=1".as_bytes()
        );
    }

    #[test]
    fn forwarded_elements_follow_rfc_7239() {
        let proto = HeaderValue::from_static("https");
        let host = HeaderValue::from_static("app.test:8443");
        assert_eq!(
            forwarded_element("2001:db8::1".parse().expect("ip"), Some(&host), &proto),
            "for=\"[2001:db8::1]\";host=\"app.test:8443\";proto=https"
        );
        let odd = HeaderValue::from_static("a\"b");
        assert_eq!(
            forwarded_element("10.0.0.1".parse().expect("ip"), Some(&odd), &proto),
            "for=10.0.0.1;proto=https"
        );
    }

    #[test]
    fn connection_cannot_nominate_host_or_framing() {
        let h = run(
            &[
                ("Host", "app.test"),
                ("Content-Length", "0"),
                ("Connection", "Host, Content-Length, X-Forwarded-Host"),
            ],
            None,
        );
        assert_eq!(h.get("host").expect("host"), "app.test");
        assert_eq!(h.get("content-length").expect("length"), "0");
        assert_eq!(h.get("x-forwarded-host").expect("xfh"), "app.test");
    }

    #[test]
    fn upgrade_keeps_upgrade_headers() {
        let h = run(
            &[
                ("Connection", "keep-alive, Upgrade"),
                ("Upgrade", "websocket"),
            ],
            None,
        );
        assert_eq!(h.get("connection").expect("connection"), "upgrade");
        assert_eq!(h.get("upgrade").expect("upgrade"), "websocket");
        let h = run(&[("Upgrade", "websocket")], None);
        assert!(h.get("upgrade").is_none());
    }

    #[test]
    fn refresh_and_id_tokens_never_go_upstream() {
        let s = session();
        let h = run(&[], Some(&s));
        for v in h.values() {
            let v = v.to_str().unwrap_or_default();
            assert!(!v.contains("RT") && !v.contains("IDT"), "{v}");
        }
    }
}
