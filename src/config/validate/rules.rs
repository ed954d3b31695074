//! `[authorization]`, `[routes]`, `server.allowed_redirect_domains`: checked
//! by key here, compiled by the gateway.

use url::Url;

use crate::config::raw::RawConfig;
use crate::config::{bearer_algorithms, BearerConfig, Check};

pub(super) fn check(c: &mut Check<'_>, raw: &RawConfig, public_url: Option<&Url>) -> BearerConfig {
    let compiled = |c: &mut Check<'_>, errs: Vec<(String, String)>| {
        for (k, m) in errs {
            c.fail(&k, m);
        }
    };
    let fold_case = raw.upstream.case_insensitive_paths;
    // Checked here, by key; the gateway compiles them again for use.
    if let Err(e) = crate::authz::Policy::new(&raw.authorization, fold_case) {
        compiled(c, e);
    }
    rule_providers(c, raw);
    if let Err(e) = crate::proxy::path::PublicRoutes::new(&raw.routes, fold_case) {
        compiled(c, e);
    }
    if let Some(origin) = public_url.cloned() {
        let domains = &raw.server.allowed_redirect_domains;
        if let Err(e) = crate::auth::redirect::RedirectPolicy::new(origin, domains) {
            compiled(c, e);
        }
    }
    let bearer = BearerConfig {
        audiences: raw.authorization.bearer_audiences.clone(),
        algorithms: bearer_algorithms(c, &raw.authorization.bearer_algorithms),
        introspection: raw.authorization.bearer_introspection,
        issuers: bearer_issuers(c, raw),
    };
    if bearer.audiences.iter().any(String::is_empty) {
        c.fail(
            "authorization.bearer_audiences",
            "entries must not be empty",
        );
    }
    for id in raw.all_providers().filter_map(|p| p.client_id.as_ref()) {
        if bearer.audiences.iter().any(|a| a == id) {
            c.fail(
                "authorization.bearer_audiences",
                "must not contain provider.client_id: ID tokens carry that audience and must not pass as access tokens",
            );
        }
    }
    bearer
}

/// `authorization.rules[].providers`: ids of configured providers.
fn rule_providers(c: &mut Check<'_>, raw: &RawConfig) {
    let ids: Vec<&str> = raw
        .all_providers()
        .map(|p| p.id.as_deref().unwrap_or(crate::session::DEFAULT_PROVIDER))
        .collect();
    for (i, rule) in raw.authorization.rules.iter().enumerate() {
        for (j, id) in rule.providers.iter().enumerate() {
            if !ids.contains(&id.as_str()) {
                c.fail(
                    &format!("authorization.rules[{i}].providers[{j}]"),
                    format!(
                        "`{id}` is not a provider id; the providers are {}",
                        ids.join(", ")
                    ),
                );
            }
        }
    }
}

/// `[[authorization.bearer_issuers]]`: an https (or loopback http) issuer
/// other than the provider's, with at least one audience.
fn bearer_issuers(c: &mut Check<'_>, raw: &RawConfig) -> Vec<crate::auth::settings::BearerIssuer> {
    let mut out = Vec::new();
    for (i, b) in raw.authorization.bearer_issuers.iter().enumerate() {
        let key = format!("authorization.bearer_issuers[{i}]");
        if c.url(&format!("{key}.issuer"), &b.issuer).is_none() {
            continue;
        }
        if raw.provider.issuer.as_deref() == Some(b.issuer.as_str()) {
            c.fail(
                &format!("{key}.issuer"),
                "is provider.issuer: its tokens are checked against authorization.bearer_audiences",
            );

            continue;
        }
        if b.audiences.is_empty() || b.audiences.iter().any(String::is_empty) {
            c.fail(
                &format!("{key}.audiences"),
                "must list at least one non-empty audience",
            );
            continue;
        }
        out.push(crate::auth::settings::BearerIssuer {
            issuer: b.issuer.clone(),
            audiences: b.audiences.clone(),
        });
    }
    out
}
