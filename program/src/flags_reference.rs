//! A program's flags in Markdown, as `docs/configuration.md` shows them:
//! each flag with its environment variable, default and help, made from
//! the clap definition so the reference cannot drift from the code. One
//! writer for both programs, so their sections read alike.

use std::fmt::Write as _;

/// The section of `program`: its name and purpose, its flags, then each
/// visible subcommand with its own flags (flags global to all of them are
/// shown once, on the program).
pub fn program_section(out: &mut String, program: &clap::Command) {
    let mut program = program.clone();
    program.build();
    let name = program.get_name().to_owned();
    let _ = writeln!(out, "\n## `{name}`\n");
    let _ = writeln!(out, "{}.\n", plain(program.get_about()));
    options_table(out, &program, Level::Program);
    for sub in program
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let _ = writeln!(out, "\n### `{name} {}`\n", sub.get_name());
        let _ = writeln!(out, "{}.\n", escape_html(&plain(sub.get_about())));
        options_table(out, sub, Level::Subcommand);
    }
}

/// Where a table is: a subcommand leaves out the program's global flags.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Program,
    Subcommand,
}

fn options_table(out: &mut String, command: &clap::Command, level: Level) {
    let arguments: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
        .filter(|a| !a.is_global_set() || level == Level::Program)
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
