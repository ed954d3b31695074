//! The request-path invariant, as a property: for any request target,
//! either it is refused, or the path every decision judges is byte for byte
//! the path the upstream receives (with or without an `upstream.url` path
//! prefix), canonical, and free of dot-segments in any spelling, checked
//! against an independent RFC 3986 §5.2.4 reading. The query is forwarded
//! untouched. The fuzz target `request_target` asserts the same.

#[path = "reference/rfc3986.rs"]
mod rfc3986;

use proptest::prelude::*;
use tollgate::proxy::path::{normalize, Target};
use tollgate::proxy::upstream_path;

/// Path pieces that make normalizers disagree.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/", "//", ".", "..", "%2e", "%2E%2e", ".%2e", "%2e.", ";", "..;", ";x", "a", "admin",
        "static", "%61dmin", "%2f", "%5c", "%25", "%252e", "%", "%zz", "?", "#", "%00", "%C3%A9",
        "é", " ", "\\", "~", "%7E", "A", "%41",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn judged_path_is_forwarded_path(
        pieces in prop::collection::vec(piece(), 0..12),
        query in prop::option::of("[a-z=&%.]{0,8}"),
    ) {
        let path = format!("/{}", pieces.concat());
        let target = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let Ok(uri) = target.parse::<http::Uri>() else { return Ok(()); };
        let Ok(judged) = Target::of(&uri) else { return Ok(()); };
        let decided = judged.path();
        for prefix in ["", "/base"] {
            let sent = upstream_path(prefix, &judged).expect("a judged target forwards");
            prop_assert_eq!(sent.path().strip_prefix(prefix), Some(decided));
            prop_assert_eq!(sent.query(), uri.query());
        }
        prop_assert_eq!(normalize(decided).expect("canonical"), decided);
        prop_assert_eq!(
            rfc3986::remove_dot_segments(&rfc3986::decode_unreserved(decided)),
            decided
        );
    }
}
