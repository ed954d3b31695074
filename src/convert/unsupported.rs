//! Options tollgate has no key for, and the final sweep: every option
//! given gets a line in the report.

use super::source::{self, Raw};
use super::{ConvertError, Ctx};

/// Whether a difference is a change of behaviour or something missing.
#[derive(Clone, Copy)]
enum Diff {
    Changed,
    Unmapped,
}

/// Switches tollgate always has in one position: (option, tollgate's
/// position, what a different value meant, why).
const FIXED: &[(&str, bool, Diff, &str)] = &[
    ("cookie_httponly", true, Diff::Changed, "tollgate's cookies are always HttpOnly"),
    ("proxy_websockets", true, Diff::Changed, "tollgate always passes WebSocket upgrades on"),
    ("insecure_oidc_skip_nonce", false, Diff::Changed, "tollgate always sends a nonce and checks it in the ID token"),
    ("skip_oidc_discovery", false, Diff::Unmapped, "tollgate requires OpenID Connect discovery from provider.issuer; endpoints cannot be set by hand"),
    ("insecure_oidc_skip_issuer_verification", false, Diff::Unmapped, "tollgate always checks the ID token's issuer (kind = \"entra\" handles Entra ID's multi-tenant issuers)"),
    ("ssl_insecure_skip_verify", false, Diff::Unmapped, "tollgate always verifies the provider's certificate: trust a private CA with provider.ca_file"),
    ("ssl_upstream_insecure_skip_verify", false, Diff::Unmapped, "tollgate always verifies an https upstream's certificate: trust a private CA with upstream.ca_file"),
    ("redis_insecure_skip_tls_verify", false, Diff::Unmapped, "tollgate always verifies a rediss:// server's certificate"),
    ("skip_auth_strip_headers", true, Diff::Changed, "tollgate always removes client-sent copies of the identity headers"),
    ("set_basic_auth", false, Diff::Unmapped, "/oauth2/auth never answers Basic credentials"),
    ("set_authorization_header", false, Diff::Unmapped, "/oauth2/auth answers no Authorization header: use X-Auth-Request-Access-Token, or upstream.assertion for a signed identity"),
    ("prefer_email_to_user", false, Diff::Unmapped, "X-Forwarded-User carries the ID token's `sub`; the address is in X-Forwarded-Email"),
    ("disable_keep_alives", false, Diff::Unmapped, "tollgate keeps upstream connections alive; there is no switch"),
    ("force_https", false, Diff::Unmapped, "tollgate does not redirect http to https: serve TLS with [server.tls] or in front of tollgate"),
    ("allow_query_semicolons", false, Diff::Unmapped, "tollgate passes the query on untouched and never reads it for decisions; there is no switch"),
    ("gcp_healthchecks", false, Diff::Unmapped, "no special health-check paths or user agents: use server.health_path and server.ready_path"),
    ("relative_redirect_url", false, Diff::Unmapped, "the redirect URI is always absolute (server.public_url + \"/oauth2/callback\")"),
    ("skip_provider_button", true, Diff::Changed, "tollgate has no sign-in page: a browser goes straight to the provider"),
    ("display_htpasswd_form", false, Diff::Changed, "tollgate has no sign-in form"),
    ("show_debug_on_error", false, Diff::Unmapped, "tollgate's error pages never show details (the log has them, by request id)"),
    ("encode_state", true, Diff::Changed, "tollgate's state parameter is always an opaque random value"),
    ("session_cookie_minimal", false, Diff::Unmapped, "tollgate's session always holds the tokens it needs: session.store = \"redis\" keeps the cookie small"),
    ("cookie_csrf_per_request", true, Diff::Changed, "tollgate always gives each login its own login cookie"),
    ("standard_logging", true, Diff::Unmapped, "tollgate always logs its own events (log.level chooses how many)"),
    ("request_logging", true, Diff::Unmapped, "tollgate always writes one access line per request (target tollgate::access)"),
    ("auth_logging", true, Diff::Unmapped, "tollgate always writes audit lines for logins, logouts and denials (target tollgate::audit)"),
    ("silence_ping_logging", false, Diff::Unmapped, "probe requests are logged like any other, with outcome = probe"),
    ("errors_to_info_log", true, Diff::Changed, "every log line goes to stdout"),
    ("logging_local_time", false, Diff::Changed, "tollgate's timestamps are UTC"),
    ("logging_compress", false, Diff::Unmapped, "logs go to stdout: rotate and compress them where they are collected"),
    ("google_use_organization_id", false, Diff::Unmapped, "Google Workspace group lookups are not supported"),
];

