//! The forwarding headers a trusted proxy sends (`X-Forwarded-*`,
//! `X-Original-*`). Input lines are `name: value`. The original request
//! they describe is either refused (`invalid`) or well-formed.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate::proxy::forwarded::Original;
use tollgate::proxy::path::Target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let untrusted = Original::from_headers(&headers, false);
    assert_eq!(untrusted, Original::default(), "untrusted peers are believed");
    let o = Original::from_headers(&headers, true);
    if let Some(uri) = &o.uri {
        assert!(uri.starts_with('/'), "{uri:?}");
    }
    // The return URL is built from the judged (normalized) target.
    let target = o.uri.as_deref().and_then(|u| Target::parse(u).ok());
    if let Some(url) = target.as_ref().and_then(|t| o.url(t)) {
        let parsed = url::Url::parse(&url);
        assert!(parsed.is_ok(), "{url:?} does not parse");
    }
});
