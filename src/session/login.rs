//! Per-login state (state, nonce, PKCE verifier, return-to URL) in its own
//! sealed cookie, named after the `state` so several tabs can log in at once.

use cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use super::codec::Codec;
use super::now;

/// How long a login may take at the provider.
pub const LOGIN_TTL_SECS: i64 = 600;

/// Most login cookies a browser keeps at once (one per tab that started a
/// login). Each is ~400 bytes on every callback request; without a bound,
/// many abandoned logins would outgrow header limits (oauth2-proxy #2615).
pub const MAX_PENDING_LOGINS: usize = 10;

#[derive(Clone, Serialize, Deserialize)]
pub struct LoginState {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "x")]
    pub expires_at: i64,
    /// The `id` of the provider the login went to: only its answer can
    /// finish it. `None` (a login begun before providers had ids): the
    /// `default` provider.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl std::fmt::Debug for LoginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginState")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a login state cookie could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginStateError {
    #[error("the callback has no `state`")]
    MissingState,
    #[error("no login is in progress for this `state` (login cookie missing: expired, already used, or another browser)")]
    MissingCookie,
    #[error("the login cookie does not open (tampered, or sealed with an unknown key)")]
    Unreadable,
    #[error("`state` does not match the login in progress")]
    StateMismatch,
    #[error("the login took too long; start again")]
    Expired,
}

/// Names and attributes of login cookies.
#[derive(Debug, Clone)]
pub struct LoginCookies {
    prefix: String,
    path: String,
    secure: bool,
    /// `response_mode=form_post`: the callback is a cross-site POST, which
    /// carries only `SameSite=None` cookies (that need `Secure`).
    cross_site_post: bool,
}

impl LoginCookies {
    /// `session_cookie` is the session cookie name; `callback_path` the
    /// path of the redirect URL, the only place the cookie is needed (`/`
    /// for a `__Host-` name, which browsers accept only with `Path=/`).
    pub fn new(session_cookie: &str, callback_path: &str, secure: bool) -> Self {
        Self {
            prefix: format!("{session_cookie}_login_"),
            path: callback_path.to_string(),
            secure,
            cross_site_post: false,
        }
    }

    /// For `response_mode=form_post`: `SameSite=None; Secure`. The state in
    /// the cookie still binds the callback to this browser's login.
    pub fn for_form_post(mut self) -> Self {
        self.cross_site_post = true;
        self
    }

    /// The cookie name for a state: its first 16 characters (~96 bits)
    /// keep parallel logins apart; the full state is checked inside.
    pub fn name(&self, state: &str) -> Option<String> {
        let tag: String = state.chars().take(16).collect();
        (tag.len() == 16
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| format!("{}{tag}", self.prefix))
    }

    /// A fresh login state and the `Set-Cookie` value that carries it.
    pub fn begin(&self, codec: &Codec, state: LoginState) -> Option<String> {
        let name = self.name(&state.state)?;
        let plaintext = serde_json::to_string(&state).ok()?;
        let sealed = codec.seal(&name, &plaintext);
        let mut c = self.base(name, sealed);
        c.set_max_age(cookie::time::Duration::seconds(LOGIN_TTL_SECS));
        Some(c.to_string())
    }

    /// Finds and checks the login state for a callback's `state`.
    pub fn finish(
        &self,
        codec: &Codec,
        state: Option<&str>,
        cookie_value: impl Fn(&str) -> Option<String>,
    ) -> Result<LoginState, LoginStateError> {
        let state = state
            .filter(|s| !s.is_empty())
            .ok_or(LoginStateError::MissingState)?;
        let name = self.name(state).ok_or(LoginStateError::MissingCookie)?;
        let sealed = cookie_value(&name).ok_or(LoginStateError::MissingCookie)?;
        let opened = codec
            .open(&name, &sealed)
            .ok_or(LoginStateError::Unreadable)?;
        let login: LoginState =
            serde_json::from_str(&opened.plaintext).map_err(|_| LoginStateError::Unreadable)?;
        if !crate::oidc::ct_eq(&login.state, state) {
            return Err(LoginStateError::StateMismatch);
        }
        if now() >= login.expires_at {
            return Err(LoginStateError::Expired);
        }
        Ok(login)
    }