/// Options tollgate has nothing for: (option, why).
const UNSUPPORTED: &[(&str, &str)] = &[
    ("tls_cipher_suites", "tollgate uses rustls' default cipher suites; there is no setting"),
    ("metrics_secure_address", "the metrics listener is plain HTTP (keep it off the internet; metrics.listen)"),
    ("metrics_tls_cert_file", "the metrics listener is plain HTTP"),
    ("metrics_tls_key_file", "the metrics listener is plain HTTP"),
    ("real_client_ip_header", "tollgate decides nothing by client address; forwarding headers are believed from server.trusted_proxies only"),
    ("trusted_ips", "tollgate never skips authentication by client address (oauth2-proxy's was open to spoofed headers, GHSA-wr5q-7wxw-x568): use [[routes.public]] for paths, or bearer tokens for machines"),
    ("ping_user_agent", "tollgate's probes answer by path only; a User-Agent never lets a request through (GHSA-5hvv-m4w4-gf6v)"),
    ("basic_auth_password", "tollgate sends no Basic credentials upstream"),
    ("signature_key", "GAP-Signature is not supported: upstream.assertion = true sends a signed identity JWT instead"),
    ("provider_display_name", "tollgate has no sign-in page"),
    ("login_url", "tollgate finds the provider's endpoints by discovery from provider.issuer"),
    ("redeem_url", "tollgate finds the provider's endpoints by discovery from provider.issuer"),
    ("profile_url", "tollgate finds the provider's endpoints by discovery from provider.issuer"),
    ("validate_url", "tollgate finds the provider's endpoints by discovery from provider.issuer"),
    ("oidc_jwks_url", "tollgate finds the provider's keys by discovery from provider.issuer"),
    ("oidc_public_key_files", "tollgate finds the provider's keys by discovery from provider.issuer"),
    ("backend_logout_url", "tollgate signs out at the provider through the end_session_endpoint its discovery names (see provider.post_logout_redirect_url)"),
    ("jwt_key", "login.gov's private_key_jwt: tollgate's is provider.client_auth = \"private_key_jwt\" with provider.client_key_file"),
    ("jwt_key_file", "login.gov's private_key_jwt: tollgate's is provider.client_auth = \"private_key_jwt\" with provider.client_key_file"),
    ("pubjwk_url", "login.gov only; tollgate finds keys by discovery"),
    ("azure_graph_group_field", "tollgate's Entra groups are object ids (and app roles)"),
    ("github_token", "repository checks are not supported"),
    ("github_users", "not supported (tollgate's GitHub groups are organisations and teams): these users now need an allowed organisation or team"),
    ("google_admin_email", "Google Workspace group lookups are not supported"),
    ("google_service_account_json", "Google Workspace group lookups are not supported"),
    ("google_use_application_default_credentials", "Google Workspace group lookups are not supported"),
    ("google_target_principal", "Google Workspace group lookups are not supported"),
    ("google_admin_api_user_scope", "Google Workspace group lookups are not supported"),
    ("htpasswd_file", "no local users: every login goes through the provider"),
    ("htpasswd_user_groups", "no local users: every login goes through the provider"),
    ("cookie_csrf_per_request_limit", "tollgate's login cookies are not configurable"),
    ("cookie_csrf_expire", "tollgate's login cookies are not configurable"),
    ("cookie_csrf_samesite", "tollgate's login cookies are always SameSite=Lax (None with provider.response_mode = \"form_post\")"),
    ("redis_ca_path", "tollgate has no Redis CA setting"),
    ("redis_connection_idle_timeout", "not configurable (session.redis.timeout limits each command)"),
    ("http_store_base_url", "tollgate keeps sessions in the cookie or in Redis"),
    ("http_store_api_key", "tollgate keeps sessions in the cookie or in Redis"),
    ("custom_templates_dir", "tollgate's pages are built in"),
    ("custom_sign_in_logo", "tollgate has no sign-in page"),
    ("banner", "tollgate has no sign-in page"),
    ("footer", "tollgate's pages are built in"),
    ("exclude_logging_paths", "every request is logged"),
    ("auth_logging_format", "log lines have fixed fields, as text or JSON (log.format)"),
    ("request_logging_format", "log lines have fixed fields, as text or JSON (log.format)"),
    ("standard_logging_format", "log lines have fixed fields, as text or JSON (log.format)"),
    ("logging_filename", "logs go to stdout: collect them there"),
    ("logging_max_size", "logs go to stdout: rotate them where they are collected"),
    ("logging_max_age", "logs go to stdout: rotate them where they are collected"),
    ("logging_max_backups", "logs go to stdout: rotate them where they are collected"),
    ("alpha_config", "the alpha YAML configuration is not converted: carry its settings over by hand"),
    ("convert_config_to_alpha", "a command, not a setting"),
    ("config_test", "a command, not a setting (tollgate's is `tollgate check-config`)"),
    ("version", "a command, not a setting"),
];

