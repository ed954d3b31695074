//! `[provider]`.

use super::doc::{inline_table, list, q, Section};
use super::{insecure_url, ConvertError, Ctx, Outcome};

pub(super) fn map(cx: &mut Ctx) -> Result<(), ConvertError> {
    kind(cx);
    issuer(cx);
    let federated = entra(cx)?;
    credentials(cx, federated);
    scopes(cx);
    login_options(cx);
    claims(cx)?;
    trust(cx)?;
    Ok(())
}

/// tollgate's `provider.kind` for an oauth2-proxy provider type, and what
/// to report.
fn kind_for(provider: &str) -> (&'static str, Outcome) {
    match provider {
        "oidc" | "generic" => ("oidc", Outcome::Mapped),
        "keycloak-oidc" => ("keycloak", Outcome::Mapped),
        "google" => ("google", Outcome::Mapped),
        "gitlab" => ("gitlab", Outcome::Mapped),
        "github" => ("github", Outcome::Mapped),
        "entra-id" => ("entra", Outcome::Mapped),
        "keycloak" => ("keycloak", Outcome::Changed(
            "oauth2-proxy's legacy keycloak provider used fixed login/redeem/validate URLs; tollgate's keycloak preset speaks OpenID Connect: provider.issuer must be the realm, https://<host>/realms/<realm>".into(),
        )),
        "azure" => ("entra", Outcome::Changed(
            "the deprecated azure provider becomes kind = \"entra\" (Entra ID v2.0 endpoints): check the issuer or tenant, and that group ids still match".into(),
        )),
        "adfs" | "cidaas" => ("oidc", Outcome::Changed(format!(
            "no {provider} preset in tollgate yet; its generic OpenID Connect (kind = \"oidc\", discovery from provider.issuer) should work, as oauth2-proxy's {provider} provider is OpenID Connect too"
        ))),
        _ => ("oidc", Outcome::Unmapped(format!(
            "no `{provider}` preset in tollgate yet, and tollgate speaks OpenID Connect only (discovery from provider.issuer; endpoints cannot be set by hand): if {provider} offers OpenID Connect, kind = \"oidc\" with its issuer may work"
        ))),
    }
}

fn kind(cx: &mut Ctx) {
    let given = cx.text("provider").map(|p| p.to_ascii_lowercase());
    let provider = given.clone().unwrap_or_else(|| "google".into());
    let (kind, outcome) = kind_for(&provider);
    cx.provider = provider;
    cx.kind = kind;
    match (&given, &outcome) {
        (None, _) => {
            cx.doc.note(
                Section::Provider,
                "kind",
                q(kind),
                "oauth2-proxy's default provider is google",
            );
            cx.changed(
                "provider",
                "not set: oauth2-proxy's default provider is google, so kind = \"google\"",
            );
        }
        (Some(_), Outcome::Mapped) => cx.doc.set(Section::Provider, "kind", q(kind)),
        (Some(_), Outcome::Changed(why) | Outcome::Unmapped(why)) => {
            let why = why.clone();
            cx.doc.review(Section::Provider, "kind", q(kind), &why);
        }
    }
    cx.outcome("provider", outcome);
}

fn issuer(cx: &mut Ctx) {
    match cx.text("oidc_issuer_url") {
        Some(_) if cx.kind == "github" => cx.unmapped(
            "oidc_issuer_url",
            "not used by oauth2-proxy's github provider; for GitHub Enterprise Server, provider.issuer is its base URL",
        ),
        Some(issuer) => match insecure_url(&issuer) {
            Some(why) => {
                cx.doc.review(Section::Provider, "issuer", q(&issuer), why);
                cx.changed("oidc_issuer_url", why);
            }
            None => {
                cx.doc.set(Section::Provider, "issuer", q(&issuer));
                cx.mapped("oidc_issuer_url");
            }
        },
        // The presets know these issuers; entra derives its own (below).
        None if matches!(cx.kind, "google" | "gitlab" | "github" | "entra") => {}
        None => cx.doc.placeholder(
            Section::Provider,
            "issuer",
            q("https://idp.example.com"),
            "required: the provider's issuer, exactly as its /.well-known/openid-configuration says",
        ),
    }
}

