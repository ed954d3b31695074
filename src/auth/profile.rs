//! Who the user is, as one set of claims says: what a session keeps of an
//! ID token (login, refresh) or of an access token (bearer). Written once
//! here, so the three ways a session is made agree on it.

use serde_json::{Map, Value};

use super::context::ClaimMap;
use crate::oidc::preset;
use crate::oidc::userinfo::UserInfo;
use crate::oidc::IdTokenClaims;
use crate::session::Session;

/// The claims of a Keycloak access token (a JWT signed with the realm's
/// keys), for the roles its ID token leaves out: verified like an ID
/// token's signature, and only from this issuer and for this subject.
pub async fn access_token_claims(
    ctx: &super::context::ProviderCtx<'_>,
    keys: &crate::oidc::KeyCache,
    access_token: &str,
    subject: &str,
) -> Option<Map<String, Value>> {
    let claims: Map<String, Value> = match ctx.validator.verified(access_token, keys).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the access token's roles cannot be read");
            return None;
        }
    };
    let issuer = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    (issuer == Some(ctx.settings.issuer.as_str()) && sub == Some(subject)).then_some(claims)
}

/// The identity part of a [`Session`].
#[derive(Debug, Default)]
pub struct Profile {
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
    pub email_verified: Option<bool>,
    /// The claims rules and `[headers]` read, by claim path.
    pub claims: Map<String, Value>,
}

impl Profile {
    /// The profile in `claims` (groups from `provider.groups_claim`).
    pub fn of(map: &ClaimMap<'_>, claims: &IdTokenClaims) -> Self {
        let mut groups = claims.groups(map.groups_claim);
        preset::merge(&mut groups, map.kind.groups(&claims.other));
        // Entra ID often leaves `email` out; its `preferred_username` (the
        // UPN) stands in, verified only as `email_verified` says.
        let email = claims.email.clone().or_else(|| {
            (map.kind == preset::ProviderKind::Entra)
                .then(|| {
                    claims
                        .preferred_username
                        .clone()
                        .filter(|u| u.contains('@'))
                })
                .flatten()
        });
        Self {
            email,
            name: claims.name.clone(),
            preferred_username: claims.preferred_username.clone(),
            groups,
            email_verified: map
                .kind
                .email_verified(&claims.other, claims.email_verified),
            claims: map.stored(claims),
        }
    }

    /// Adds groups from elsewhere (Microsoft Graph for Entra ID overage).
    pub fn add_listed_groups(&mut self, groups: Vec<String>) {
        preset::merge(&mut self.groups, groups);
    }

    /// Adds the groups a preset finds in other claims (a Keycloak access
    /// token's roles).
    pub fn add_groups(&mut self, map: &ClaimMap<'_>, claims: &Map<String, Value>) {
        preset::merge(&mut self.groups, map.kind.groups(claims));
    }

    /// Completes a login's profile from the userinfo answer: its email
    /// (the ID token had none), and what the ID token left out.
    pub fn complete(&mut self, map: &ClaimMap<'_>, info: UserInfo) {
        self.email = info.email;
        self.name = self.name.take().or(info.name);
        self.preferred_username = self.preferred_username.take().or(info.preferred_username);
        if let Some(Value::Array(g)) = info.other.get(map.groups_claim) {
            let listed = g.iter().filter_map(|v| v.as_str().map(str::to_string));
            preset::merge(&mut self.groups, listed.collect());
        }
        self.add_groups(map, &info.other);
    }

    /// Writes the profile into a new session.
    pub fn fill(self, s: &mut Session) {
        s.email = self.email;
        s.name = self.name;
        s.preferred_username = self.preferred_username;
        s.groups = self.groups;
        s.email_verified = self.email_verified;
        s.claims = self.claims;
    }

    /// Updates a session from a refreshed ID token: what the new token says
    /// wins, what it leaves out is kept.
    pub fn update(self, s: &mut Session) {
        s.email = self.email.or(s.email.take());
        s.name = self.name.or(s.name.take());
        s.preferred_username = self.preferred_username.or(s.preferred_username.take());
        if !self.groups.is_empty() {
            s.groups = self.groups;
        }
        s.email_verified = self.email_verified.or(s.email_verified);
        if !self.claims.is_empty() {
            s.claims = self.claims;
        }
    }
}
