//! `[upstream]` and `[headers]`.

use url::Url;

use crate::config::raw::{RawConfig, RawIdentityHeaders, RawUpstream};
use crate::config::{
    pkcs8_from_pem, read_file, AssertionConfig, Check, Entry, IdentityHeaders, Secret,
    UpstreamConfig,
};
use crate::proxy::settings::UpstreamRoute;

/// `[upstream]` and `[[upstreams]]`: what every upstream shares, and
/// where each host and path prefix goes.
pub(super) struct Upstreams {
    /// `[upstream]`. With `[[upstreams]]` its `url` is the first entry's:
    /// only forwarding reads a URL, and it reads the route's.
    pub shared: UpstreamConfig,
    pub routes: Vec<UpstreamRoute>,
}

/// Keys an `[[upstreams]]` entry cannot change: rules, header names and
/// the assertion are the same for every upstream.
const SHARED_ONLY: [&str; 5] = [
    "headers",
    "assertion",
    "assertion_key_file",
    "assertion_audience",
    "case_insensitive_paths",
];

/// `None` when a URL is missing or invalid (reported).
pub(super) fn check(c: &mut Check<'_>, raw: &RawConfig) -> Option<Upstreams> {
    if raw.upstreams.is_empty() {
        let text = c.required("upstream.url", &raw.upstream.url).to_string();
        let shared = settings(c, raw, &raw.upstream, &text)?;
        let routes = vec![UpstreamRoute {
            host: None,
            path_prefix: String::new(),
            upstream: shared.clone(),
        }];
        return Some(Upstreams { shared, routes });
    }
    if raw.upstream.url.is_some() {
        c.fail(
            "upstream.url",
            "with [[upstreams]], each entry has its own url; [upstream] holds what they share",
        );
    }
    if raw.upstream.assertion && raw.upstream.assertion_audience.is_none() {
        c.fail(
            "upstream.assertion_audience",
            "is required with [[upstreams]]: there is no one upstream URL to default to",
        );
    }
    // `[upstream]` first: what it gets wrong is reported once, under its
    // own keys, and not again under every entry that inherits it.
    let first = raw.upstreams[0]
        .get("url")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let before = c.errors.len();
    let shared = settings(c, raw, &raw.upstream, &first);
    let url_keys = ["upstream.url", "upstream.protocol"];
    let mut tail = c.errors.split_off(before);
    tail.retain(|e| !url_keys.contains(&e.key.as_str()));
    let reported: Vec<(String, String)> = tail
        .iter()
        .map(|e| (e.key.clone(), e.message.clone()))
        .collect();
    c.errors.extend(tail);

    let mut routes: Vec<UpstreamRoute> = Vec::new();
    let mut complete = true;
    for (i, entry) in raw.upstreams.iter().enumerate() {
        let before = c.errors.len();
        let r = route(c, raw, i, entry);
        let mine = format!("upstreams[{i}].");
        let mut tail = c.errors.split_off(before);
        tail.retain(|e| {
            let key = match e.key.strip_prefix(&mine) {
                Some(rest) => format!("upstream.{rest}"),
                None => e.key.clone(),
            };
            !reported.contains(&(key, e.message.clone()))
        });
        c.errors.extend(tail);
        match r {
            Some(r)
                if routes
                    .iter()
                    .any(|o| o.host == r.host && o.path_prefix == r.path_prefix) =>
            {
                c.entry = Some(Entry::new("upstream", "upstreams", i));
                c.fail(
                    "upstream.path_prefix",
                    "another entry has the same host and path_prefix",
                );
                c.entry = None;
            }
            Some(r) => routes.push(r),
            None => complete = false,
        }
    }
    if !complete || routes.is_empty() {
        return None;
    }
    Some(Upstreams {
        shared: shared?,
        routes,
    })
}

