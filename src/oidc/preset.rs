//! Provider presets (`provider.kind`): what a provider needs beyond
//! generic OpenID Connect. Each one fills defaults (the issuer), adds to the
//! authorization request, and says where a user's groups come from.

use serde_json::{Map, Value};

/// `provider.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    #[default]
    Oidc,
    /// Keycloak: realm roles and client roles are groups.
    Keycloak,
    /// Google: hosted domains (`hd`), refresh tokens only when asked.
    Google,
    /// GitLab (gitlab.com or self-managed): `groups_direct` and `groups`.
    Gitlab,
    /// GitHub (github.com, or Enterprise Server at `provider.issuer`):
    /// OAuth 2.0 without ID tokens; the user from the REST API.
    Github,
    /// Microsoft Entra ID (v2.0 endpoints): app roles are groups, group
    /// overage resolved through Microsoft Graph, multi-tenant issuers.
    Entra,
}

/// The issuer Entra ID's multi-tenant discovery names: a template with
/// the user's tenant in place of `{tenantid}`.
pub const ENTRA_TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The issuer template of a multi-tenant Entra ID authority
/// (`…/organizations/v2.0` → `…/{tenantid}/v2.0`); `None` for one tenant.
pub fn entra_issuer_template(issuer: &str) -> Option<String> {
    ["/common/", "/organizations/", "/consumers/"]
        .iter()
        .find(|seg| issuer.contains(*seg))
        .map(|seg| issuer.replacen(seg, &format!("/{ENTRA_TENANT_PLACEHOLDER}/"), 1))
}

/// Entra ID's tenant-independent authorities (they need
/// `provider.allowed_tenants`).
pub fn entra_multi_tenant(tenant: &str) -> bool {
    matches!(tenant, "common" | "organizations" | "consumers")
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oidc" => Self::Oidc,
            "keycloak" => Self::Keycloak,
            "google" => Self::Google,
            "gitlab" => Self::Gitlab,
            "entra" => Self::Entra,
            "github" => Self::Github,
            _ => return None,
        })
    }

    /// The issuer when none is configured.
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            Self::Google => Some("https://accounts.google.com"),
            Self::Gitlab => Some("https://gitlab.com"),
            Self::Github => Some("https://github.com"),
            Self::Oidc | Self::Keycloak | Self::Entra => None,
        }
    }

    /// Groups beyond `provider.groups_claim` in one set of claims (an ID
    /// token, a userinfo answer, or a Keycloak access token).
    pub fn groups(self, claims: &Map<String, Value>) -> Vec<String> {
        match self {
            Self::Keycloak => keycloak_roles(claims),
            // GitLab's ID token lists direct memberships; userinfo `groups`
            // (the default groups claim) adds inherited ones.
            Self::Gitlab => strings(claims.get("groups_direct")),
            // App roles, next to the `groups` claim (object ids).
            Self::Entra => strings(claims.get("roles")),
            Self::Oidc | Self::Google | Self::Github => Vec::new(),
        }
    }

    /// Entra ID: whether the token says its groups did not fit (group
    /// overage: `_claim_names.groups` instead of `groups`).
    pub fn groups_overflowed(self, claims: &Map<String, Value>) -> bool {
        self == Self::Entra
            && claims
                .get("_claim_names")
                .and_then(|n| n.get("groups"))
                .is_some()
    }

    /// Entra ID's `email` is whatever the tenant's admin typed: verified
    /// only when the optional `xms_edov` claim says the tenant owns its
    /// domain (Microsoft's guidance against "nOAuth" account takeover).
    pub fn email_verified(self, claims: &Map<String, Value>, said: Option<bool>) -> Option<bool> {
        match self {
            Self::Entra => Some(claims.get("xms_edov").and_then(Value::as_bool) == Some(true)),
            _ => said,
        }
    }

    /// Whether a Keycloak ID token lacks the roles (its role mappers put
    /// them only in the access token by default).
    pub fn wants_access_token_roles(self, claims: &Map<String, Value>) -> bool {
        self == Self::Keycloak
            && !claims.contains_key("realm_access")
            && !claims.contains_key("resource_access")
    }
}

/// Realm roles as they are (`admin`), client roles as `client:role`
/// (`account:manage-account`), so rules name either without dotted paths.
fn keycloak_roles(claims: &Map<String, Value>) -> Vec<String> {
    let mut out = strings(claims.get("realm_access").and_then(|r| r.get("roles")));
    if let Some(Value::Object(clients)) = claims.get("resource_access") {
        for (client, access) in clients {
            for role in strings(access.get("roles")) {
                out.push(format!("{client}:{role}"));
            }
        }
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds `extra` to `groups`, keeping the first occurrence of each.
pub fn merge(groups: &mut Vec<String>, extra: Vec<String>) {
    for g in extra {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keycloak_realm_and_client_roles_become_groups() {
        let claims = json!({
            "realm_access": {"roles": ["admin", "offline_access"]},
            "resource_access": {"tollgate": {"roles": ["editor"]}, "account": {"roles": ["view-profile"]}},
        });
        let map = claims.as_object().expect("object");
        let mut groups = ProviderKind::Keycloak.groups(map);
        groups.sort();
        assert_eq!(
            groups,
            [
                "account:view-profile",
                "admin",
                "offline_access",
                "tollgate:editor"
            ]
        );
        assert!(!ProviderKind::Keycloak.wants_access_token_roles(map));
        assert!(ProviderKind::Keycloak.wants_access_token_roles(&Map::new()));
        assert!(!ProviderKind::Oidc.wants_access_token_roles(&Map::new()));
    }

    #[test]
    fn entra_multi_tenant_authorities_have_a_template_issuer() {
        assert_eq!(
            entra_issuer_template("https://login.microsoftonline.com/organizations/v2.0")
                .as_deref(),
            Some("https://login.microsoftonline.com/{tenantid}/v2.0")
        );
        assert_eq!(
            entra_issuer_template("https://login.microsoftonline.com/0000-1111/v2.0"),
            None
        );
        let unverified = json!({"email": "ceo@example.com"});
        let verified = json!({"email": "ceo@example.com", "xms_edov": true});
        let e = ProviderKind::Entra;
        assert_eq!(
            e.email_verified(unverified.as_object().expect("o"), Some(true)),
            Some(false)
        );
        assert_eq!(
            e.email_verified(verified.as_object().expect("o"), None),
            Some(true)
        );
        let overage = json!({"_claim_names": {"groups": "src1"}});
        assert!(e.groups_overflowed(overage.as_object().expect("o")));
        assert!(!ProviderKind::Oidc.groups_overflowed(overage.as_object().expect("o")));
    }

    #[test]
    fn gitlab_direct_groups_join_the_groups_claim() {
        let claims = json!({"groups_direct": ["acme/ops"]});
        let mut groups = vec!["acme".to_string()];
        merge(
            &mut groups,
            ProviderKind::Gitlab.groups(claims.as_object().expect("o")),
        );
        assert_eq!(groups, ["acme", "acme/ops"]);
    }
}
