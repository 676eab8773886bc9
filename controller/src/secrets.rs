//! Secrets the controller must use again (GitHub access tokens, the GitHub
//! webhook secret, generic webhook secrets) are stored sealed: encrypted and authenticated with
//! XChaCha20-Poly1305 under a key that lives outside the database.
//!
//! They cannot be hashed like API tokens, because the controller needs their
//! value to call GitHub or check a signature. The key is a file beside the
//! data (made on first start, readable by its owner only), so a copy of the
//! database alone reveals nothing. Each value is sealed for a purpose (for
//! example `site/blog/github-token`), so a sealed value moved to another
//! column or site does not open.

use anyhow::Context as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::io::Write as _;
use std::path::Path;

/// `bytes` random bytes as hex: tokens, lease ids, webhook secrets, blob
/// keys no other writer picks. Whoever knows such a value may act with it,
/// so it comes from the operating system's generator (through `rand`).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

const FORMAT: &str = "v1:";
const NONCE_LEN: usize = 24;

pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// Kept to derive keys for other purposes ([`SecretBox::derive_key`]).
    key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error(
        "a stored secret could not be decrypted: it was sealed with another secret key (was the key file replaced?) or altered; set the secret again"
    )]
    Undecryptable,
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
            key,
        }
    }

    /// A key for `purpose` alone (HMAC-SHA256 of the purpose under the
    /// secret key): what it signs cannot be taken for anything sealed or
    /// signed for another purpose, and controllers sharing the key file
    /// derive the same one.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(b"jamstack derived key: ");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Reads the key file at `path` (64 hex digits), or makes one readable
    /// by its owner only when there is none.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(hex::encode(key).as_bytes())
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("writing the secret key file {}", path.display()))?;
                Ok(Self::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the secret key file {}", path.display()))?;
                let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
                let bytes = bytes.with_context(|| {
                    format!(
                        "the secret key file {} must hold 64 hex digits (32 bytes); restore the original \
                         file, or remove it to make a new key (secrets stored with the old key must then be set again)",
                        path.display()
                    )
                })?;
                key.copy_from_slice(&bytes);
                Ok(Self::new(key))
            }
            Err(e) => Err(e).with_context(|| format!("making the secret key file {}", path.display())),
        }
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: purpose.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        format!("{FORMAT}{}", hex::encode(sealed))
    }

    /// A site variable's value as stored (sealed when secret, or from
    /// before secrets were sealed); `None` when it does not open, logged.
    pub fn open_site_variable(&self, site_id: i64, name: &str, stored: &str) -> Option<String> {
        if !looks_sealed(stored) {
            return Some(stored.to_owned());
        }
        match self.open(&env_var_purpose(site_id, name), stored) {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::error!(site_id, variable = name, error = %e, "a secret variable does not open; set it again");
                None
            }
        }
    }

    /// Decrypts what [`SecretBox::seal`] made for the same `purpose`.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<String, OpenError> {
        let bytes = sealed
            .strip_prefix(FORMAT)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(OpenError::Undecryptable)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| OpenError::Undecryptable)
    }
}

/// The purpose a site's secret build variable is sealed for (by site id,
/// which a rename does not change).
pub fn env_var_purpose(site_id: i64, name: &str) -> String {
    format!("site-id/{site_id}/env/{name}")
}

/// Whether `stored` has the shape [`SecretBox::seal`] gives (it may still
/// not open). Values stored before secret variables were sealed do not.
pub fn looks_sealed(stored: &str) -> bool {
    stored
        .strip_prefix(FORMAT)
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .is_some_and(|b| b.len() > NONCE_LEN)
}

/// The purpose a site's GitHub access token is sealed for.
pub fn github_token_purpose(site: &str) -> String {
    format!("site/{site}/github-token")
}

/// The purpose a site's generic webhook secret is sealed for.
pub fn generic_webhook_purpose(site: &str) -> String {
    format!("site/{site}/generic-webhook-secret")
}

/// The purpose a certificate's private key is sealed for, by the hostname
/// it serves: a sealed key copied to another hostname's row does not open.
pub fn certificate_key_purpose(hostname: &str) -> String {
    format!("certificate/{hostname}/key")
}

/// The purpose the key of a TLS-ALPN-01 challenge certificate for
/// `hostname` is sealed for while it waits in the database.
pub fn acme_alpn_key_purpose(hostname: &str) -> String {
    format!("acme/tls-alpn-01/{hostname}/key")
}

/// The purpose the GitHub webhook secret (made by the controller when none
/// is configured) is sealed for.
pub const GITHUB_WEBHOOK_SECRET_PURPOSE: &str = "controller/github-webhook-secret";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_for_its_purpose() {
        let secrets = SecretBox::new([7; 32]);
        let sealed = secrets.seal("site/blog/github-token", "ghp_example");
        assert!(!sealed.contains("ghp_example"));
        assert_ne!(sealed, secrets.seal("site/blog/github-token", "ghp_example"));
        assert_eq!(
            secrets.open("site/blog/github-token", &sealed).as_deref(),
            Ok("ghp_example")
        );
        assert_eq!(
            secrets.open("site/other/github-token", &sealed),
            Err(OpenError::Undecryptable)
        );
        assert_eq!(
            SecretBox::new([8; 32]).open("site/blog/github-token", &sealed),
            Err(OpenError::Undecryptable)
        );
        let mut altered = sealed.into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            secrets.open("site/blog/github-token", &altered),
            Err(OpenError::Undecryptable)
        );
    }

    #[test]
    fn the_key_file_is_made_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = SecretBox::load_or_create(&path).unwrap();
        let sealed = first.seal("p", "value");
        let again = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(again.open("p", &sealed).as_deref(), Ok("value"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        let err = SecretBox::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}
