//! `[authorization]` and `[routes]`: who may pass, with which tokens, and
//! which paths need no login.
//!
//! oauth2-proxy lets a user in when the email check (`email_domains`)
//! passes *and* the provider's group check (`allowed_groups`, roles, GitHub
//! organisations...) passes. tollgate's shortcuts admit a user who matches
//! any one of them, so when both kinds are present the groups become a
//! rule that every request must pass as well.

use super::doc::{list, q, Line, Section};
use super::{ConvertError, Ctx};

pub(super) fn map(cx: &mut Ctx) -> Result<(), ConvertError> {
    let domains = email_domains(cx);
    let mut groups = Vec::new();
    provider_groups(cx, &mut groups);
    let placeholders = restrictions(cx);
    write(cx, &domains, &groups, &placeholders);
    bearer(cx)?;
    routes(cx)
}

/// `allowed_email_domains`; empty when any address may pass.
fn email_domains(cx: &mut Ctx) -> Vec<String> {
    let given = cx.list("email_domains");
    if given.is_empty() {
        if !cx.given("authenticated_emails_file") && !cx.given("htpasswd_file") {
            cx.changed(
                "email_domains",
                "not set: oauth2-proxy refuses to start without email_domains, authenticated_emails_file or htpasswd_file (email_domains = [\"*\"] admits everyone); tollgate admits every authenticated user unless [authorization] says otherwise",
            );
        }
        return Vec::new();
    }
    cx.mapped("email_domains");
    if given.iter().any(|d| d == "*") {
        return Vec::new();
    }
    given.iter().map(|d| d.to_ascii_lowercase()).collect()
}

/// Adds `option`'s groups when oauth2-proxy's provider `owner` used it.
fn provider_list(cx: &mut Ctx, option: &str, owners: &[&str], into: &mut Vec<String>) {
    let values = cx.list(option);
    if values.is_empty() {
        return;
    }
    if owners.contains(&cx.provider.as_str()) {
        into.extend(values);
        cx.mapped(option);
    } else {
        let why = format!(
            "only used with provider = {} (oauth2-proxy ignored it here)",
            owners.join(" or ")
        );
        cx.unmapped(option, why);
    }
}

/// The groups a user must be in: `allowed_groups` and each provider's own
/// group options, which tollgate's presets turn into groups.
fn provider_groups(cx: &mut Ctx, groups: &mut Vec<String>) {
    let allowed = cx.list("allowed_groups");
    if !allowed.is_empty() {
        groups.extend(allowed);
        cx.mapped("allowed_groups");
    }
    // Keycloak: realm roles as they are, client roles as client:role, in
    // oauth2-proxy's allowed_roles and in tollgate's keycloak groups alike.
    provider_list(cx, "allowed_roles", &["keycloak-oidc"], groups);
    provider_list(cx, "keycloak_groups", &["keycloak"], groups);
    provider_list(cx, "gitlab_groups", &["gitlab"], groups);
    github_groups(cx, groups);
}

/// GitHub: an organisation is the group `org`, a team `org/team`.
fn github_groups(cx: &mut Ctx, groups: &mut Vec<String>) {
    let org = cx.text("github_org");
    let teams = cx.list("github_team");
    if cx.provider != "github" {
        for option in ["github_org", "github_team"] {
            if cx.given(option) {
                cx.unmapped(
                    option,
                    "only used with provider = github (oauth2-proxy ignored it here)",
                );
            }
        }
        return;
    }
    match (org, teams.is_empty()) {
        (Some(org), true) => {
            groups.push(org);
            cx.mapped("github_org");
        }
        (Some(org), false) => {
            groups.extend(teams.iter().map(|t| format!("{org}/{t}")));
            cx.mapped("github_org");
            cx.mapped("github_team");
        }
        (None, false) => cx.unmapped(
            "github_team",
            "a team needs github_org: tollgate's team groups are org/team",
        ),
        (None, true) => {}
    }
}

/// Restrictions tollgate cannot express. Each leaves a placeholder address
/// that tollgate refuses, so the result does not start more open than
/// oauth2-proxy was.
fn restrictions(cx: &mut Ctx) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(file) = cx.text("authenticated_emails_file") {
        out.push(format!("<the addresses in {file}>"));
        cx.unmapped(
            "authenticated_emails_file",
            "tollgate has no emails file: list the addresses in authorization.allowed_emails (a placeholder there keeps tollgate from starting until you do)",
        );
    }
    if cx.given("htpasswd_file") && !cx.given("email_domains") && out.is_empty() {
        // oauth2-proxy admitted htpasswd users only: no provider user
        // passed its (empty) email check.
        out.push("<oauth2-proxy admitted htpasswd users only>".into());
        cx.unmapped(
            "htpasswd_file",
            "no local users in tollgate, and without email_domains oauth2-proxy admitted no user of the provider: a placeholder in authorization.allowed_emails keeps tollgate from starting until you say who may pass",
        );
    }
    let unsupported = [
        ("github_repo", "github", "repository collaborators"),
        ("gitlab_projects", "gitlab", "project members"),
        (
            "google_groups",
            "google",
            "Google Workspace groups (Admin SDK)",
        ),
        ("bitbucket_team", "bitbucket", "Bitbucket teams"),
        (
            "bitbucket_repository",
            "bitbucket",
            "Bitbucket repository access",
        ),
    ];
    for (option, provider, what) in unsupported {
        if !cx.given(option) {
            continue;
        }
        if cx.provider != provider {
            cx.unmapped(
                option,
                format!("only used with provider = {provider} (oauth2-proxy ignored it here)"),
            );
            continue;
        }
        out.push(format!("<replaces {option}>"));
        cx.unmapped(
            option,
            format!("tollgate cannot restrict logins to {what}: a placeholder in authorization.allowed_emails keeps tollgate from starting until you replace it with groups, addresses or rules"),
        );
    }
    out
}

