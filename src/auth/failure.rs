//! Why a login did not complete: one variant per failed check, with the
//! status, the words for the person and the check's name for logs and
//! metrics. A leaf, so the pages that render it need nothing else of
//! `auth`.

use http::StatusCode;

use crate::oidc::IdTokenError;
use crate::session::login::LoginStateError;

/// Why a login did not complete. Each variant is one failed check; the
/// access log names it.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error("{0}")]
    State(#[from] LoginStateError),
    #[error("the identity provider answered with error `{0}`")]
    Provider(String),
    #[error("the login went to a provider that is no longer configured")]
    UnknownProvider,
    #[error("the callback repeats a parameter")]
    DuplicateParameter,
    #[error("the callback's `iss` is not the configured issuer (RFC 9207)")]
    IssuerMismatch,
    #[error("the callback has no `iss`, which this provider promises to send (RFC 9207)")]
    IssuerMissing,
    #[error("the callback has no authorization code")]
    MissingCode,
    #[error("the identity provider refused the authorization code (`{0}`)")]
    CodeRefused(String),
    #[error("the identity provider's token endpoint could not be used")]
    TokenEndpoint,
    /// `provider.max_concurrent_calls` calls were already in flight.
    #[error("too many calls are already waiting for the identity provider")]
    ProviderBusy,
    #[error("the identity provider did not take the pushed authorization request (RFC 9126)")]
    Pushed,
    #[error("the token response is not acceptable: {0}")]
    TokenResponse(String),
    #[error("the identity provider refused tollgate's client credentials (`invalid_client`): check `provider.client_id`, `provider.client_auth` and its credential (secret, key or assertion file); with client_secret_basic, RFC 6749 §2.3.1 form-encodes the id and secret inside HTTP Basic; a provider that does not decode them needs `client_auth = \"client_secret_post\"`)")]
    ClientAuth,
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("{0}")]
    IdToken(#[from] IdTokenError),
    #[error("the identity provider's userinfo endpoint could not be used")]
    UserInfo,
    #[error("the identity provider's userinfo answer was not acceptable: {0}")]
    UserInfoRefused(crate::oidc::userinfo::UserInfoError),
    #[error("the ID token's hosted domain (`hd`) is not one of `provider.hosted_domains`")]
    HostedDomain,
    #[error("the session is too large for cookies (too many groups?); ask the operator to use fewer claims")]
    SessionTooLarge,
}

impl LoginFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            LoginFailure::TokenEndpoint | LoginFailure::ClientAuth | LoginFailure::Pushed => {
                StatusCode::BAD_GATEWAY
            }
            LoginFailure::UserInfo => StatusCode::BAD_GATEWAY,
            LoginFailure::ProviderBusy => StatusCode::SERVICE_UNAVAILABLE,
            LoginFailure::HostedDomain => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// What the person in front of the browser is told. The log line has
    /// the exact check; this says what happened and what to do.
    pub fn user_message(&self) -> &'static str {
        match self {
            LoginFailure::State(LoginStateError::Expired) => {
                "The sign-in took too long. Please sign in again."
            }
            LoginFailure::State(_) => {
                "This sign-in could not be matched to your browser: it may have expired, been used already, or been started in another browser or tab that was closed. Please sign in again."
            }
            LoginFailure::Provider(_) => "The identity provider did not sign you in.",
            LoginFailure::UnknownProvider => {
                "This sign-in went to an identity provider that is no longer offered here. Please sign in again."
            }
            LoginFailure::DuplicateParameter
            | LoginFailure::IssuerMismatch
            | LoginFailure::IssuerMissing
            | LoginFailure::MissingCode => {
                "The answer from the identity provider was not valid, so you were not signed in. Please sign in again."
            }
            LoginFailure::CodeRefused(_) => {
                "The identity provider refused to complete this sign-in (it may have been used already). Please sign in again."
            }
            LoginFailure::TokenEndpoint
            | LoginFailure::UserInfo
            | LoginFailure::Pushed
            | LoginFailure::ProviderBusy => {
                "The identity provider could not be reached to complete the sign-in. Please try again in a moment."
            }
            LoginFailure::ClientAuth => {
                "tollgate is not configured correctly for the identity provider. Please tell the operator."
            }
            LoginFailure::NoIdToken
            | LoginFailure::IdToken(_)
            | LoginFailure::TokenResponse(_)
            | LoginFailure::UserInfoRefused(_) => {
                "The identity provider's answer could not be verified, so you were not signed in."
            }
            LoginFailure::HostedDomain => {
                "This account does not belong to an organisation allowed here. Sign in with your work account."
            }
            LoginFailure::SessionTooLarge => {
                "Your account carries too much information to keep in a browser session. Please contact the operator."
            }
        }
    }

    /// Short name of the failed check, for logs and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            LoginFailure::State(LoginStateError::MissingState) => "state_missing",
            LoginFailure::State(LoginStateError::MissingCookie) => "login_cookie_missing",
            LoginFailure::State(LoginStateError::Unreadable) => "login_cookie_unreadable",
            LoginFailure::State(LoginStateError::StateMismatch) => "state_mismatch",
            LoginFailure::State(LoginStateError::Expired) => "login_expired",
            LoginFailure::Provider(_) => "provider_error",
            LoginFailure::UnknownProvider => "provider_unknown",
            LoginFailure::DuplicateParameter => "duplicate_parameter",
            LoginFailure::IssuerMismatch => "iss_mismatch",
            LoginFailure::IssuerMissing => "iss_missing",
            LoginFailure::MissingCode => "code_missing",
            LoginFailure::CodeRefused(_) => "code_refused",
            LoginFailure::TokenEndpoint => "token_endpoint",
            LoginFailure::ProviderBusy => "provider_busy",
            LoginFailure::Pushed => "pushed_authorization",
            LoginFailure::TokenResponse(_) => "token_response_invalid",
            LoginFailure::ClientAuth => "client_auth",
            LoginFailure::NoIdToken => "id_token_missing",
            LoginFailure::IdToken(e) => e.check(),
            LoginFailure::UserInfo => "userinfo",
            LoginFailure::UserInfoRefused(
                crate::oidc::userinfo::UserInfoError::SubjectMismatch,
            ) => "userinfo_sub",
            LoginFailure::UserInfoRefused(_) => "userinfo_invalid",
            LoginFailure::SessionTooLarge => "session_too_large",
            LoginFailure::HostedDomain => "hosted_domain",
        }
    }
}