/// The report lines still missing: fixed switches, unsupported options,
/// empty values, unknown names and stray arguments.
pub(super) fn rest(cx: &mut Ctx) -> Result<(), ConvertError> {
    // The file `--config` names is the caller's input already.
    cx.touch("config");
    for &(option, tollgate, diff, why) in FIXED {
        if cx.done.contains(option) {
            continue;
        }
        match cx.flag(option)? {
            None => {}
            Some(v) if v == tollgate => cx.mapped(option),
            Some(_) => match diff {
                Diff::Changed => cx.changed(option, why),
                Diff::Unmapped => cx.unmapped(option, why),
            },
        }
    }
    for &(option, why) in UNSUPPORTED {
        if cx.given(option) {
            cx.unmapped(option, why);
        }
    }
    let left: Vec<(String, bool)> = cx
        .opts
        .values
        .iter()
        .filter(|(key, _)| !cx.done.contains(key.as_str()))
        .map(|(key, raw)| (key.clone(), is_empty(raw)))
        .collect();
    for (key, empty) in left {
        if empty {
            cx.changed(&key, "empty: treated as not set, as oauth2-proxy does");
        } else if source::kind(&key).is_some() {
            cx.unmapped(&key, "not supported by tollgate");
        }
    }
    for (name, meant) in cx.opts.unknown.clone() {
        match meant {
            None => cx.unmapped(&name, "not a known oauth2-proxy option"),
            Some(key) => cx.unmapped(
                &name,
                format!(
                    "not a known oauth2-proxy option (oauth2-proxy ignores it; the variable for `{key}` is OAUTH2_PROXY_{})",
                    key.to_ascii_uppercase()
                ),
            ),
        }
    }
    for i in 0..cx.opts.stray {
        cx.unmapped(
            &format!("argument #{}", i + 1),
            "not a flag (oauth2-proxy ignores such arguments)",
        );
    }
    Ok(())
}

fn is_empty(raw: &Raw) -> bool {
    match raw {
        Raw::Bool(_) => false,
        Raw::Text(t) => t.trim().is_empty(),
        Raw::List(items) => items.iter().all(|i| i.trim().is_empty()),
    }
}
