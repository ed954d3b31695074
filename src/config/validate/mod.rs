//! Validation: one function per section, each reporting every problem
//! under its key into one [`Check`], and building that section's plain
//! configuration. [`validate`] puts them together.

mod profile;
mod provider;
mod rules;
mod server;
mod session;
mod upstream;

use std::net::SocketAddr;

use figment::Figment;

use super::raw::{RawConfig, RawLog};
use super::{origin, Check, Config, ConfigError, KeyError, LogConfig};
use crate::pages::branding::Branding;

pub(super) fn validate(raw: &RawConfig, figment: &Figment) -> Result<Config, ConfigError> {
    let mut c = Check {
        figment,
        errors: Vec::new(),
        entry: None,
    };
    let server = server::check(&mut c, &raw.server);
    let public_url = server.as_ref().map(|s| &s.public_url);
    let upstream = upstream::check(&mut c, raw);
    let session = session::check(&mut c, &raw.session);
    if let (Some(u), Some(public), Some(domain)) = (&upstream, public_url, &session.domain) {
        upstream::cookie_reaches(&mut c, &u.routes, public, domain);
    }
    let providers = providers(&mut c, raw, public_url, session.secure);
    let log = log(&mut c, &raw.log);
    let bearer = rules::check(&mut c, raw, public_url);
    let metrics_listen = metrics_listen(&mut c, raw, server.as_ref().map(|s| s.listen));
    let pages = pages(&mut c, &raw.pages);
    if !c.errors.is_empty() {
        return Err(ConfigError::Invalid(c.errors));
    }
    // Every `None` here was reported above, but for a missing public_url
    // that only made the default redirect URLs impossible.
    let (Some(server), Some(upstream), Some(providers)) = (server, upstream, providers) else {
        return Err(ConfigError::Invalid(vec![KeyError {
            key: "server.public_url".into(),
            origin: origin(figment, "server.public_url"),
            message: "is required".into(),
        }]));
    };
    Ok(Config {
        server,
        upstream: upstream.shared,
        upstreams: upstream.routes,
        providers,
        session,
        log,
        authorization: raw.authorization.clone(),
        routes: raw.routes.clone(),
        bearer,
        metrics_listen,
        pages,
    })
}

/// `[provider]` and each `[[providers]]` entry, with ids that tell them
/// apart. `[provider]` counts when it is written or nothing else is.
fn providers(
    c: &mut Check<'_>,
    raw: &RawConfig,
    public_url: Option<&url::Url>,
    secure: bool,
) -> Option<Vec<super::ProviderConfig>> {
    let entries = raw
        .has_primary_provider()
        .then_some((None, &raw.provider))
        .into_iter()
        .chain(
            raw.providers
                .iter()
                .enumerate()
                .map(|(i, p)| (Some(super::Entry::new("provider", "providers", i)), p)),
        );
    let mut list = Vec::new();
    let mut complete = true;
    for (entry, p) in entries {
        c.entry = entry;
        if p.response_mode == "form_post" && !secure {
            // Browsers send a cookie on a cross-site POST only with
            // SameSite=None, which they accept only on Secure cookies.
            c.fail("provider.response_mode", "\"form_post\" needs session.secure = true: the login cookie must be SameSite=None, which browsers accept only with Secure");
        }
        match provider::check(c, p, public_url) {
            Some(config)
                if list
                    .iter()
                    .any(|o: &super::ProviderConfig| o.id == config.id) =>
            {
                c.fail(
                    "provider.id",
                    format!("`{}` names another provider too", config.id),
                );
            }
            Some(config)
                if list
                    .iter()
                    .any(|o| o.hosts.iter().any(|h| config.hosts.contains(h))) =>
            {
                c.fail("provider.hosts", "names a host another provider lists too");
            }
            Some(config) => list.push(config),
            None => complete = false,
        }
    }
    c.entry = None;
    complete.then_some(list)
}

/// `[pages]`: only what is safe to put in a page and its CSS.
fn pages(c: &mut Check<'_>, raw: &super::raw::RawPages) -> Branding {
    use crate::pages::branding::{is_color, is_safe_link};
    if !is_color(&raw.accent_color) {
        c.fail(
            "pages.accent_color",
            "must be a colour like \"#0a58ca\" or \"#06c\"",
        );
    }
    if raw.product_name.chars().count() > 60 || raw.product_name.chars().any(char::is_control) {
        c.fail(
            "pages.product_name",
            "must be at most 60 characters, without control characters",
        );
    }
    if let Some(l) = raw.logo_url.as_deref().filter(|l| !is_safe_link(l, false)) {
        c.fail(
            "pages.logo_url",
            format!("`{l}` is not an https URL or a path on this site"),
        );
    }
    if let Some(u) = raw
        .support_url
        .as_deref()
        .filter(|u| !is_safe_link(u, true))
    {
        c.fail(
            "pages.support_url",
            format!("`{u}` is not an https or mailto: URL, or a path on this site"),
        );
    }
    Branding {
        product_name: raw.product_name.clone(),
        logo_url: raw.logo_url.clone(),
        accent_color: raw.accent_color.clone(),
        support_url: raw.support_url.clone(),
        template: raw
            .template_file
            .as_deref()
            .and_then(|path| page_template(c, path)),
    }
}

/// `pages.template_file`: readable UTF-8 that compiles.
fn page_template(c: &mut Check<'_>, path: &str) -> Option<(String, String)> {
    let key = "pages.template_file";
    let text = match super::read_file(path).map(String::from_utf8) {
        Ok(Ok(t)) => t,
        Ok(Err(_)) => {
            c.fail(key, format!("`{path}` is not UTF-8"));
            return None;
        }
        Err(e) => {
            c.fail(key, format!("cannot read `{path}`: {e}"));
            return None;
        }
    };
    match crate::pages::branding::compile(&text) {
        Ok(_) => Some((path.to_string(), text)),
        Err(e) => {
            c.fail(key, format!("`{path}` is not a valid template: {e}"));
            None
        }
    }
}

/// `[log]`.
fn log(c: &mut Check<'_>, raw: &RawLog) -> LogConfig {
    let json = match raw.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            c.fail(
                "log.format",
                format!("`{other}` is not one of \"text\", \"json\""),
            );
            false
        }
    };
    if !matches!(
        raw.level.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        c.fail(
            "log.level",
            format!(
                "`{}` is not one of trace, debug, info, warn, error",
                raw.level
            ),
        );
    }
    LogConfig {
        level: raw.level.to_ascii_lowercase(),
        json,
    }
}

/// `[metrics] listen`: never the proxied port.
fn metrics_listen(
    c: &mut Check<'_>,
    raw: &RawConfig,
    listen: Option<SocketAddr>,
) -> Option<SocketAddr> {
    match &raw.metrics.listen {
        None => None,
        Some(l) => {
            match l.parse::<SocketAddr>() {
                Ok(a) if Some(a) == listen => {
                    c.fail("metrics.listen", "must differ from server.listen: metrics are never served on the proxied port");
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    c.fail(
                        "metrics.listen",
                        format!("`{l}` is not an address like \"0.0.0.0:9464\""),
                    );
                    None
                }
            }
        }
    }
}
