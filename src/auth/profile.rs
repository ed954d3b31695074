//! Who the user is, as one set of claims says: what a session keeps of an
//! ID token (login, refresh) or of an access token (bearer). Written once
//! here, so the three ways a session is made agree on it.

use serde_json::{Map, Value};

use super::context::ClaimMap;
use crate::oidc::userinfo::UserInfo;
use crate::oidc::IdTokenClaims;
use crate::session::Session;

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
        Self {
            email: claims.email.clone(),
            name: claims.name.clone(),
            preferred_username: claims.preferred_username.clone(),
            groups: claims.groups(map.groups_claim),
            email_verified: claims.email_verified,
            claims: map.stored(claims),
        }
    }

    /// Completes a login's profile from the userinfo answer: its email
    /// (the ID token had none), and what the ID token left out.
    pub fn complete(&mut self, map: &ClaimMap<'_>, info: UserInfo) {
        self.email = info.email;
        self.name = self.name.take().or(info.name);
        self.preferred_username = self.preferred_username.take().or(info.preferred_username);
        if self.groups.is_empty() {
            if let Some(Value::Array(g)) = info.other.get(map.groups_claim) {
                self.groups = g
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
            }
        }
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
