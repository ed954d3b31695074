//! Where a browser may be sent after login or logout: back to our own
//! origin, or to a host listed in `server.allowed_redirect_domains`.
//! Anything else falls back to `/`.
//!
//! The decision is made on the URL as a browser would parse it (WHATWG, via
//! the `url` crate) *and* on a policy that refuses what browsers silently
//! clean up or what a second decoding downstream could turn into a payload:
//! control characters, whitespace, backslashes, non-ASCII, and
//! percent-encoded slashes, backslashes or controls at the start
//! (security-cases.md §10; RFC 9700 §4.11.1: "Clients MUST NOT expose open
//! redirectors").
//!
//! A target on another host must be an absolute `https` URL (`http` only
//! when tollgate itself is served over `http`) written exactly as the WHATWG
//! parser re-serialises it, apart from a missing final `/`. That one rule
//! refuses every trick that relies on a parser cleaning the input up:
//! scheme-relative `//host`, upper case, default ports, empty userinfo,
//! percent-encoded or IDNA-mapped host characters (`sub.example%E3%80%82com`
//! is `sub.example.com` to a browser), stripped TAB/CR/LF.

use url::{Host, Position, Url};

/// Longest return-to URL kept; longer ones are refused, never truncated.
pub const MAX_LEN: usize = 2048;

/// Our origin plus the other hosts a redirect may go to.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    origin: Url,
    allowed: Vec<AllowedHost>,
}

/// One `server.allowed_redirect_domains` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// Lower-case ASCII host as the URL parser serialises it (`[::1]` for
    /// IPv6); for a subdomain entry, the parent without its leading dot.
    host: String,
    subdomains: bool,
    /// `None`: only the scheme's default port.
    port: Option<u16>,
}

// === impl RedirectPolicy ===

impl RedirectPolicy {
    /// `allowed_domains` entries:
    ///
    /// - `app.example.com`: exactly that host;
    /// - `.example.com` (or `*.example.com`): any subdomain of `example.com`
    ///   at a label boundary, **not** `example.com` itself (list it too if it
    ///   is meant) and never `evilexample.com` (oauth2-proxy
    ///   GHSA-4mf2-f3wh-gvf2);
    /// - either form with `:port`: that port only; without one, only the
    ///   scheme's default port (security-cases RD-13).
    ///
    /// Entries are case-insensitive and must be ASCII: an internationalised
    /// name is written in its punycode (`xn--`) form, so what the operator
    /// reads is what is compared.
    pub fn new(origin: Url, allowed_domains: &[String]) -> Result<Self, Vec<(String, String)>> {
        let mut allowed = Vec::with_capacity(allowed_domains.len());
        let mut errors = Vec::new();
        for (i, raw) in allowed_domains.iter().enumerate() {
            match AllowedHost::parse(raw) {
                Ok(a) => allowed.push(a),
                Err(e) => errors.push((format!("server.allowed_redirect_domains[{i}]"), e)),
            }
        }
        if errors.is_empty() {
            Ok(Self { origin, allowed })
        } else {
            Err(errors)
        }
    }

    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// Returns `target` unchanged when a browser may be sent there, else
    /// `None`: same-origin targets, plus absolute URLs to an allowed host.
    pub fn safe_target<'a>(&self, target: &'a str) -> Option<&'a str> {
        judge(target, &self.origin, &self.allowed)
    }

    /// `safe_target` or `/`.
    pub fn or_root(&self, target: Option<&str>) -> String {
        target
            .and_then(|t| self.safe_target(t))
            .unwrap_or("/")
            .to_string()
    }
}

// === impl AllowedHost ===

impl AllowedHost {
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("an empty entry".into());
        }
        if !raw.is_ascii() {
            return Err(format!(
                "`{raw}` is not ASCII; write the host in its punycode (xn--…) form"
            ));
        }
        let lower = raw.to_ascii_lowercase();
        let (subdomains, rest) = match lower.strip_prefix("*.").or_else(|| lower.strip_prefix('.'))
        {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let (host, port) = split_port(rest)
            .ok_or_else(|| format!("`{raw}`: the port is not a number from 1 to 65535"))?;
        // The parser must give back exactly what was written: no
        // percent-decoding, no IPv4 shorthand (`0x7f.1`), no IDNA mapping.
        let parsed = Host::parse(host).map_err(|e| format!("`{raw}` is not a host: {e}"))?;
        if parsed.to_string() != host {
            return Err(format!(
                "`{raw}` is not a host in canonical form (the URL parser reads it as `{parsed}`)"
            ));
        }
        match parsed {
            Host::Domain(d) if is_plain_domain(&d) => {}
            Host::Domain(_) => {
                return Err(format!(
                    "`{raw}` is not a host: use letters, digits, `-`, `_` and non-empty labels"
                ))
            }
            _ if subdomains => return Err(format!("`{raw}`: an IP address has no subdomains")),
            _ => {}
        }
        Ok(Self {
            host: host.to_string(),
            subdomains,
            port,
        })
    }

    /// Whether `url` (already known to be http(s), without userinfo) points
    /// at this entry.
    fn admits(&self, url: &Url) -> bool {
        let port_ok = match self.port {
            None => url.port().is_none(),
            Some(p) => url.port_or_known_default() == Some(p),
        };
        if !port_ok {
            return false;
        }
        match url.host() {
            Some(Host::Domain(d)) if self.subdomains => {
                is_plain_domain(d) && is_strict_subdomain(d, &self.host)
            }
            Some(_) if self.subdomains => false,
            Some(_) => url.host_str() == Some(self.host.as_str()),
            None => false,
        }
    }
}

