//! `[session]`.

use std::time::Duration;

use crate::config::raw::RawSession;
use crate::config::{
    check_cookie_prefix, decode_key, redis_config, Check, Secret, SessionConfig, MIN_SECRET_BYTES,
};

pub(super) fn check(c: &mut Check<'_>, s: &RawSession) -> SessionConfig {
    let secrets = secrets(c, s);
    if s.cookie_name.is_empty()
        || !s
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        c.fail(
            "session.cookie_name",
            format!(
                "`{}` must be non-empty and use only letters, digits, `_`, `-` and `.`",
                s.cookie_name
            ),
        );
    }
    let lifetime = c.duration("session.lifetime", &s.lifetime);
    if lifetime < Duration::from_secs(60) {
        c.fail("session.lifetime", "must be at least 1m");
    }
    let same_site = match s.same_site.to_ascii_lowercase().as_str() {
        "lax" => cookie::SameSite::Lax,
        "strict" => cookie::SameSite::Strict,
        "none" => cookie::SameSite::None,
        other => {
            c.fail(
                "session.same_site",
                format!("`{other}` is not one of \"lax\", \"strict\", \"none\""),
            );
            cookie::SameSite::Lax
        }
    };
    if same_site == cookie::SameSite::None && !s.secure {
        c.fail(
            "session.same_site",
            "\"none\" requires session.secure = true (browsers drop such cookies otherwise)",
        );
    }
    if !s.path.starts_with('/') {
        c.fail("session.path", "must start with `/`");
    }
    check_cookie_prefix(c, s);
    if let Some(d) = &s.domain {
        if d.is_empty() || d.contains([';', ',', ' ', '/']) {
            c.fail("session.domain", format!("`{d}` is not a cookie domain"));
        }
    }
    let refresh_before = c.duration("session.refresh_before", &s.refresh_before);
    let redis = match s.store.as_str() {
        "cookie" => None,
        "redis" => redis_config(c, &s.redis),
        other => {
            c.fail(
                "session.store",
                format!("`{other}` is not one of \"cookie\", \"redis\""),
            );
            None
        }
    };
    SessionConfig {
        secrets,
        cookie_name: s.cookie_name.clone(),
        lifetime,
        secure: s.secure,
        same_site,
        domain: s.domain.clone(),
        path: s.path.clone(),
        refresh_before,
        confirm_sign_out: s.confirm_sign_out,
        max_remembered_logouts: s.max_remembered_logouts,
        redis,
    }
}

/// `session.secret` (or `secret_file`), then `previous_secrets`: the key
/// ring, current key first.
fn secrets(c: &mut Check<'_>, s: &RawSession) -> Vec<Secret> {
    let mut secrets = Vec::new();
    match c.secret("session.secret", &s.secret, &s.secret_file) {
        None if s.secret.is_none() && s.secret_file.is_none() => c.fail(
            "session.secret",
            "is required: generate one with `tollgate generate-secret` (or set `session.secret_file`)",
        ),
        None => {}
        Some(bytes) => match std::str::from_utf8(&bytes).ok().and_then(decode_key) {
            Some(k) if k.len() >= MIN_SECRET_BYTES => secrets.push(Secret::new(k)),
            Some(k) => c.fail("session.secret", format!("decodes to {} bytes; at least {MIN_SECRET_BYTES} are needed (use `tollgate generate-secret`)", k.len())),
            None => c.fail("session.secret", "is not base64 key material (use `tollgate generate-secret`)"),
        },
    }
    for (i, prev) in s.previous_secrets.iter().enumerate() {
        match decode_key(prev) {
            Some(k) if k.len() >= MIN_SECRET_BYTES => secrets.push(Secret::new(k)),
            _ => c.fail(
                "session.previous_secrets",
                format!(
                    "entry {i} is not base64 key material of at least {MIN_SECRET_BYTES} bytes"
                ),
            ),
        }
    }
    secrets
}