/// Entra ID: tenant, allowed tenants, workload identity. Returns whether
/// the client authenticates with a federated token (no secret).
fn entra(cx: &mut Ctx) -> Result<bool, ConvertError> {
    let own = [
        "azure_tenant",
        "entra_id_allowed_tenants",
        "entra_id_federated_token_auth",
    ];
    if cx.kind != "entra" {
        for option in own {
            if cx.given(option) {
                cx.unmapped(
                    option,
                    "only used with provider = entra-id or azure (oauth2-proxy ignored it here)",
                );
            }
        }
        return Ok(false);
    }
    let issuer = cx.text("oidc_issuer_url");
    let tenant = cx.text("azure_tenant");
    let multi_names = ["common", "organizations", "consumers"];
    let multi = match &issuer {
        Some(i) => multi_names.iter().any(|m| i.contains(&format!("/{m}/"))),
        None => {
            let t = tenant.clone().unwrap_or_else(|| "common".into());
            cx.doc.set(Section::Provider, "tenant", q(&t));
            multi_names.contains(&t.as_str())
        }
    };
    if tenant.is_some() {
        match &issuer {
            Some(_) => cx.changed("azure_tenant", "provider.issuer names the tenant already"),
            None => cx.mapped("azure_tenant"),
        }
    }
    let allowed = cx.list("entra_id_allowed_tenants");
    match (multi, allowed.is_empty()) {
        (true, false) => {
            cx.doc
                .set(Section::Provider, "allowed_tenants", list(&allowed));
            cx.mapped("entra_id_allowed_tenants");
        }
        (true, true) => cx.doc.placeholder(
            Section::Provider,
            "allowed_tenants",
            list(&["<tenant id>"]),
            "required with a multi-tenant authority: the tenant ids whose users may sign in",
        ),
        (false, false) => cx.changed(
            "entra_id_allowed_tenants",
            "the issuer names one tenant, and only its users can sign in",
        ),
        (false, true) => {}
    }
    let federated = cx.flag("entra_id_federated_token_auth")?;
    if federated == Some(true) {
        cx.doc
            .set(Section::Provider, "client_auth", q("client_assertion_file"));
        cx.doc.review(
            Section::Provider,
            "client_assertion_file",
            q("/var/run/secrets/azure/tokens/azure-identity-token"),
            "the file AZURE_FEDERATED_TOKEN_FILE names (Azure Workload Identity)",
        );
        cx.changed(
            "entra_id_federated_token_auth",
            "client_auth = \"client_assertion_file\": check client_assertion_file is the file AZURE_FEDERATED_TOKEN_FILE names",
        );
    } else if federated == Some(false) {
        cx.mapped("entra_id_federated_token_auth");
    }
    Ok(federated == Some(true))
}

fn credentials(cx: &mut Ctx, federated: bool) {
    match cx.text("client_id") {
        Some(id) => {
            cx.doc.set(Section::Provider, "client_id", q(&id));
            cx.mapped("client_id");
        }
        None => cx.doc.placeholder(
            Section::Provider,
            "client_id",
            q("my-app"),
            "required: the client id registered at the provider",
        ),
    }
    let file = cx.text("client_secret_file");
    if let Some(f) = &file {
        cx.doc.set(Section::Provider, "client_secret_file", q(f));
        cx.mapped("client_secret_file");
    }
    match (cx.text("client_secret"), file.is_some()) {
        (Some(_), true) => cx.changed(
            "client_secret",
            "not carried: client_secret_file is set and tollgate takes one of the two (oauth2-proxy used the inline secret: check the file holds the same one)",
        ),
        (Some(secret), false) => {
            cx.doc.set(Section::Provider, "client_secret", q(&secret));
            cx.mapped("client_secret");
        }
        (None, false) if !federated => cx.doc.placeholder(
            Section::Provider,
            "client_secret_file",
            q("/var/run/secrets/tollgate/client-secret"),
            "required: the client secret (or client_secret inline)",
        ),
        (None, _) => {}
    }
}

