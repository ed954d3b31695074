//! Sessions: the model, the sealed-cookie codec with its key ring, and the
//! per-login state cookie.

pub mod codec;
pub mod cookies;
pub mod login;
pub mod redis;
pub mod revoked;
pub mod settings;
pub mod store;

use serde::{Deserialize, Serialize};

pub use codec::Codec;
pub use cookies::{RequestCookies, SessionCookies, TooLarge};
pub use login::LoginState;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// One logged-in user. Serialized with short field names because every byte
/// travels in a cookie on every request. `Debug` leaves tokens out.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    #[serde(rename = "s")]
    pub sub: String,
    /// The `id` of the provider that signed the user in; refresh, sign-out
    /// and back-channel logout go to that one. `None` (sessions from
    /// before providers had ids): the provider with id `default`.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(rename = "at")]
    pub access_token: String,
    /// When the access token expires (epoch seconds), if the provider said.
    #[serde(rename = "ax", default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<i64>,
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(rename = "it", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The provider's session id (`sid`), for back-channel logout.
    #[serde(rename = "sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `email_verified` as the provider said; an email known to be
    /// unverified never satisfies an email rule.
    #[serde(rename = "ev", default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The claims that rules and `[headers]` read, by claim path.
    #[serde(
        rename = "c",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub claims: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "ia")]
    pub issued_at: i64,
    /// Hard end of the session, enforced from inside the sealed payload so a
    /// client cannot extend it by keeping the cookie.
    #[serde(rename = "x")]
    pub expires_at: i64,
    /// The login's `nonce` and `auth_time`: a refreshed ID token may repeat
    /// them but never change them (OIDC Core §12.2).
    #[serde(rename = "no", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(rename = "au", default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl Session {
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// What a session or login state records for the provider `id`:
    /// nothing for `default` (absent means `default`), so the usual single
    /// provider costs no cookie bytes.
    pub fn provider_field(id: &str) -> Option<String> {
        (id != DEFAULT_PROVIDER).then(|| id.to_string())
    }

    /// The `id` of the session's provider.
    pub fn provider_id(&self) -> &str {
        self.provider.as_deref().unwrap_or(DEFAULT_PROVIDER)
    }

    /// A provider-side identifier (`sub`, `sid`) as the session store and
    /// logout memory key it: a subject is unique only within its provider,
    /// so another provider's `42` is another key. The `default` provider's
    /// keys are the bare value, as they were before providers had ids.
    pub fn scoped<'v>(provider: &str, value: &'v str) -> std::borrow::Cow<'v, str> {
        if provider == DEFAULT_PROVIDER {
            std::borrow::Cow::Borrowed(value)
        } else {
            std::borrow::Cow::Owned(format!("{provider}\u{1f}{value}"))
        }
    }
}

/// The id `[provider]` has unless `provider.id` is set.
pub const DEFAULT_PROVIDER: &str = "default";

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sub", &self.sub)
            .field("email", &self.email)
            .field("groups", &self.groups.len())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