/// With `session.domain` (one session for every host), every host an
/// entry names must receive the cookie, or its browsers would sign in
/// forever. (Without it, each listed host keeps a session of its own.)
pub(super) fn cookie_reaches(
    c: &mut Check<'_>,
    routes: &[UpstreamRoute],
    public_url: &Url,
    domain: &str,
) {
    let own = public_url.host_str().unwrap_or_default();
    let domain = domain.trim_start_matches('.').to_ascii_lowercase();
    let covered = |name: &str| name == domain || name.ends_with(&format!(".{domain}"));
    for (i, r) in routes.iter().enumerate() {
        let Some(host) = &r.host else { continue };
        let reached = match host.strip_prefix("*.") {
            Some(parent) => covered(parent),
            None => covered(host),
        };
        if !reached {
            c.entry = Some(Entry::new("upstream", "upstreams", i));
            c.fail(
                "upstream.host",
                format!(
                    "`{host}` is not under session.domain `{domain}`: it would never receive \
                     the session set for `{own}` (leave session.domain unset for a session per host)"
                ),
            );
            c.entry = None;
        }
    }
}

/// One `[[upstreams]]` entry: its `host` and `path_prefix`, and
/// `[upstream]` with the keys it sets.
fn route(
    c: &mut Check<'_>,
    raw: &RawConfig,
    i: usize,
    entry: &figment::value::Dict,
) -> Option<UpstreamRoute> {
    use figment::providers::Serialized;
    let mut own = entry.clone();
    let host = own.remove("host");
    let prefix = own.remove("path_prefix");
    c.entry = Some(Entry::new("upstream", "upstreams", i));
    for k in SHARED_ONLY.iter().filter(|k| own.contains_key(**k)) {
        c.fail(
            &format!("upstream.{k}"),
            "is the same for every upstream: set it in [upstream]",
        );
    }
    let host = route_host(c, host.as_ref().and_then(|v| v.as_str()));
    let path_prefix = route_prefix(c, prefix.as_ref().map(|v| v.as_str()));
    let merged = figment::Figment::from(Serialized::defaults(&raw.upstream))
        .merge(Serialized::defaults(&own))
        .extract::<RawUpstream>();
    let config = match merged {
        Ok(u) => {
            let text = c.required("upstream.url", &u.url).to_string();
            settings(c, raw, &u, &text)
        }
        Err(e) => {
            for e in e {
                let (key, message) = match &e.kind {
                    figment::error::Kind::UnknownField(f, expected) => {
                        let hint = crate::config::closest(f, expected)
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        (f.clone(), format!("unknown key{hint}"))
                    }
                    kind => (e.path.join("."), kind.to_string()),
                };
                c.fail(&format!("upstream.{key}"), message);
            }
            None
        }
    };
    c.entry = None;
    Some(UpstreamRoute {
        host: host?,
        path_prefix: path_prefix?,
        upstream: config?,
    })
}

/// An entry's `host`: a name, `*.` and a name, or `*` for any host.
fn route_host(c: &mut Check<'_>, host: Option<&str>) -> Option<Option<String>> {
    match host {
        Some("*") => Some(None),
        Some(h) => match crate::proxy::host::host_pattern(h).filter(|p| plain_host(p)) {
            Some(p) => Some(Some(p)),
            None => {
                c.fail(
                    "upstream.host",
                    format!("`{h}` is not a host name, `*.` and a host name, or `*`"),
                );
                None
            }
        },
        None => {
            c.fail(
                "upstream.host",
                "is required: a host name, `*.example.com`, or `*` for any host",
            );
            None
        }
    }
}

/// A name the URL parser reads as written (so a redirect to it can be
/// allowed): a domain, or an exact IPv4 address in canonical form; never
/// `*.` in front of an address, nor a number the parser reads as one.
fn plain_host(pattern: &str) -> bool {
    let (wild, name) = match pattern.strip_prefix("*.") {
        Some(n) => (true, n),
        None => (false, pattern),
    };
    match url::Host::parse(name) {
        Ok(url::Host::Domain(_)) => true,
        Ok(url::Host::Ipv4(ip)) => !wild && ip.to_string() == name,
        _ => false,
    }
}

