//! Reading and checking a certificate chain and its private key (PEM), the
//! one gate every certificate passes before it is stored or served: the
//! hostname is a name or a wildcard one label deep, the chain parses, the
//! end-entity certificate covers the hostname and has not expired, and the
//! key is the certificate's.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// The largest chain or key accepted, in bytes of PEM: a chain of a leaf
/// and a few intermediates is a few KB.
pub const MAX_PEM_BYTES: usize = 64 * 1024;
/// The most certificates one chain may hold.
const MAX_CHAIN_LENGTH: usize = 10;

/// Why a certificate is refused; each says what to do next.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertificateError {
    #[error(
        "`{0}` is not a hostname a certificate can be stored for; give a name such as www.example.com \
         or a wildcard one label deep such as *.example.com"
    )]
    BadHostname(String),
    #[error(
        "the certificate chain is larger than {MAX_PEM_BYTES} bytes; send the leaf and its intermediates only"
    )]
    ChainTooLarge,
    #[error("the private key is larger than {MAX_PEM_BYTES} bytes")]
    KeyTooLarge,
    #[error(
        "the certificate chain holds no `-----BEGIN CERTIFICATE-----` block; send the PEM file of the \
         certificate followed by its intermediates"
    )]
    NoCertificate,
    #[error("the certificate chain holds more than {MAX_CHAIN_LENGTH} certificates")]
    ChainTooLong,
    #[error("the certificate chain is not valid PEM ({0})")]
    BadChainPem(String),
    #[error(
        "the key holds no private key block (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
         `EC PRIVATE KEY`): {0}"
    )]
    NoKey(String),
    #[error("the first certificate of the chain cannot be read as X.509 ({0})")]
    BadCertificate(String),
    #[error(
        "the certificate does not cover `{hostname}`: it names {names}; send a certificate whose \
         subject alternative names include `{hostname}`"
    )]
    NotCovered { hostname: String, names: String },
    #[error("the certificate expired at {0}; send a renewed one")]
    Expired(String),
    #[error("the private key cannot be used ({0}); send an RSA, ECDSA or Ed25519 key in PEM")]
    UnusableKey(String),
    #[error(
        "the private key does not belong to the certificate; send the key the certificate was issued for"
    )]
    KeyMismatch,
}

/// A chain and key that passed every check, ready to serve.
#[derive(Debug, Clone)]
pub struct CheckedCertificate {
    /// The hostname, lower-case, without a trailing dot.
    pub hostname: String,
    pub certified: Arc<CertifiedKey>,
    /// Validity, in Unix milliseconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The DNS names the certificate covers (subject alternative names).
    pub names: Vec<String>,
}

/// The hostname a certificate is stored under, lower-case and without a
/// trailing dot: a DNS name, or `*.` and a DNS name.
pub fn normalize_hostname(hostname: &str) -> Result<String, CertificateError> {
    let refuse = || CertificateError::BadHostname(hostname.chars().take(300).collect());
    let name = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    let rest = name.strip_prefix("*.").unwrap_or(&name);
    let labels_ok = !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok { Ok(name) } else { Err(refuse()) }
}

/// Whether a certificate naming `names` covers `hostname` (both
/// lower-case): an exact name, or a wildcard name covering one label.
pub fn covers(names: &[String], hostname: &str) -> bool {
    names.iter().any(|name| {
        name == hostname
            || name.strip_prefix("*.").is_some_and(|parent| {
                // A wildcard certificate covers `*.parent` and `x.parent`.
                hostname
                    .split_once('.')
                    .is_some_and(|(first, rest)| rest == parent && !first.is_empty())
            })
    })
}

