//! What `jamstack-controller` and `jamstack-runner` do alike, in one place
//! so the two programs agree: how they write log lines ([`logging`]; `up`
//! hands its `--log-format` to the runner it starts), which TLS provider
//! their HTTP clients use ([`install_tls_provider`]), and how their flags
//! are written in `docs/configuration.md` ([`flags_reference`]).
//!
//! Architecture invariant: this crate knows nothing of either program's
//! work; it exists so the controller need not depend on the runner (nor
//! the runner on the controller) for these few lines.

pub mod flags_reference;
pub mod logging;

/// Chooses the TLS crypto provider for the whole process. Several of our
/// dependencies each enable a different rustls provider; with more than one
/// compiled in, rustls cannot pick by itself, so every entry point (the two
/// binaries, the controller's `Application::build`, the runner's `run`)
/// calls this first. Calling it again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