/// An entry's `path_prefix` (default `/`), stored without its trailing
/// slash. Plain segments only: it is compared with normalized paths.
fn route_prefix(c: &mut Check<'_>, prefix: Option<Option<&str>>) -> Option<String> {
    let p = match prefix {
        None => return Some(String::new()),
        Some(Some(p)) => p,
        Some(None) => "",
    };
    let plain = p.starts_with('/')
        && p.trim_end_matches('/')
            .split('/')
            .skip(1)
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && p.bytes()
            .all(|b| b.is_ascii_graphic() && !b"%?#\\".contains(&b));
    if !plain {
        c.fail(
            "upstream.path_prefix",
            format!("`{p}` is not a path like \"/api\" (plain segments, no `%`, `?` or `..`)"),
        );
        return None;
    }
    Some(p.trim_end_matches('/').to_string())
}

/// The upstream's URL and whether it speaks HTTP/2: `http://`,
/// `https://`, `h2c://` (HTTP/2 with prior knowledge, in clear), or
/// `unix:///path` (a Unix domain socket, plain HTTP).
fn upstream_url(c: &mut Check<'_>, text: &str, protocol: Option<&str>) -> Option<(Url, bool)> {
    let (text, h2c) = match text.strip_prefix("h2c://") {
        Some(rest) => (format!("http://{rest}"), true),
        None => (text.to_string(), false),
    };
    let url = match Url::parse(&text) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => u,
        Ok(u) if u.scheme() == "unix" && u.host().is_none() && u.path().len() > 1 => u,
        Ok(_) => {
            c.fail(
                "upstream.url",
                format!("`{text}` must be an http://, https:// or h2c:// URL with a host, or unix:///path/to.sock"),
            );
            return None;
        }
        Err(e) if !text.is_empty() => {
            c.fail("upstream.url", format!("`{text}` is not a URL: {e}"));
            return None;
        }
        Err(_) => return None,
    };
    if url.query().is_some() || url.fragment().is_some() {
        c.fail("upstream.url", "must not have a query or fragment");
    }
    let http2 = match protocol {
        None => h2c,
        Some("http2") => true,
        Some("http1") if !h2c => false,
        Some("http1") => {
            c.fail("upstream.protocol", "\"http1\" contradicts the h2c:// URL");
            false
        }
        Some(other) => {
            c.fail(
                "upstream.protocol",
                format!("`{other}` is not \"http1\" or \"http2\""),
            );
            false
        }
    };
    Some((url, http2))
}

/// One upstream's settings (`[upstream]`, or it merged with an entry).
fn settings(
    c: &mut Check<'_>,
    raw: &RawConfig,
    u: &RawUpstream,
    upstream_text: &str,
) -> Option<UpstreamConfig> {
    let url = upstream_url(c, upstream_text, u.protocol.as_deref());
    let upstream_timeout = c.duration("upstream.timeout", &u.timeout);
    let upstream_ca = u
        .ca_file
        .as_ref()
        .and_then(|p| c.pem_certs("upstream.ca_file", p));
    let client_cert = client_cert(c, u);
    let claim_headers = claim_headers(c, &raw.headers);
    let assertion = assertion(c, u, upstream_text);
    let connect_timeout = c.duration("upstream.connect_timeout", &u.connect_timeout);
    let headers = identity_headers(c, &u.headers);
    let (url, http2) = url?;
    Some(UpstreamConfig {
        url,
        timeout: upstream_timeout,
        connect_timeout,
        pass_host_header: u.pass_host_header,
        case_insensitive_paths: u.case_insensitive_paths,
        pass_user_headers: u.pass_user_headers,
        // A DPoP-bound token is useless to an upstream without tollgate's key.
        pass_access_token: u
            .pass_access_token
            .unwrap_or(!raw.all_providers().any(|p| p.dpop)),
        // With several providers, subjects alone do not tell users apart.
        pass_provider: raw.all_providers().nth(1).is_some(),
        pass_authorization_header: u.pass_authorization_header,
        headers,
        claim_headers,
        assertion,
        ca_file: upstream_ca,
        client_cert,
        max_in_flight: (u.max_in_flight > 0).then_some(u.max_in_flight),
        queue_timeout: c.duration("upstream.queue_timeout", &u.queue_timeout),
        http2,
    })
}