/// Checks `chain_pem` and `key_pem` for `hostname` at `now_millis`.
pub fn check(
    hostname: &str,
    chain_pem: &str,
    key_pem: &str,
    now_millis: i64,
) -> Result<CheckedCertificate, CertificateError> {
    let hostname = normalize_hostname(hostname)?;
    if chain_pem.len() > MAX_PEM_BYTES {
        return Err(CertificateError::ChainTooLarge);
    }
    if key_pem.len() > MAX_PEM_BYTES {
        return Err(CertificateError::KeyTooLarge);
    }
    let mut chain = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(chain_pem.as_bytes()) {
        let certificate = certificate.map_err(|e| CertificateError::BadChainPem(e.to_string()))?;
        if chain.len() == MAX_CHAIN_LENGTH {
            return Err(CertificateError::ChainTooLong);
        }
        chain.push(certificate);
    }
    let Some(leaf) = chain.first() else {
        return Err(CertificateError::NoCertificate);
    };
    let (not_before, not_after, names) = read_leaf(leaf)?;
    if !covers(&names, &hostname) {
        return Err(CertificateError::NotCovered {
            hostname,
            names: if names.is_empty() {
                "no DNS name".to_owned()
            } else {
                names.join(", ")
            },
        });
    }
    if not_after <= now_millis {
        return Err(CertificateError::Expired(
            chrono::DateTime::from_timestamp_millis(not_after)
                .map_or_else(|| not_after.to_string(), |at| at.to_rfc3339()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| CertificateError::NoKey(e.to_string()))?;
    let certified = certified_key(chain, key)?;
    Ok(CheckedCertificate {
        hostname,
        certified: Arc::new(certified),
        not_before,
        not_after,
        names,
    })
}

/// The chain and key as rustls serves them, the key checked against the
/// certificate.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, CertificateError> {
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertificateError::UnusableKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertificateError::KeyMismatch)
        }
        Err(error) => Err(CertificateError::BadCertificate(error.to_string())),
    }
}

/// The leaf's validity (Unix milliseconds) and DNS names, lower-case.
fn read_leaf(leaf: &CertificateDer<'_>) -> Result<(i64, i64, Vec<String>), CertificateError> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let (_, certificate) =
        X509Certificate::from_der(leaf).map_err(|e| CertificateError::BadCertificate(e.to_string()))?;
    let validity = certificate.validity();
    let names = match certificate.subject_alternative_name() {
        Ok(Some(extension)) => extension
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(CertificateError::BadCertificate(e.to_string())),
    };
    Ok((
        validity.not_before.timestamp().saturating_mul(1000),
        validity.not_after.timestamp().saturating_mul(1000),
        names,
    ))
}

/// Reads a stored chain and opened key again, for serving: the checks of
/// [`check`] passed when it was stored, and are not repeated (a certificate
/// past its date is still served until replaced, rather than none).
pub fn load(chain_pem: &str, key_pem: &str) -> Result<(Arc<CertifiedKey>, Vec<String>), CertificateError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .take(MAX_CHAIN_LENGTH)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertificateError::BadChainPem(e.to_string()))?;
    let leaf = chain.first().ok_or(CertificateError::NoCertificate)?;
    let (_, _, names) = read_leaf(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| CertificateError::NoKey(e.to_string()))?;
    Ok((Arc::new(certified_key(chain, key)?), names))
}

/// The DNS names the first certificate of a stored chain covers; empty if
/// it no longer parses.
pub fn names_in_chain(chain_pem: &str) -> Vec<String> {
    CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .and_then(|leaf| read_leaf(&leaf).ok())
        .map(|(_, _, names)| names)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn hostnames_are_names_or_wildcards_one_label_deep() {
        assert_eq!(normalize_hostname("WWW.Example.com.").unwrap(), "www.example.com");
        assert_eq!(normalize_hostname("*.example.com").unwrap(), "*.example.com");
        assert_eq!(normalize_hostname("*.localhost").unwrap(), "*.localhost");
        for bad in [
            "",
            "*",
            "*.",
            "a.*.example.com",
            "**.example.com",
            "exa mple.com",
            "-a.com",
            "a..com",
        ] {
            assert!(normalize_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_wildcard_covers_one_label_and_no_more() {
        let wildcard = names(&["*.example.com"]);
        assert!(covers(&wildcard, "blog.example.com"));
        assert!(covers(&wildcard, "*.example.com"));
        assert!(!covers(&wildcard, "example.com"));
        assert!(!covers(&wildcard, "a.blog.example.com"));
        assert!(covers(&names(&["example.com"]), "example.com"));
        assert!(!covers(&names(&["example.com"]), "www.example.com"));
    }
}
