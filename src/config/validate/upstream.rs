//! `[upstream]` and `[headers]`.

use url::Url;

use crate::config::raw::{RawConfig, RawIdentityHeaders, RawUpstream};
use crate::config::{
    pkcs8_from_pem, read_file, AssertionConfig, Check, IdentityHeaders, Secret, UpstreamConfig,
};

/// `None` when `upstream.url` is missing or invalid (reported).
pub(super) fn check(c: &mut Check<'_>, raw: &RawConfig) -> Option<UpstreamConfig> {
    let upstream_text = c.required("upstream.url", &raw.upstream.url).to_string();
    let upstream_url = match Url::parse(&upstream_text) {
        Ok(u) if u.scheme() == "http" && u.host().is_some() => Some(u),
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
        Ok(_) => {
            c.fail(
                "upstream.url",
                format!("`{upstream_text}` must be an http:// or https:// URL with a host"),
            );
            None
        }
        Err(e) if !upstream_text.is_empty() => {
            c.fail(
                "upstream.url",
                format!("`{upstream_text}` is not a URL: {e}"),
            );
            None
        }
        Err(_) => None,
    };
    if let Some(u) = &upstream_url {
        if u.query().is_some() || u.fragment().is_some() {
            c.fail("upstream.url", "must not have a query or fragment");
        }
    }
    let upstream_timeout = c.duration("upstream.timeout", &raw.upstream.timeout);
    let upstream_ca = raw
        .upstream
        .ca_file
        .as_ref()
        .and_then(|p| c.pem_certs("upstream.ca_file", p));
    let client_cert = client_cert(c, &raw.upstream);
    let claim_headers = claim_headers(c, &raw.headers);
    let assertion = assertion(c, &raw.upstream, &upstream_text);
    let connect_timeout = c.duration("upstream.connect_timeout", &raw.upstream.connect_timeout);
    let headers = identity_headers(c, &raw.upstream.headers);
    let u = &raw.upstream;
    Some(UpstreamConfig {
        url: upstream_url?,
        timeout: upstream_timeout,
        connect_timeout,
        pass_host_header: u.pass_host_header,
        case_insensitive_paths: u.case_insensitive_paths,
        pass_user_headers: u.pass_user_headers,
        // A DPoP-bound token is useless to an upstream without tollgate's key.
        pass_access_token: u
            .pass_access_token
            .unwrap_or(!raw.all_providers().any(|p| p.dpop)),
        // With several providers, subjects alone do not tell users apart.
        pass_provider: raw.all_providers().nth(1).is_some(),
        pass_authorization_header: u.pass_authorization_header,
        headers,
        claim_headers,
        assertion,
        ca_file: upstream_ca,
        client_cert,
        max_in_flight: (u.max_in_flight > 0).then_some(u.max_in_flight),
        queue_timeout: c.duration("upstream.queue_timeout", &u.queue_timeout),
    })
}

/// `upstream.client_cert_file` and `client_key_file`: both or neither.
fn client_cert(c: &mut Check<'_>, raw: &RawUpstream) -> Option<(Vec<u8>, Secret)> {
    match (&raw.client_cert_file, &raw.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_pem = c.pem_certs("upstream.client_cert_file", cert);
            let key_pem = match read_file(key) {
                Ok(k) => Some(Secret::new(k)),
                Err(e) => {
                    c.fail(
                        "upstream.client_key_file",
                        format!("cannot read `{key}`: {e}"),
                    );
                    None
                }
            };
            cert_pem.zip(key_pem)
        }
        (Some(_), None) => {
            c.fail(
                "upstream.client_key_file",
                "is required with upstream.client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            c.fail(
                "upstream.client_cert_file",
                "is required with upstream.client_key_file",
            );
            None
        }
    }
}

/// `[headers]`: extra identity headers from claims.
fn claim_headers(
    c: &mut Check<'_>,
    raw: &std::collections::BTreeMap<String, String>,
) -> Vec<(http::HeaderName, String)> {
    let mut claim_headers = Vec::new();
    for (name, claim) in raw {
        const RESERVED: [&str; 11] = [
            "host",
            "cookie",
            "authorization",
            "connection",
            "upgrade",
            "transfer-encoding",
            "content-length",
            "te",
            "trailer",
            "keep-alive",
            "x-request-id",
        ];
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if RESERVED.contains(&h.as_str()) => c.fail(
                &format!("headers.{name}"),
                "is a header tollgate or HTTP itself manages; pick another name",
            ),
            Ok(h) if !claim.is_empty() => claim_headers.push((h, claim.clone())),
            Ok(_) => c.fail(
                &format!("headers.{name}"),
                "needs a claim path such as \"sub\" or \"org.id\"",
            ),
            Err(_) => c.fail(
                &format!("headers.{name}"),
                format!("`{name}` is not a valid header name"),
            ),
        }
    }
    claim_headers
}

/// `upstream.assertion`: the signing key is read and checked here.
fn assertion(c: &mut Check<'_>, raw: &RawUpstream, upstream_text: &str) -> Option<AssertionConfig> {
    if !raw.assertion {
        return None;
    }
    {
        let key = match &raw.assertion_key_file {
            Some(path) => {
                match read_file(path) {
                    Ok(pem) => {
                        match pkcs8_from_pem(&pem) {
                            Some(der) => Some(Secret::new(der)),
                            None => {
                                c.fail("upstream.assertion_key_file", format!("`{path}` is not a PEM \"PRIVATE KEY\" (PKCS#8) of a P-256 key"));
                                None
                            }
                        }
                    }
                    Err(e) => {
                        c.fail(
                            "upstream.assertion_key_file",
                            format!("cannot read `{path}`: {e}"),
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let cfg = AssertionConfig {
            key_pkcs8: key,
            audience: raw
                .assertion_audience
                .clone()
                .unwrap_or_else(|| upstream_text.trim_end_matches('/').to_string()),
        };
        // A key of the wrong kind is a config error, not a failed start.
        if let Err(e) = cfg.check_key() {
            c.fail("upstream.assertion_key_file", e.to_string());
        }
        Some(cfg)
    }
}

/// `[upstream.headers]`: the names of the identity headers.
fn identity_headers(c: &mut Check<'_>, h: &RawIdentityHeaders) -> IdentityHeaders {
    let header = |c: &mut Check<'_>, key: &str, value: &str| -> http::HeaderName {
        match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                c.fail(key, format!("`{value}` is not a valid header name"));
                http::HeaderName::from_static("x-invalid")
            }
        }
    };
    IdentityHeaders {
        user: header(c, "upstream.headers.user", &h.user),
        email: header(c, "upstream.headers.email", &h.email),
        preferred_username: header(
            c,
            "upstream.headers.preferred_username",
            &h.preferred_username,
        ),
        groups: header(c, "upstream.headers.groups", &h.groups),
        access_token: header(c, "upstream.headers.access_token", &h.access_token),
    }
}
