//! `docs/configuration.md`: the flags of `jamstack-controller`, made from
//! its command definitions ([`crate::cli`]), then those of
//! `jamstack-runner`, which the controller does not link: its section is
//! what the runner program prints with its hidden `config-reference`. So
//! the reference cannot drift from either program's code.
//! `jamstack-controller config-reference > docs/configuration.md` rewrites
//! it (with the runner program built beside it); a test fails while the
//! committed file differs.

use anyhow::Context as _;
use clap::CommandFactory;

/// The controller's part of the reference, in Markdown: the file's head
/// and the controller's section.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Every flag of `jamstack-controller` and `jamstack-runner`, the environment variable that \
         sets it and its default. A flag given on the command line wins over its environment \
         variable. `RUST_LOG` chooses what is logged (default `info`).\n\n\
         This file is generated from the code: after changing a flag, run\n\
         `cargo run -p jamstack-controller -- config-reference > docs/configuration.md`\n\
         (a test fails until it matches).\n",
    );
    jamstack_program::flags_reference::program_section(&mut out, &crate::cli::Cli::command());
    out
}

/// The whole reference: [`markdown`], then the runner program's section.
pub fn with_runner_section() -> anyhow::Result<String> {
    let runner = crate::embedded_runner::runner_program()?;
    let output = std::process::Command::new(&runner)
        .arg("config-reference")
        .output()
        .with_context(|| format!("running {} config-reference", runner.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{} config-reference failed ({}): {}; is it as new as this controller? Build both with \
             `cargo build -p jamstack-controller -p jamstack-runner`",
            runner.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let runner_section = String::from_utf8(output.stdout).context("the runner's reference is not UTF-8")?;
    Ok(markdown() + &runner_section)
}
