//! The `/oauth2/*` endpoints, one file each: start a login
//! ([`login`]), finish it ([`callback`]), sign out ([`sign_out`]), tell the
//! caller who they are ([`userinfo`]), end sessions the provider ended
//! ([`backchannel`]); and what they rely on: bearer tokens, refresh, the
//! redirect policy, the profile a session keeps, login failures.

pub mod backchannel;
pub mod bearer;
pub mod callback;
pub mod context;
pub mod failure;
pub mod handled;
pub mod issuers;
pub mod login;
pub mod profile;
pub mod redirect;
pub mod refresh;
pub mod settings;
pub mod sign_out;
pub mod userinfo;
pub mod verdicts;

pub use callback::callback;
pub use failure::LoginFailure;
pub use handled::form_pairs;
pub use handled::{append_cookies, rescue, Handled};
pub use login::{login_redirect, start, Hints};
pub use sign_out::sign_out;
pub use userinfo::userinfo;
