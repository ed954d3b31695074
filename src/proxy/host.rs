//! Host patterns, as rules, public routes and providers list hosts:
//! `app.example.com`, or `*.example.com` for one label before it.

/// A configured host pattern, lower-case: a host name, or `*.` and one.
pub fn host_pattern(raw: &str) -> Option<String> {
    let p = raw.to_ascii_lowercase();
    let name = p.strip_prefix("*.").unwrap_or(&p);
    let plain = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    plain.then_some(p)
}

/// Whether `host` (lower-case, no port) is `pattern`, or one label before
/// a `*.` pattern's name.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(name) => host
            .strip_suffix(name)
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == host,
    }
}
