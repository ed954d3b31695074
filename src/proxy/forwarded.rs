//! What a proxy in front of tollgate says about the original request:
//! `X-Forwarded-Proto`, `-Host`, `-Uri`, `-Method` (and nginx's
//! `X-Original-URI`, `-Method`). Believed only from peers in
//! `server.trusted_proxies`; from anyone else these headers are ignored,
//! since any client can send them.

use std::net::IpAddr;

use http::{HeaderMap, Method};

/// Peers whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<ipnet::IpNet>) -> Self {
        Self(nets)
    }

    pub fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&peer))
    }
}

/// Whether `s` is `host[:port]` as a `Host` header may carry it (RFC 9110
/// §7.2, RFC 3986 §3.2.2): a DNS name of letters, digits, `-`, `_` and `.`,
/// an IPv4 address, or a bracketed IPv6 address, then optionally `:` and a
/// port of 1–5 digits up to 65535. Stricter than `http::uri::Authority`,
/// which accepts `:pp.e)ample.com` (found by fuzzing: an empty host with a
/// port that is not a number).
pub fn is_authority(s: &str) -> bool {
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) if v6.parse::<std::net::Ipv6Addr>().is_ok() => ("v6", after),
            _ => return false,
        },
        None => match s.rsplit_once(':') {
            Some((h, _)) => (h, &s[h.len()..]),
            None => (s, ""),
        },
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        }
    };
    let host_ok = host == "v6" && s.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').enumerate().all(|(i, label)| {
                // A trailing dot (FQDN) leaves one empty last label.
                (label.is_empty() && i > 0 && i == host.split('.').count() - 1)
                    || (!label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            }));
    host_ok && port_ok
}

/// The host name of an authority (`Host`, `:authority`,
/// `X-Forwarded-Host`) as rules judge it: lower-case, without the port or
/// a trailing dot.
pub fn host_name(authority: &str) -> Option<String> {
    if !is_authority(authority) {
        return None;
    }
    let host = match authority.find(']') {
        // `[v6]` or `[v6]:port`.
        Some(end) => authority.get(..=end)?,
        None => authority.split(':').next()?,
    };
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// A request's own host name (see [`host_name`]): its `Host`, or the
/// `:authority` of HTTP/2 (in the URI).
pub fn request_host(headers: &http::HeaderMap, uri: &http::Uri) -> Option<String> {
    headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .and_then(host_name)
}

/// The original request, as far as a trusted proxy told us.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Original {
    pub proto: Option<String>,
    pub host: Option<String>,
    /// Path and query.
    pub uri: Option<String>,
    pub method: Option<Method>,
    /// A trusted proxy sent a URI or method that does not parse, or two
    /// headers that disagree (a client-sent one passed through beside the
    /// proxy's own): the request must be refused, not judged as `/`.
    pub invalid: bool,
}

