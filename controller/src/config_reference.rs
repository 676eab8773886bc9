//! `docs/configuration.md`, made from the command definitions of
//! `jamstack-controller` ([`crate::cli`]) and `jamstack-runner`
//! (`jamstack_runner::cli`), so the reference cannot drift from the code.
//! `jamstack-controller config-reference > docs/configuration.md`
//! rewrites it; a test fails while the committed file differs.

use clap::CommandFactory;
use std::fmt::Write as _;

/// The whole reference, in Markdown.
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
    let mut controller = crate::cli::Cli::command();
    controller.build();
    let _ = writeln!(out, "\n## `jamstack-controller`\n");
    let _ = writeln!(out, "{}.\n", plain(controller.get_about()));
    options_table(&mut out, &controller);
    for sub in controller
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let _ = writeln!(out, "\n### `jamstack-controller {}`\n", sub.get_name());
        let _ = writeln!(out, "{}.\n", escape_html(&plain(sub.get_about())));
        options_table(&mut out, sub);
    }
    let mut runner = jamstack_runner::cli::Args::command();
    runner.build();
    let _ = writeln!(out, "\n## `jamstack-runner`\n");
    let _ = writeln!(out, "{}.\n", plain(runner.get_about()));
    options_table(&mut out, &runner);
    out
}

fn options_table(out: &mut String, command: &clap::Command) {
    let arguments: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .filter(|a| !a.is_global_set() || command.get_name() == "jamstack-controller")
        .collect();
    if arguments.is_empty() {
        let _ = writeln!(out, "No options of its own.");
        return;
    }
    let _ = writeln!(out, "| Flag | Environment | Default | Description |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for arg in arguments {
        let flag = match arg.get_long() {
            Some(long) => format!("`--{long}`"),
            None => format!("`<{}>` (argument)", arg.get_id().as_str().to_uppercase()),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match defaults.join(",") {
            d if d.is_empty() && arg.is_required_set() => "required".to_owned(),
            d if d.is_empty() => String::new(),
            d => format!("`{d}`"),
        };
        let mut description = plain(arg.get_long_help().or(arg.get_help()));
        if !description.is_empty() && !description.ends_with('.') {
            description.push('.');
        }
        let choices: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        if !choices.is_empty() && !matches!(defaults.as_slice(), [d] if d == "true" || d == "false") {
            let _ = write!(description, " One of {}.", choices.join(", "));
        }
        let _ = writeln!(
            out,
            "| {flag} | {env} | {default} | {} |",
            escape_html(description.trim()).replace('|', "\\|")
        );
    }
}

/// `<` and `>` outside code spans, which Markdown would take for HTML.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Help text on one line, as Markdown table cells need it.
fn plain(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string())
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