/// Writes the shortcuts, and the groups as a rule when both kinds are set.
fn write(cx: &mut Ctx, domains: &[String], groups: &[String], placeholders: &[String]) {
    if !domains.is_empty() {
        cx.doc.set(
            Section::Authorization,
            "allowed_email_domains",
            list(domains),
        );
    }
    if !placeholders.is_empty() {
        cx.doc.review(
            Section::Authorization,
            "allowed_emails",
            list(placeholders),
            "stands for oauth2-proxy restrictions tollgate cannot express (see the report); tollgate refuses to start until these are replaced",
        );
    }
    if groups.is_empty() {
        return;
    }
    if domains.is_empty() && placeholders.is_empty() {
        cx.doc
            .set(Section::Authorization, "allowed_groups", list(groups));
        return;
    }
    // oauth2-proxy wanted the email check AND the group check; tollgate's
    // shortcuts take either, so the groups become a rule every request
    // (on every path and method) must pass too.
    cx.doc.rules.push(vec![
        Line::new("name", q("groups (oauth2-proxy allowed_groups)"))
            .note("every request: oauth2-proxy required the email check and a group"),
        Line::new("allow_groups", list(groups)),
    ]);
}

/// JWT bearer tokens: `skip_jwt_bearer_tokens` and `extra_jwt_issuers`.
fn bearer(cx: &mut Ctx) -> Result<(), ConvertError> {
    let on = cx.flag("skip_jwt_bearer_tokens")?;
    let fallback = cx.flag("bearer_token_login_fallback")?;
    if on != Some(true) {
        if on.is_some() {
            cx.mapped("skip_jwt_bearer_tokens");
        }
        for option in ["extra_jwt_issuers", "bearer_token_login_fallback"] {
            if cx.given(option) {
                cx.unmapped(
                    option,
                    "unused without skip_jwt_bearer_tokens, as in oauth2-proxy",
                );
            }
        }
        return Ok(());
    }
    let own_issuer = cx
        .text("oidc_issuer_url")
        .map(|i| i.trim_end_matches('/').to_string());
    let client_id = cx.text("client_id");
    let mut own: Vec<String> = cx.list("oidc_extra_audiences");
    extra_issuers(cx, own_issuer.as_deref(), &mut own);
    own.retain(|a| Some(a) != client_id.as_ref());
    let mut seen = Vec::new();
    own.retain(|a| {
        let first = !seen.contains(a);
        seen.push(a.clone());
        first
    });
    let why = "tollgate does not accept a token for client_id as a bearer token (ID tokens carry that audience): API clients need tokens for one of authorization.bearer_audiences";
    if own.is_empty() {
        cx.doc.placeholder(
            Section::Authorization,
            "bearer_audiences",
            list(&["https://api.example.com"]),
            "the audience of your API's access tokens (never provider.client_id)",
        );
        cx.changed(
            "skip_jwt_bearer_tokens",
            format!("{why}; set bearer_audiences (a commented placeholder was written)"),
        );
    } else {
        cx.doc.review(
            Section::Authorization,
            "bearer_audiences",
            list(&own),
            "oauth2-proxy's extra audiences; tokens for client_id alone are refused",
        );
        cx.changed("skip_jwt_bearer_tokens", why);
    }
    match fallback {
        Some(true) => cx.changed(
            "bearer_token_login_fallback",
            "a refused bearer token gets 401, never a login redirect",
        ),
        Some(false) => cx.mapped("bearer_token_login_fallback"),
        None => {}
    }
    Ok(())
}

