//! The runner's section of `docs/configuration.md`, made from its command
//! definitions ([`crate::cli`]) and printed by the hidden `jamstack-runner
//! config-reference`: `jamstack-controller config-reference` adds it to
//! its own section, so one file documents both programs.

use clap::CommandFactory;

/// The section, in Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    jamstack_program::flags_reference::program_section(&mut out, &crate::cli::Args::command());
    out
}
