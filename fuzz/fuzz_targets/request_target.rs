//! The request-path invariant, differentially: for any request target,
//! either tollgate refuses it, or the path every decision judges is byte for
//! byte the path the upstream is asked for (with or without an
//! `upstream.url` path prefix), it is its own normal form, and an
//! independent RFC 3986 §5.2.4 dot-segment removal (after decoding the
//! unreserved `%XX`) leaves it unchanged. The query is forwarded untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::proxy::path::{normalize, Target};
use tollgate::proxy::upstream_path;

#[path = "../../tests/reference/rfc3986.rs"]
mod rfc3986;
use rfc3986::{decode_unreserved, remove_dot_segments};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a request line's target (HTTP/1.1, HTTP/2 `:path`) and as a
    // forward-auth `X-Forwarded-Uri`.
    let from_uri = text.parse::<http::Uri>().ok().and_then(|u| Some((Target::of(&u).ok()?, u.query().map(str::to_string))));
    let sent_query = text.split('#').next().and_then(|t| t.split_once('?')).map(|(_, q)| q.to_string());
    let from_header = Target::parse(text).ok().map(|t| (t, sent_query));
    for (target, query) in from_uri.into_iter().chain(from_header) {
        let decided = target.path();
        for prefix in ["", "/base"] {
            let sent = upstream_path(prefix, &target).expect("a judged target forwards");
            assert_eq!(sent.path().strip_prefix(prefix), Some(decided), "{text:?}");
            assert_eq!(sent.query(), query.as_deref(), "{text:?}");
        }
        assert_eq!(normalize(decided).expect("canonical"), decided, "{text:?}");
        assert_eq!(remove_dot_segments(&decode_unreserved(decided)), decided, "{text:?}");
    }
});