/// `upstream.client_cert_file` and `client_key_file`: both or neither.
fn client_cert(c: &mut Check<'_>, raw: &RawUpstream) -> Option<(Vec<u8>, Secret)> {
    match (&raw.client_cert_file, &raw.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_pem = c.pem_certs("upstream.client_cert_file", cert);
            let key_pem = match read_file(key) {
                Ok(k) => Some(Secret::new(k)),
                Err(e) => {
                    c.fail(
                        "upstream.client_key_file",
                        format!("cannot read `{key}`: {e}"),
                    );
                    None
                }
            };
            cert_pem.zip(key_pem)
        }
        (Some(_), None) => {
            c.fail(
                "upstream.client_key_file",
                "is required with upstream.client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            c.fail(
                "upstream.client_cert_file",
                "is required with upstream.client_key_file",
            );
            None
        }
    }
}

/// `[headers]`: extra identity headers from claims.
fn claim_headers(
    c: &mut Check<'_>,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<(http::HeaderName, String)> {
    let mut claim_headers = Vec::new();
    for (name, claim) in raw {
        const RESERVED: [&str; 11] = [
            "host",
            "cookie",
            "authorization",
            "connection",
            "upgrade",
            "transfer-encoding",
            "content-length",
            "te",
            "trailer",
            "keep-alive",
            "x-request-id",
        ];
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if RESERVED.contains(&h.as_str()) => c.fail(
                &format!("headers.{name}"),
                "is a header tollgate or HTTP itself manages; pick another name",
            ),
            Ok(h) if !claim.is_empty() => claim_headers.push((h, claim.clone())),
            Ok(_) => c.fail(
                &format!("headers.{name}"),
                "needs a claim path such as \"sub\" or \"org.id\"",
            ),
            Err(_) => c.fail(
                &format!("headers.{name}"),
                format!("`{name}` is not a valid header name"),
            ),
        }
    }
    claim_headers
}

/// `upstream.assertion`: the signing key is read and checked here.
fn assertion(c: &mut Check<'_>, raw: &RawUpstream, upstream_text: &str) -> Option<AssertionConfig> {
    if !raw.assertion {
        return None;
    }
    {
        let key = match &raw.assertion_key_file {
            Some(path) => {
                match read_file(path) {
                    Ok(pem) => {
                        match pkcs8_from_pem(&pem) {
                            Some(der) => Some(Secret::new(der)),
                            None => {
                                c.fail("upstream.assertion_key_file", format!("`{path}` is not a PEM \"PRIVATE KEY\" (PKCS#8) of a P-256 key"));
                                None
                            }
                        }
                    }
                    Err(e) => {
                        c.fail(
                            "upstream.assertion_key_file",
                            format!("cannot read `{path}`: {e}"),
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let cfg = AssertionConfig {
            key_pkcs8: key,
            audience: raw
                .assertion_audience
                .clone()
                .unwrap_or_else(|| upstream_text.trim_end_matches('/').to_string()),
        };
        // A key of the wrong kind is a config error, not a failed start.
        if let Err(e) = cfg.check_key() {
            c.fail("upstream.assertion_key_file", e.to_string());
        }
        Some(cfg)
    }
}

/// `[upstream.headers]`: the names of the identity headers.
fn identity_headers(c: &mut Check<'_>, h: &RawIdentityHeaders) -> IdentityHeaders {
    let header = |c: &mut Check<'_>, key: &str, value: &str| -> http::HeaderName {
        match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                c.fail(key, format!("`{value}` is not a valid header name"));
                http::HeaderName::from_static("x-invalid")
            }
        }
    };
    IdentityHeaders {
        user: header(c, "upstream.headers.user", &h.user),
        email: header(c, "upstream.headers.email", &h.email),
        preferred_username: header(
            c,
            "upstream.headers.preferred_username",
            &h.preferred_username,
        ),
        groups: header(c, "upstream.headers.groups", &h.groups),
        access_token: header(c, "upstream.headers.access_token", &h.access_token),
    }
}