fn scopes(cx: &mut Ctx) {
    let Some(scope) = cx.text("scope") else {
        // oauth2-proxy asks for "groups" too when allowed_groups is set and
        // no scope is.
        let oidc = matches!(cx.kind, "oidc" | "keycloak");
        if oidc && cx.given("allowed_groups") {
            cx.doc.note(
                Section::Provider,
                "scopes",
                list(&["openid", "email", "profile", "groups"]),
                "oauth2-proxy's default scope with allowed_groups set",
            );
        }
        return;
    };
    let mut scopes: Vec<String> = scope
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if cx.kind != "github" && !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
        let why = "\"openid\" added: tollgate requires it";
        cx.doc
            .review(Section::Provider, "scopes", list(&scopes), why);
        cx.changed("scope", why);
    } else {
        cx.doc.set(Section::Provider, "scopes", list(&scopes));
        cx.mapped("scope");
    }
}

/// `prompt`, `approval_prompt`, `acr_values`, PKCE, response mode, resource.
fn login_options(cx: &mut Ctx) {
    let prompt = cx.text("prompt");
    if let Some(p) = &prompt {
        let values: Vec<&str> = p.split_whitespace().collect();
        let known = values.iter().all(|v| {
            matches!(
                *v,
                "none" | "login" | "consent" | "select_account" | "create"
            )
        });
        if known && !(values.len() > 1 && values.contains(&"none")) {
            cx.doc
                .set(Section::Provider, "prompt", q(&values.join(" ")));
            cx.mapped("prompt");
        } else {
            cx.unmapped("prompt", "tollgate's provider.prompt takes login, consent, select_account, create (several separated by spaces) or none alone");
        }
    }
    if cx.given("approval_prompt") {
        if prompt.is_some() {
            // oauth2-proxy ignored it as well.
            cx.mapped("approval_prompt");
        } else {
            cx.doc.hint(Section::Provider, "prompt", q("consent"), "for a consent screen at every login, as approval_prompt = \"force\" asked Google for");
            cx.changed("approval_prompt", "tollgate does not send approval_prompt, a pre-OpenID Connect parameter (oauth2-proxy sent \"force\" by default; OpenID providers ignore it): for a consent screen at every login set provider.prompt = \"consent\"");
        }
    }
    if let Some(acr) = cx.text("acr_values") {
        let values: Vec<&str> = acr.split_whitespace().collect();
        cx.doc.set(Section::Provider, "acr_values", list(&values));
        cx.changed("acr_values", "sent as before, and tollgate also refuses a login whose ID token's acr is not one of them");
    }
    for option in ["code_challenge_method", "force_code_challenge_method"] {
        match cx.text(option) {
            Some(m) if m.eq_ignore_ascii_case("S256") => cx.mapped(option),
            Some(_) => cx.changed(option, "tollgate uses PKCE with S256 on every login (provider.pkce, on by default); there is no plain method"),
            None => {}
        }
    }
    match cx
        .text("auth_request_response_mode")
        .map(|m| m.to_ascii_lowercase())
    {
        Some(m) if m == "form_post" || m == "query" => {
            cx.doc.set(Section::Provider, "response_mode", q(&m));
            cx.mapped("auth_request_response_mode");
        }
        Some(_) => cx.unmapped(
            "auth_request_response_mode",
            "tollgate takes the provider's answer in the query or as form_post",
        ),
        None => {}
    }
    if let Some(resource) = cx.text("resource") {
        let params = inline_table(&[("resource".to_string(), resource)]);
        cx.doc
            .set(Section::Provider, "extra_authorize_params", params);
        cx.changed("resource", "sent on the authorization request (provider.extra_authorize_params), not to the token endpoint as oauth2-proxy also did");
    }
}

