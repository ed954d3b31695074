//! Where a browser may be sent after login or logout: only back to our own
//! origin. Anything a browser could read as another host falls back to `/`.
//!
//! The decision is made on the URL as a browser would parse it (WHATWG, via
//! the `url` crate) *and* on a policy that refuses what browsers silently
//! clean up or what a second decoding downstream could turn into a payload:
//! control characters, whitespace, backslashes, non-ASCII, and
//! percent-encoded slashes, backslashes or controls at the start.

use url::Url;

/// Longest return-to URL kept; longer ones are refused, never truncated.
pub const MAX_LEN: usize = 2048;

/// Returns `target` when it is safe to redirect to from `origin`, else `None`.
pub fn safe_target<'a>(target: &'a str, origin: &Url) -> Option<&'a str> {
    if target.is_empty() || target.len() > MAX_LEN {
        return None;
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) || target.contains('\\') {
        return None;
    }
    let resolved = origin.join(target).ok()?;
    if resolved.origin() != origin.origin() {
        return None;
    }
    // A relative target must be a path; `/..//evil` resolves to `//evil`,
    // which is same-origin here but another host once re-emitted as a path.
    if resolved.path().starts_with("//") {
        return None;
    }
    if let Some(rest) = target.strip_prefix('/') {
        if rest.starts_with('/') || target.contains(['<', '>', '"', '`']) {
            return None;
        }
        // `/http://evil`, `/javascript:…`: bait for an application that
        // strips the leading slash.
        if starts_with_scheme(rest) {
            return None;
        }
        // Judge every decoding a downstream component might apply, not just
        // the first: `/%252F%252Fevil` is `//evil` two decodings away.
        let mut current = target.to_string();
        for _ in 0..3 {
            let decoded = percent_encoding::percent_decode_str(&current)
                .decode_utf8_lossy()
                .into_owned();
            let d = decoded.as_bytes();
            if d.len() > 1 && (d[1] == b'/' || d[1] == b'\\') {
                return None;
            }
            if decoded
                .chars()
                .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
            {
                return None;
            }
            if decoded == current {
                break;
            }
            // Encoded `//` (`/%2F%2Fevil`, `/http%3A%2F%2Fevil`) only exists to
            // become a host after someone decodes it.
            if decoded.contains("//") {
                return None;
            }
            current = decoded;
        }
        return Some(target);
    }
    // Absolute URL: same origin, written in its normal form (scheme and
    // host in lower case, no default port, no userinfo).
    let normal = resolved.as_str() == target || resolved.as_str() == format!("{target}/");
    if normal && resolved.username().is_empty() && resolved.password().is_none() {
        return Some(target);
    }
    None
}

/// `scheme ":"` at the start, RFC 3986 §3.1.
fn starts_with_scheme(s: &str) -> bool {
    let end = s.find([':', '/', '?', '#']).unwrap_or(s.len());
    s[end..].starts_with(':')
        && s[..end].starts_with(|c: char| c.is_ascii_alphabetic())
        && s[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `safe_target` or `/`.
pub fn or_root(target: Option<&str>, origin: &Url) -> String {
    target
        .and_then(|t| safe_target(t, origin))
        .unwrap_or("/")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(safe_target(p, &origin()), None, "accepted {p:?}");
        }
    }

    #[test]
    fn every_safe_target_is_kept_unchanged() {
        let targets = lines(include_str!("../../tests/data/safe_redirects.txt"));
        assert!(targets.len() >= 10);
        for t in &targets {
            assert_eq!(safe_target(t, &origin()), Some(t.as_str()), "refused {t:?}");
        }
    }

    #[test]
    fn overlong_target_is_refused_not_truncated() {
        let long = format!("/{}", "a".repeat(8200));
        assert_eq!(safe_target(&long, &origin()), None);
        assert_eq!(or_root(Some(&long), &origin()), "/");
        assert_eq!(or_root(None, &origin()), "/");
        assert_eq!(or_root(Some(""), &origin()), "/");
    }
}
