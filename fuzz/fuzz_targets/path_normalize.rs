//! Request-path normalization, which every routing and authorization
//! decision uses. A normalized path starts with one `/`, has no dot
//! segments and no empty segments, and normalizing it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::proxy::path::{normalize, without_params};

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(n) = normalize(path) else {
        return;
    };
    assert!(n.starts_with('/'), "{path:?} -> {n:?}");
    assert!(n.is_ascii(), "{path:?} -> {n:?}");
    assert!(!n.contains("//"), "{path:?} -> {n:?}");
    for seg in n.split('/') {
        assert!(seg != "." && seg != "..", "{path:?} -> {n:?}");
    }
    let again = normalize(&n).expect("a normalized path normalizes");
    assert_eq!(again, n, "not idempotent for {path:?}");
    let bare = without_params(&n);
    assert!(bare.starts_with('/'), "{n:?} -> {bare:?}");
    assert!(!bare.contains(';'), "{n:?} -> {bare:?}");
});
