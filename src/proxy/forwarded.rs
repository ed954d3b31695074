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

/// The original request, as far as a trusted proxy told us.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Original {
    pub proto: Option<String>,
    pub host: Option<String>,
    /// Path and query.
    pub uri: Option<String>,
    pub method: Option<Method>,
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
        let host = first(headers, &["x-forwarded-host"]).filter(|h| {
            h.parse::<http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == h && !h.contains('@'))
        });
        let uri = first(headers, &["x-forwarded-uri", "x-original-uri"]).filter(|u| {
            // A path, not `//host` or `/\\host` in disguise.
            u.starts_with('/') && !u.starts_with("//") && !u.starts_with("/\\")
        });
        let method = first(headers, &["x-forwarded-method", "x-original-method"])
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        Self {
            proto,
            host,
            uri,
            method,
        }
    }

    /// `proto://host/uri` when all three are known.
    pub fn url(&self) -> Option<String> {
        Some(format!(
            "{}://{}{}",
            self.proto.as_deref()?,
            self.host.as_deref()?,
            self.uri.as_deref()?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
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
        assert_eq!(o.url().as_deref(), Some("https://app.test/a?b=1"));
        assert_eq!(o.method, Some(Method::POST));
        let odd = headers(&[
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "a@evil.test"),
            ("x-forwarded-uri", "//evil"),
        ]);
        assert_eq!(Original::from_headers(&odd, true), Original::default());
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
