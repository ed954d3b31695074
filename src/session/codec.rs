//! Sealing and opening cookie values with the `cookie` crate's private jar
//! (AES-256-GCM, the cookie name bound as associated data, so a value cannot
//! be replayed under another cookie name).
//!
//! Keys form a ring: the first seals, all of them open, and a value opened
//! with an older key is reported so the caller re-seals it with the current
//! one (rotation without logging anyone out).

use cookie::{Cookie, CookieJar, Key};

use crate::secret::Secret;

pub struct Codec {
    keys: Vec<Key>,
}

/// A value that opened.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: String,
    /// Sealed with a previous key: re-seal with the current one.
    pub stale_key: bool,
}

impl Codec {
    /// Key material must be at least 32 random bytes (checked by config
    /// validation); each secret is expanded with HKDF into the cipher key.
    pub fn new(secrets: &[Secret]) -> Self {
        let keys = secrets
            .iter()
            .filter(|s| s.expose().len() >= super::settings::MIN_SECRET_BYTES)
            .map(|s| Key::derive_from(s.expose()))
            .collect();
        Self { keys }
    }

    /// Encrypts `plaintext` for a cookie named `name`.
    pub fn seal(&self, name: &str, plaintext: &str) -> String {
        let Some(key) = self.keys.first() else {
            return String::new();
        };
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new(name.to_string(), plaintext.to_string()));
        jar.get(name)
            .map(|c| c.value().to_string())
            .unwrap_or_default()
    }

    /// Decrypts a value sealed for `name`; `None` for anything forged,
    /// truncated, moved from another cookie name, or sealed with an unknown key.
    pub fn open(&self, name: &str, sealed: &str) -> Option<Opened> {
        let jar = CookieJar::new();
        self.keys.iter().enumerate().find_map(|(i, key)| {
            jar.private(key)
                .decrypt(Cookie::new(name.to_string(), sealed.to_string()))
                .map(|c| Opened {
                    plaintext: c.value().to_string(),
                    stale_key: i > 0,
                })
        })
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(b: u8) -> Secret {
        Secret::new(vec![b; 32])
    }

    #[test]
    fn round_trip() {
        let c = Codec::new(&[secret(1)]);
        let sealed = c.seal("_tollgate", "hello");
        assert!(!sealed.contains("hello"));
        let opened = c.open("_tollgate", &sealed).expect("opens");
        assert_eq!(opened.plaintext, "hello");
        assert!(!opened.stale_key);
    }

    #[test]
    fn tampered_truncated_renamed_or_foreign_values_do_not_open() {
        let c = Codec::new(&[secret(1)]);
        let sealed = c.seal("_tollgate", "hello");
        let mut tampered = sealed.clone().into_bytes();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        assert!(c
            .open("_tollgate", &String::from_utf8(tampered).expect("ascii"))
            .is_none());
        assert!(c.open("_tollgate", &sealed[..sealed.len() - 4]).is_none());
        assert!(c.open("other", &sealed).is_none());
        assert!(Codec::new(&[secret(2)])
            .open("_tollgate", &sealed)
            .is_none());
        assert!(c.open("_tollgate", "").is_none());
        assert!(c.open("_tollgate", "%%%not base64").is_none());
    }

    #[test]
    fn previous_keys_open_and_ask_for_reseal() {
        let old = Codec::new(&[secret(1)]);
        let sealed = old.seal("_tollgate", "hello");
        let rotated = Codec::new(&[secret(2), secret(1)]);
        let opened = rotated
            .open("_tollgate", &sealed)
            .expect("opens with previous key");
        assert!(opened.stale_key);
    }
}
