//! The forwarding headers a trusted proxy sends (`X-Forwarded-*`,
//! `X-Original-*`). Input lines are `name: value`. The original request
//! they describe is either refused (`invalid`) or well-formed.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate::proxy::forwarded::Original;

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
    if let Some(url) = o.url() {
        let parsed = url::Url::parse(&url);
        assert!(parsed.is_ok(), "{url:?} does not parse");
    }
});