fn first(headers: &HeaderMap, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        let v = headers.get(*n)?.to_str().ok()?;
        // A list (proxy chain): the first entry is the client-facing one.
        let v = v.split(',').next()?.trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

impl Original {
    /// Reads the forwarding headers; empty unless `trusted`.
    pub fn from_headers(headers: &HeaderMap, trusted: bool) -> Self {
        if !trusted {
            return Self::default();
        }
        let proto = first(headers, &["x-forwarded-proto"])
            .filter(|p| p.eq_ignore_ascii_case("http") || p.eq_ignore_ascii_case("https"))
            .map(|p| p.to_ascii_lowercase());
        let host = first(headers, &["x-forwarded-host"]).filter(|h| is_authority(h));
        // Whole values: a path may contain commas.
        let whole = |n: &str| {
            headers
                .get(n)
                .map(|v| v.to_str().map(|s| s.trim().to_string()))
        };
        let mut invalid = false;
        let mut agree =
            |a: Option<Result<String, http::header::ToStrError>>,
             b: Option<Result<String, http::header::ToStrError>>| {
                match (a, b) {
                    (Some(Ok(x)), Some(Ok(y))) if x != y => {
                        invalid = true;
                        None
                    }
                    (Some(Err(_)), _) | (_, Some(Err(_))) => {
                        invalid = true;
                        None
                    }
                    (Some(Ok(x)), _) | (None, Some(Ok(x))) => Some(x),
                    (None, None) => None,
                }
            };
        // ingress-nginx sends the whole URL in `X-Original-URL`; its path
        // and query must agree with any other claim of the original URI.
        let from_url = whole("x-original-url").map(|r| {
            r.map(|u| match url::Url::parse(&u) {
                Ok(parsed) => match parsed.query() {
                    Some(q) => format!("{}?{q}", parsed.path()),
                    None => parsed.path().to_string(),
                },
                // Not a URL: left as is, and refused below.
                Err(_) => u,
            })
        });
        let uri = agree(whole("x-forwarded-uri"), whole("x-original-uri"));
        let uri = agree(uri.map(Ok), from_url);
        let method = agree(whole("x-forwarded-method"), whole("x-original-method"));
        let uri = match uri {
            Some(u) if u.starts_with('/') => Some(u),
            Some(_) => {
                invalid = true;
                None
            }
            None => None,
        };
        let method = match method.map(|m| Method::from_bytes(m.as_bytes())) {
            Some(Ok(m)) => Some(m),
            Some(Err(_)) => {
                invalid = true;
                None
            }
            None => None,
        };
        Self {
            proto,
            host,
            uri,
            method,
            invalid,
        }
    }

    /// `proto://host` and the judged `target` (the normalized original
    /// URI), when proto and host are known.
    pub fn url(&self, target: &super::path::Target) -> Option<String> {
        Some(format!(
            "{}://{}{}",
            self.proto.as_deref()?,
            self.host.as_deref()?,
            target.as_str()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_the_port_the_case_and_a_trailing_dot() {
        for (authority, want) in [
            ("App.Example.com:8443", Some("app.example.com")),
            ("app.example.com.", Some("app.example.com")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:443", Some("[::1]")),
            ("a b", None),
            ("app@evil", None),
        ] {
            assert_eq!(host_name(authority).as_deref(), want, "{authority}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn authorities_are_strict() {
        for ok in [
            "app.example.com",
            "app.example.com:8443",
            "127.0.0.1",
            "127.0.0.1:4180",
            "[::1]",
            "[::1]:80",
            "localhost",
            "a_b.internal",
            "example.com.",
        ] {
            assert!(is_authority(ok), "{ok}");
        }
        // The first is the fuzzer's find (fuzz/artifacts/forwarded_headers).
        for bad in [
            ":pp.e)ample.com",
            "",
            ":80",
            "a b",
            "app:443@evil",
            "app:65536",
            "app:",
            "app:8x",
            "[::1",
            "[nope]:80",
            "a..b",
            "e)ample.com",
            "app/x",
            "app\\x",
            "[::1]x",
        ] {
            assert!(!is_authority(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_forwarded_host_that_is_no_authority_is_ignored() {
        let o = Original::from_headers(
            &headers(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", ":pp.e)ample.com"),
                ("x-forwarded-uri", "/a"),
            ]),
            true,
        );
        assert_eq!(o.host, None);
        let target = super::super::path::Target::parse("/a").expect("target");
        assert_eq!(o.url(&target), None);
    }

    #[test]
    fn untrusted_peers_are_not_believed() {
        let h = headers(&[
            ("x-forwarded-host", "evil.test"),
            ("x-forwarded-uri", "/admin"),
        ]);
        assert_eq!(Original::from_headers(&h, false), Original::default());
    }

    #[test]
    fn trusted_peers_are_believed_within_reason() {
        let h = headers(&[
            ("x-forwarded-proto", "HTTPS"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/a?b=1"),
            ("x-forwarded-method", "POST"),
        ]);
        let o = Original::from_headers(&h, true);
        let target = super::super::path::Target::parse("/x/../a?b=1").expect("target");
        assert_eq!(o.url(&target).as_deref(), Some("https://app.test/a?b=1"));
        let ingress = headers(&[("x-original-url", "https://app.test/a/b?c=1")]);
        assert_eq!(
            Original::from_headers(&ingress, true).uri.as_deref(),
            Some("/a/b?c=1")
        );
        assert_eq!(o.method, Some(Method::POST));
        let odd = headers(&[
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "a@evil.test"),
        ]);
        assert_eq!(Original::from_headers(&odd, true), Original::default());
        // Paths are taken whole (commas included); nonsense is refused, not guessed.
        let comma = headers(&[("x-forwarded-uri", "/docs,/../admin")]);
        assert_eq!(
            Original::from_headers(&comma, true).uri.as_deref(),
            Some("/docs,/../admin")
        );
        for bad in [
            headers(&[("x-forwarded-uri", "admin")]),
            headers(&[("x-forwarded-uri", "/"), ("x-original-uri", "/admin")]),
            headers(&[("x-forwarded-method", "G E T")]),
            headers(&[
                ("x-original-url", "https://app.test/admin"),
                ("x-forwarded-uri", "/"),
            ]),
        ] {
            assert!(Original::from_headers(&bad, true).invalid);
        }
    }

    #[test]
    fn cidr_and_mapped_addresses() {
        let t = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().expect("net"),
            "::1/128".parse().expect("net"),
        ]);
        assert!(t.trusts("10.1.2.3".parse().expect("ip")));
        assert!(t.trusts("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(t.trusts("::1".parse().expect("ip")));
        assert!(!t.trusts("11.0.0.1".parse().expect("ip")));
        assert!(!TrustedProxies::default().trusts("127.0.0.1".parse().expect("ip")));
    }
}
