//! `[server]`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::raw::RawServer;
use crate::config::{Check, ServerConfig, TlsFiles};

/// `None` when `server.public_url` is missing or invalid (reported).
pub(super) fn check(c: &mut Check<'_>, raw: &RawServer) -> Option<ServerConfig> {
    let listen = match raw.listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.fail(
                "server.listen",
                format!("`{}` is not an address like \"0.0.0.0:4180\"", raw.listen),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let public_url_text = c.required("server.public_url", &raw.public_url).to_string();
    let public_url = match url::Url::parse(&public_url_text) {
        _ if public_url_text.is_empty() => None,
        // Browsers reach `*.localhost` on the loopback interface only
        // (RFC 6761 §6.3), and treat it as a secure context: a local
        // multi-host setup may serve it over http.
        Ok(u) if u.scheme() == "http" && u.host_str().is_some_and(is_localhost_name) => Some(u),
        _ => c.url("server.public_url", &public_url_text),
    };
    if let Some(u) = &public_url {
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            c.fail("server.public_url", "must be an origin such as \"https://app.example.com\" (no path, query or fragment)");
        }
    }
    let shutdown_grace = c.duration("server.shutdown_grace", &raw.shutdown_grace);
    let header_read_timeout = c.duration("server.header_read_timeout", &raw.header_read_timeout);
    if header_read_timeout.is_zero() {
        c.fail("server.header_read_timeout", "must be more than zero");
    }
    let idle_timeout = c.duration("server.idle_timeout", &raw.idle_timeout);
    if idle_timeout.is_zero() {
        c.fail("server.idle_timeout", "must be more than zero");
    }
    if raw.max_connections == 0 {
        c.fail("server.max_connections", "must be at least 1");
    }
    let tls = match &raw.tls {
        None => None,
        Some(t) => {
            let files = TlsFiles {
                cert_file: PathBuf::from(&t.cert_file),
                key_file: PathBuf::from(&t.key_file),
            };
            match crate::server::tls::load(&files.cert_file, &files.key_file) {
                Ok(_) => Some(files),
                Err(e @ crate::server::tls::TlsError::Certs { .. }) => {
                    c.fail("server.tls.cert_file", e.to_string());
                    None
                }
                Err(e) => {
                    c.fail("server.tls.key_file", e.to_string());
                    None
                }
            }
        }
    };
    let mut trusted_proxies = Vec::new();
    for p in &raw.trusted_proxies {
        let parsed = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => c.fail(
                "server.trusted_proxies",
                format!("`{p}` is not an address or CIDR range like \"10.0.0.0/8\""),
            ),
        }
    }
    let health_path = probe_path(c, "server.health_path", &raw.health_path);
    let ready_path = probe_path(c, "server.ready_path", &raw.ready_path);
    if health_path.is_some() && health_path == ready_path {
        c.fail("server.ready_path", "must differ from server.health_path");
    }
    Some(ServerConfig {
        listen,
        public_url: public_url?,
        shutdown_grace,
        header_read_timeout,
        idle_timeout,
        max_connections: raw.max_connections,
        max_connections_per_client: raw.max_connections_per_client,
        max_requests_per_connection: raw.max_requests_per_connection,
        trusted_proxies,
        allowed_redirect_domains: raw.allowed_redirect_domains.clone(),
        tls,
        health_path,
        ready_path,
    })
}

/// A probe path: absolute, one plain path (no query, no `..`), outside
/// `/oauth2/`; `""` turns the probe off.
fn probe_path(c: &mut Check<'_>, key: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    let plain = value.starts_with('/')
        && !value.starts_with("/oauth2/")
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'%')
        && !value.split('/').any(|s| s == "." || s == "..");
    if !plain {
        c.fail(
            key,
            format!("`{value}` is not a plain absolute path outside /oauth2/ (or \"\" for none)"),
        );
        return None;
    }
    Some(value.to_string())
}

/// `name.localhost`: loopback for browsers (RFC 6761 §6.3).
fn is_localhost_name(host: &str) -> bool {
    host.to_ascii_lowercase()
        .strip_suffix(".localhost")
        .is_some_and(|name| !name.is_empty())
}