/// `host[:port]`, `[v6][:port]`. `None` for a malformed or zero port.
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        let (host, tail) = s.split_at_checked(end)?;
        match tail {
            "" => (host, None),
            _ => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let p: u16 = p.parse().ok()?;
            (p != 0).then_some((host, Some(p)))
        }
        Some(_) => None,
    }
}

/// A DNS-style name: non-empty labels of letters, digits, `-` and `_`. The
/// WHATWG parser accepts more (`evil.test;.example.com` is a valid host
/// there); nothing legitimate needs it.
fn is_plain_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `d` is `label(s).parent`: a label boundary, at least one label in front.
fn is_strict_subdomain(d: &str, parent: &str) -> bool {
    let Some(cut) = d.len().checked_sub(parent.len()) else {
        return false;
    };
    match d.as_bytes().split_at_checked(cut) {
        Some((head, tail)) => head.len() >= 2 && head.ends_with(b".") && tail == parent.as_bytes(),
        None => false,
    }
}

// === The decision ===

fn judge<'a>(target: &'a str, origin: &Url, allowed: &[AllowedHost]) -> Option<&'a str> {
    if target.is_empty() || target.len() > MAX_LEN {
        return None;
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) || target.contains('\\') {
        return None;
    }
    let resolved = origin.join(target).ok()?;
    if resolved.origin() != origin.origin() {
        return elsewhere(target, &resolved, origin, allowed).then_some(target);
    }
    // A relative target must be a path; `/..//evil` resolves to `//evil`,
    // which is same-origin here but another host once re-emitted as a path.
    if resolved.path().starts_with("//") {
        return None;
    }
    if target.starts_with('/') {
        return clean_path(target).then_some(target);
    }
    // Absolute URL: same origin, written in its normal form (scheme and
    // host in lower case, no default port, no userinfo), and a path that
    // passes the same checks as a relative one.
    (is_normal_form(target, &resolved) && clean_path(&resolved[Position::BeforePath..]))
        .then_some(target)
}

/// Another origin: only an absolute http(s) URL in normal form to an
/// allowed host and port.
fn elsewhere(target: &str, resolved: &Url, origin: &Url, allowed: &[AllowedHost]) -> bool {
    if allowed.is_empty() {
        return false;
    }
    // No downgrade: `http` only when we are `http` ourselves.
    let scheme_ok = match resolved.scheme() {
        "https" => true,
        "http" => origin.scheme() == "http",
        _ => false,
    };
    scheme_ok
        && is_normal_form(target, resolved)
        && allowed.iter().any(|a| a.admits(resolved))
        && !resolved.path().starts_with("//")
        && clean_path(&resolved[Position::BeforePath..])
}

/// `target` is what the parser re-serialises (modulo a final `/` on an
/// empty path), and carries no userinfo: `https://app.test@evil.test`
/// and `https://evil.test@sub.example.com` are both refused, whichever host
/// a parser picks.
fn is_normal_form(target: &str, resolved: &Url) -> bool {
    let serial = resolved.as_str();
    (serial == target || serial.strip_suffix('/') == Some(target))
        && resolved.username().is_empty()
        && resolved.password().is_none()
}