    /// Deletions for the login cookies of other logins that are expired,
    /// unreadable, or beyond the newest [`MAX_PENDING_LOGINS`] − 1 (the
    /// callback's own login is the other one). Run at the callback, the
    /// only request the cookies' path lets the browser send them on.
    pub fn stale<'a>(
        &self,
        codec: &Codec,
        cookies: impl Iterator<Item = (&'a str, &'a str)>,
        current: Option<&str>,
    ) -> Vec<String> {
        let own = current.and_then(|s| self.name(s));
        let mut alive: Vec<(i64, &str)> = Vec::new();
        let mut remove: Vec<&str> = Vec::new();
        // Header limits bound the count already; this bounds the work.
        let logins = cookies.filter(|(name, _)| name.starts_with(&self.prefix));
        for (name, value) in logins.take(8 * MAX_PENDING_LOGINS) {
            if Some(name) == own.as_deref() {
                continue;
            }
            let expires = codec
                .open(name, value)
                .and_then(|o| serde_json::from_str::<LoginState>(&o.plaintext).ok())
                .map(|l| l.expires_at)
                .filter(|&x| x > now());
            match expires {
                Some(x) => alive.push((x, name)),
                None => remove.push(name),
            }
        }
        if alive.len() >= MAX_PENDING_LOGINS {
            alive.sort_unstable();
            let extra = alive.len() + 1 - MAX_PENDING_LOGINS;
            remove.extend(alive.iter().take(extra).map(|(_, n)| *n));
        }
        remove
            .into_iter()
            .map(|name| {
                let mut c = self.base(name.to_string(), String::new());
                c.make_removal();
                c.to_string()
            })
            .collect()
    }

    /// The `Set-Cookie` value that deletes the login cookie for `state`.
    pub fn removal(&self, state: &str) -> Option<String> {
        let mut c = self.base(self.name(state)?, String::new());
        c.make_removal();
        Some(c.to_string())
    }

    fn base(&self, name: String, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        // Lax, whatever the session cookie uses: the callback is a top-level
        // cross-site navigation from the provider; with form_post a
        // cross-site POST, which needs None (and so Secure).
        if self.cross_site_post {
            c.set_same_site(SameSite::None);
            c.set_secure(true);
        } else {
            c.set_same_site(SameSite::Lax);
            c.set_secure(self.secure);
        }
        c.set_path(self.path.clone());
        c
    }
}

impl LoginState {
    pub fn new(state: String, nonce: String, verifier: Option<String>, return_to: String) -> Self {
        Self {
            state,
            nonce,
            verifier,
            return_to,
            expires_at: now() + LOGIN_TTL_SECS,
            provider: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn setup() -> (LoginCookies, Codec) {
        (
            LoginCookies::new("_tollgate", "/oauth2/callback", true),
            Codec::new(&[Secret::new(vec![3; 32])]),
        )
    }

    fn value_of(set_cookie: &str) -> (String, String) {
        let c = Cookie::parse(set_cookie.to_string()).expect("parses");
        (c.name().to_string(), c.value().to_string())
    }

    #[test]
    fn login_state_round_trips_for_its_state_only() {
        let (lc, codec) = setup();
        let state = crate::oidc::random_token(32);
        let set = lc
            .begin(
                &codec,
                LoginState::new(state.clone(), "n".into(), Some("v".into()), "/x".into()),
            )
            .expect("cookie");
        assert!(
            set.contains("Path=/oauth2/callback")
                && set.contains("HttpOnly")
                && set.contains("SameSite=Lax")
        );
        let (name, value) = value_of(&set);
        let jar = |n: &str| (n == name).then(|| value.clone());
        let got = lc.finish(&codec, Some(&state), jar).expect("valid");
        assert_eq!(got.return_to, "/x");

        // Same 16-char prefix, different tail: the cookie is found but the state does not match.
        let forged = format!("{}{}", &state[..16], "A".repeat(state.len() - 16));
        assert_eq!(
            lc.finish(&codec, Some(&forged), jar).err(),
            Some(LoginStateError::StateMismatch)
        );
        assert_eq!(
            lc.finish(&codec, None, jar).err(),
            Some(LoginStateError::MissingState)
        );
        let other = crate::oidc::random_token(32);
        assert_eq!(
            lc.finish(&codec, Some(&other), jar).err(),
            Some(LoginStateError::MissingCookie)
        );
        let garbage = |_: &str| Some("garbage".to_string());
        assert_eq!(
            lc.finish(&codec, Some(&state), garbage).err(),
            Some(LoginStateError::Unreadable)
        );
    }

    #[test]
    fn odd_states_never_name_a_cookie() {
        let (lc, _) = setup();
        for s in [
            "",
            "short",
            "../../../../etc/passwd",
            "a;b=c,d e f g h i j k",
        ] {
            assert!(lc.name(s).is_none(), "{s}");
        }
    }
}