/// `extra_jwt_issuers` (`issuer=audience` pairs): the provider's own issuer
/// adds to `own`; others become `[[authorization.bearer_issuers]]`.
fn extra_issuers(cx: &mut Ctx, own_issuer: Option<&str>, own: &mut Vec<String>) {
    let entries = cx.list("extra_jwt_issuers");
    if entries.is_empty() {
        return;
    }
    let mut others: Vec<(String, Vec<String>)> = Vec::new();
    let mut bad = 0;
    for entry in &entries {
        let Some((issuer, audience)) = entry.split_once('=') else {
            bad += 1;
            continue;
        };
        let (issuer, audience) = (issuer.trim(), audience.trim().to_string());
        if issuer.is_empty() || audience.is_empty() {
            bad += 1;
        } else if Some(issuer.trim_end_matches('/')) == own_issuer {
            own.push(audience);
        } else {
            match others.iter_mut().find(|(i, _)| i == issuer) {
                Some((_, auds)) => auds.push(audience),
                None => others.push((issuer.to_string(), vec![audience])),
            }
        }
    }
    for (issuer, audiences) in others {
        cx.doc.bearer_issuers.push(vec![
            Line::new("issuer", q(&issuer)),
            Line::new("audiences", list(&audiences)),
        ]);
    }
    if bad == 0 {
        cx.mapped("extra_jwt_issuers");
    } else {
        cx.changed(
            "extra_jwt_issuers",
            "entries that are not issuer=audience were left out",
        );
    }
}

/// `[routes]`: `skip_auth_routes`, `skip_auth_regex`, preflights, API routes.
fn routes(cx: &mut Ctx) -> Result<(), ConvertError> {
    for option in ["skip_auth_routes", "skip_auth_regex"] {
        let entries = cx.list(option);
        cx.touch(option);
        for (i, entry) in entries.iter().enumerate() {
            public_route(
                cx,
                &format!("{option}[{i}]"),
                entry,
                option == "skip_auth_routes",
            );
        }
    }
    if let Some(on) = cx.flag("skip_auth_preflight")? {
        if on {
            cx.doc
                .set(Section::Routes, "allow_cors_preflight", "true".into());
            cx.changed(
                "skip_auth_preflight",
                "tollgate lets through real CORS preflights only (OPTIONS with Origin and Access-Control-Request-Method), not every OPTIONS request",
            );
        } else {
            cx.mapped("skip_auth_preflight");
        }
    }
    let api = "tollgate answers 401 (JSON) instead of a login redirect to every request that looks like an API call (Accept: application/json without text/html, X-Requested-With: XMLHttpRequest, Sec-Fetch-Mode: cors), on any path; there is no path list";
    if cx.given("api_routes") {
        cx.changed("api_routes", api);
    }
    match cx.flag("force_json_errors")? {
        Some(true) => cx.changed("force_json_errors", api),
        Some(false) => cx.mapped("force_json_errors"),
        None => {}
    }
    Ok(())
}

/// One skip-auth entry: `METHOD=regex`, `METHOD!=regex`, `regex` or
/// `!=regex` (methods only in `skip_auth_routes`).
fn public_route(cx: &mut Ctx, option: &str, entry: &str, with_method: bool) {
    if with_method && entry.contains("!=") {
        cx.unmapped(
            option,
            "a negated route (!=) has no tollgate form: list the public paths themselves",
        );
        return;
    }
    let (method, regex) = match entry.split_once('=') {
        Some((m, r)) if with_method => (Some(m.trim()), r),
        _ => (None, entry),
    };
    if let Some(m) = method {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
            cx.unmapped(option, "the part before `=` is not a method (oauth2-proxy read it as one, so this route matched no request)");
            return;
        }
    }
    let (path, exact) = anchored(regex);
    let mut lines = vec![Line::new("path", q(&path)).note(&format!("from {option}"))];
    if let Some(m) = method {
        lines.push(Line::new("methods", list(&[m.to_ascii_uppercase()])));
    }
    cx.doc.public_routes.push(lines);
    if exact {
        cx.mapped(option);
    } else {
        cx.changed(
            option,
            format!("oauth2-proxy matched this regex anywhere in the path; tollgate's route is anchored, so it was written as `{path}` to admit the same paths, which include longer ones (`^/metrics` admits /metrics-private too): tighten it if that was not meant"),
        );
    }
}

/// oauth2-proxy's unanchored path regex as tollgate's anchored one (the
/// same paths match), and whether it was tight already (anchored at the
/// start, and at the end or after a `/`).
pub(super) fn anchored(regex: &str) -> (String, bool) {
    if regex.is_empty() {
        return (".*".into(), false);
    }
    if regex.contains('|') {
        // Alternatives may carry their own anchors: keep the regex whole.
        return (format!(".*(?:{regex}).*"), false);
    }
    let (start, body) = match regex.strip_prefix('^') {
        Some(rest) => ("", rest),
        None => (".*", regex),
    };
    let (body, end) = match body.strip_suffix('$') {
        Some(rest) if !rest.ends_with('\\') => (rest, ""),
        _ => (body, ".*"),
    };
    // Anchored at the start and ending at `$` or `/`: the same paths as the
    // reader expects (`^/static/` is `/static/.*`).
    let tight = start.is_empty() && (end.is_empty() || body.ends_with('/'));
    (format!("{start}{body}{end}"), tight)
}