/// Which claims mean what.
fn claims(cx: &mut Ctx) -> Result<(), ConvertError> {
    if let Some(claim) = cx.text("oidc_groups_claim") {
        cx.doc.set(Section::Provider, "groups_claim", q(&claim));
        cx.mapped("oidc_groups_claim");
    }
    for option in ["oidc_email_claim", "user_id_claim"] {
        match cx.text(option) {
            Some(c) if c == "email" => cx.mapped(option),
            Some(_) => cx.unmapped(option, "tollgate reads the address from the `email` claim and the user from `sub`; a [headers] entry can forward another claim to the upstream"),
            None => {}
        }
    }
    let audience_claims = cx.list("oidc_audience_claims");
    if !audience_claims.is_empty() {
        if audience_claims.iter().all(|c| c == "aud") {
            cx.mapped("oidc_audience_claims");
        } else {
            cx.unmapped(
                "oidc_audience_claims",
                "tollgate checks the audience in `aud` (and `azp`) only",
            );
        }
    }
    let extra = cx.list("oidc_extra_audiences");
    if !extra.is_empty() {
        cx.doc
            .set(Section::Provider, "trusted_audiences", list(&extra));
        cx.mapped("oidc_extra_audiences");
    }
    algorithms(cx);
    match cx.flag("insecure_oidc_allow_unverified_email")? {
        Some(true) => cx.unmapped("insecure_oidc_allow_unverified_email", "tollgate never lets an address the provider marks email_verified = false match an email or domain rule"),
        Some(false) => cx.mapped("insecure_oidc_allow_unverified_email"),
        None => {}
    }
    if let Some(skip) = cx.flag("skip_claims_from_profile_url")? {
        cx.doc
            .set(Section::Provider, "fetch_userinfo", (!skip).to_string());
        cx.mapped("skip_claims_from_profile_url");
    }
    Ok(())
}

/// `provider.id_token_algorithms`, from `oidc_enabled_signing_algs`.
fn algorithms(cx: &mut Ctx) {
    const SUPPORTED: [&str; 12] = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
        "HS384", "HS512",
    ];
    let given = cx.list("oidc_enabled_signing_algs");
    if given.is_empty() {
        return;
    }
    let kept: Vec<&String> = given
        .iter()
        .filter(|a| SUPPORTED.contains(&a.as_str()))
        .collect();
    if kept.is_empty() {
        cx.unmapped("oidc_enabled_signing_algs", "none of these algorithms is one tollgate supports; provider.id_token_algorithms keeps its default");
        return;
    }
    cx.doc
        .set(Section::Provider, "id_token_algorithms", list(&kept));
    if kept.len() == given.len() {
        cx.mapped("oidc_enabled_signing_algs");
    } else {
        cx.changed(
            "oidc_enabled_signing_algs",
            "algorithms tollgate does not support were left out",
        );
    }
}

/// `provider.ca_file`.
fn trust(cx: &mut Ctx) -> Result<(), ConvertError> {
    let files = cx.list("provider_ca_files");
    let system = cx.flag("use_system_trust_store")?;
    if let Some(first) = files.first() {
        cx.doc.set(Section::Provider, "ca_file", q(first));
        let mut why = Vec::new();
        if files.len() > 1 {
            why.push("tollgate takes one PEM bundle: the first file was kept; put the others' certificates into it");
        }
        if system != Some(true) {
            why.push("tollgate trusts it in addition to the system's roots (oauth2-proxy, without use_system_trust_store, trusted these files alone)");
        }
        if why.is_empty() {
            cx.mapped("provider_ca_files");
        } else {
            cx.changed("provider_ca_files", why.join("; "));
        }
    }
    match system {
        Some(true) => cx.mapped("use_system_trust_store"),
        Some(false) => cx.changed("use_system_trust_store", "tollgate always trusts the system's roots for the provider (provider.ca_file adds to them)"),
        None => {}
    }
    Ok(())
}