/// The policy for the path (and query, fragment) of a target: `path`
/// starts with `/`.
fn clean_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if rest.starts_with('/') || path.contains(['<', '>', '"', '`']) {
        return false;
    }
    // `/http://evil`, `/javascript:…`: bait for an application that
    // strips the leading slash.
    if starts_with_scheme(rest) {
        return false;
    }
    // Without `%` nothing below can change: the checks of the first round
    // already ran on the raw (ASCII graphic, backslash-free) target.
    if !path.contains('%') {
        return true;
    }
    // Judge every decoding a downstream component might apply, not just
    // the first: `/%252F%252Fevil` is `//evil` two decodings away.
    let mut current = path.to_string();
    for _ in 0..3 {
        let decoded = percent_encoding::percent_decode_str(&current)
            .decode_utf8_lossy()
            .into_owned();
        if matches!(decoded.as_bytes().get(1), Some(b'/' | b'\\')) {
            return false;
        }
        if decoded
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
        {
            return false;
        }
        if decoded == current {
            break;
        }
        // Encoded `//` (`/%2F%2Fevil`, `/http%3A%2F%2Fevil`) only exists to
        // become a host after someone decodes it.
        if decoded.contains("//") {
            return false;
        }
        current = decoded;
    }
    true
}

/// `scheme ":"` at the start, RFC 3986 §3.1.
fn starts_with_scheme(s: &str) -> bool {
    let end = s.find([':', '/', '?', '#']).unwrap_or(s.len());
    let (scheme, tail) = s.split_at(end);
    tail.starts_with(':')
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy with no other hosts: our origin only.
    fn same_origin() -> RedirectPolicy {
        RedirectPolicy::new(origin(), &[]).expect("policy")
    }

    fn origin() -> Url {
        Url::parse("https://app.test").expect("url")
    }

    /// Decodes the escapes documented at the top of the data files.
    pub(crate) fn unescape(line: &str) -> String {
        let mut out = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.peek() {
                Some('t') => {
                    chars.next();
                    out.push('\t');
                }
                Some('n') => {
                    chars.next();
                    out.push('\n');
                }
                Some('r') => {
                    chars.next();
                    out.push('\r');
                }
                Some('x') => {
                    let mut look = chars.clone();
                    look.next();
                    let hex: String = look.by_ref().take(2).collect();
                    match u8::from_str_radix(&hex, 16) {
                        Ok(b) if hex.len() == 2 => {
                            out.push(b as char);
                            chars = look;
                        }
                        _ => out.push('\\'),
                    }
                }
                _ => out.push('\\'),
            }
        }
        out
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(unescape)
            .collect()
    }

    #[test]
    fn every_open_redirect_payload_falls_back_to_root() {
        let payloads = lines(include_str!("../../tests/data/open_redirects.txt"));
        assert!(payloads.len() >= 40);
        for p in &payloads {
            assert_eq!(same_origin().safe_target(p), None, "accepted {p:?}");
        }
    }

    #[test]
    fn every_safe_target_is_kept_unchanged() {
        let targets = lines(include_str!("../../tests/data/safe_redirects.txt"));
        assert!(targets.len() >= 10);
        for t in &targets {
            assert_eq!(
                same_origin().safe_target(t),
                Some(t.as_str()),
                "refused {t:?}"
            );
        }
    }

    #[test]
    fn overlong_target_is_refused_not_truncated() {
        let long = format!("/{}", "a".repeat(8200));
        assert_eq!(same_origin().safe_target(&long), None);
        assert_eq!(same_origin().or_root(Some(&long)), "/");
        assert_eq!(same_origin().or_root(None), "/");
        assert_eq!(same_origin().or_root(Some("")), "/");
    }

    // === allow-listed hosts ===

    fn allowlist() -> RedirectPolicy {
        let domains = ["app.test", ".example.com", "docs.partner.test"].map(String::from);
        RedirectPolicy::new(origin(), &domains).expect("policy")
    }

    /// Judged with origin https://app.test and the allow-list above.
    const ACCEPTED: &[&str] = &[
        "https://sub.example.com/x",
        "https://sub.example.com",
        "https://a.b.example.com/",
        "https://sub-1.example.com/a/b?c=d&e=f#g",
        "https://xn--mnchen-3ya.example.com/",
        "https://docs.partner.test/p?q=1",
        "https://docs.partner.test/",
        "https://app.test/x",
        "/local",
        "/dashboard?tab=1",
    ];

    #[test]
    fn every_allowlist_payload_falls_back_to_root() {
        let payloads = lines(include_str!(
            "../../tests/data/open_redirects_allowlist.txt"
        ));
        assert!(payloads.len() >= 60);
        let policy = allowlist();
        for p in &payloads {
            assert_eq!(policy.safe_target(p), None, "accepted {p:?}");
            assert_eq!(policy.or_root(Some(p)), "/");
        }
    }

    #[test]
    fn allowed_hosts_are_kept_unchanged() {
        let policy = allowlist();
        for t in ACCEPTED {
            assert_eq!(policy.safe_target(t), Some(*t), "refused {t:?}");
            assert_eq!(policy.or_root(Some(t)), *t);
        }
    }

    #[test]
    fn the_allowlist_changes_nothing_for_same_origin_data() {
        let policy = allowlist();
        for p in &lines(include_str!("../../tests/data/open_redirects.txt")) {
            assert_eq!(policy.safe_target(p), None, "accepted {p:?}");
        }
        for t in &lines(include_str!("../../tests/data/safe_redirects.txt")) {
            assert_eq!(policy.safe_target(t), Some(t.as_str()), "refused {t:?}");
        }
    }

    #[test]
    fn without_allowed_domains_only_our_origin_is_accepted() {
        let policy = RedirectPolicy::new(origin(), &[]).expect("policy");
        assert_eq!(policy.safe_target("https://sub.example.com/x"), None);
        assert_eq!(same_origin().safe_target("https://sub.example.com/x"), None);
        assert_eq!(policy.safe_target("/x"), Some("/x"));
        assert_eq!(
            policy.safe_target("https://app.test/x"),
            Some("https://app.test/x")
        );
        assert_eq!(policy.origin(), &origin());
    }

    #[test]
    fn a_subdomain_entry_does_not_cover_its_apex() {
        let policy = allowlist();
        assert_eq!(policy.safe_target("https://example.com/"), None);
        let domains = [".example.com", "example.com"].map(String::from);
        let both = RedirectPolicy::new(origin(), &domains).expect("policy");
        assert_eq!(
            both.safe_target("https://example.com/"),
            Some("https://example.com/")
        );
        assert_eq!(both.safe_target("https://evilexample.com/"), None);
    }

    #[test]
    fn an_entry_port_is_the_only_port_allowed() {
        let domains = ["docs.partner.test:8443", ".example.com:8443"].map(String::from);
        let policy = RedirectPolicy::new(origin(), &domains).expect("policy");
        for ok in [
            "https://docs.partner.test:8443/x",
            "https://a.example.com:8443/",
        ] {
            assert_eq!(policy.safe_target(ok), Some(ok));
        }
        for bad in [
            "https://docs.partner.test/x",
            "https://docs.partner.test:8444/x",
            "https://a.example.com/",
        ] {
            assert_eq!(policy.safe_target(bad), None, "{bad}");
        }
        // Without a port in the entry, only the default port.
        assert_eq!(
            allowlist().safe_target("https://docs.partner.test:8443/x"),
            None
        );
    }

    #[test]
    fn http_is_allowed_only_when_we_are_served_over_http() {
        let domains = [".example.com".to_string()];
        let https = RedirectPolicy::new(origin(), &domains).expect("policy");
        assert_eq!(https.safe_target("http://sub.example.com/"), None);
        let plain = Url::parse("http://app.test").expect("url");
        let http = RedirectPolicy::new(plain, &domains).expect("policy");
        assert_eq!(
            http.safe_target("http://sub.example.com/"),
            Some("http://sub.example.com/")
        );
        assert_eq!(
            http.safe_target("https://sub.example.com/"),
            Some("https://sub.example.com/")
        );
        assert_eq!(http.safe_target("ftp://sub.example.com/"), None);
    }

    #[test]
    fn ip_entries_are_exact() {
        let domains = ["127.0.0.1:8080", "[::1]"].map(String::from);
        let policy = RedirectPolicy::new(origin(), &domains).expect("policy");
        assert_eq!(
            policy.safe_target("https://127.0.0.1:8080/x"),
            Some("https://127.0.0.1:8080/x")
        );
        assert_eq!(
            policy.safe_target("https://[::1]/x"),
            Some("https://[::1]/x")
        );
        assert_eq!(policy.safe_target("https://2130706433:8080/x"), None);
        assert_eq!(policy.safe_target("https://127.0.0.1/x"), None);
    }

    #[test]
    fn entries_are_lowercased_and_validated() {
        let domains = ["Docs.Partner.TEST", "*.Example.com"].map(String::from);
        let policy = RedirectPolicy::new(origin(), &domains).expect("policy");
        assert!(policy.safe_target("https://docs.partner.test/").is_some());
        assert!(policy.safe_target("https://a.example.com/").is_some());

        let bad = [
            "",
            "münchen.example",
            "example.com.",
            "evil..test",
            "0x7f.1",
            "a%2eb.test",
            "host:0",
            "host:99999",
            "host:",
            "host:+1",
            ".127.0.0.1",
            "user@host.test",
            "host.test/path",
            "*",
            ".",
            "evil.test;.example.com",
        ]
        .map(String::from);
        let errors = RedirectPolicy::new(origin(), &bad)
            .err()
            .unwrap_or_default();
        let keys: Vec<String> = errors.iter().map(|(k, _)| k.clone()).collect();
        let expected: Vec<String> = (0..bad.len())
            .map(|i| format!("server.allowed_redirect_domains[{i}]"))
            .collect();
        assert_eq!(keys, expected, "{errors:#?}");
    }
}
