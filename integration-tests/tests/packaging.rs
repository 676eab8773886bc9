//! The configuration reference, the systemd units and the Dockerfiles
//! checked against the command definitions they describe.

use clap::{CommandFactory, Parser};
use jamstack_controller::cli::Cli;
use jamstack_runner::cli::Args as RunnerArgs;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repository().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The controller's part and the runner's, as `jamstack-controller
/// config-reference` prints them with the runner program built beside it.
#[test]
fn the_configuration_reference_is_what_the_command_definitions_generate() {
    let committed = read("docs/configuration.md");
    let generated =
        jamstack_controller::config_reference::markdown() + &jamstack_runner::config_reference::markdown();
    assert!(
        committed == generated,
        "docs/configuration.md differs from the command definitions; regenerate it with\n  \
         cargo build -p jamstack-runner && \
         cargo run -p jamstack-controller -- config-reference > docs/configuration.md"
    );
}

/// Every environment variable some flag of `command` reads.
fn variables_of(command: &clap::Command, into: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            into.insert(env.to_string_lossy().into_owned());
        }
    }
    for sub in command.get_subcommands() {
        variables_of(sub, into);
    }
}

/// `Key=Value` lines by section; anything else but comments and blank
/// lines is a mistake.
fn unit_entries(path: &str) -> Vec<(String, String, String)> {
    let text = read(path);
    let mut section = String::new();
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}:{}: not a `Key=Value` line: {line}", number + 1));
        entries.push((section.clone(), key.to_owned(), value.to_owned()));
    }
    entries
}

fn value<'a>(entries: &'a [(String, String, String)], section: &str, key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

fn check_unit(path: &str, command: &clap::Command, parses: impl Fn(&[&str]) -> Result<(), clap::Error>) {
    let entries = unit_entries(path);
    for (section, key) in [
        ("Unit", "Description"),
        ("Service", "ExecStart"),
        ("Service", "User"),
        ("Install", "WantedBy"),
    ] {
        assert_eq!(
            value(&entries, section, key).len(),
            1,
            "{path}: one [{section}] {key}"
        );
    }
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(
            value(&entries, "Service", key),
            [expected],
            "{path}: [Service] {key}"
        );
    }
    let exec = value(&entries, "Service", "ExecStart")[0];
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        words[0],
        format!("/usr/local/bin/{}", command.get_name()),
        "{path}: ExecStart runs the program"
    );
    parses(&words).unwrap_or_else(|e| panic!("{path}: ExecStart `{exec}` does not parse: {e}"));
    let mut known = BTreeSet::new();
    variables_of(command, &mut known);
    for setting in value(&entries, "Service", "Environment") {
        let name = setting.split_once('=').map_or(setting, |(name, _)| name);
        assert!(
            known.contains(name),
            "{path}: Environment names `{name}`, which no flag reads"
        );
    }
}

#[test]
fn the_systemd_units_run_commands_and_set_variables_the_programs_have() {
    let mut controller = Cli::command();
    controller.build();
    check_unit(
        "packaging/systemd/jamstack-controller.service",
        &controller,
        |words| Cli::try_parse_from(words).map(|_| ()),
    );
    let mut runner = RunnerArgs::command();
    runner.build();
    check_unit("packaging/systemd/jamstack-runner.service", &runner, |words| {
        RunnerArgs::try_parse_from(words).map(|_| ())
    });
}

#[test]
fn the_dockerfiles_set_only_variables_the_programs_read() {
    for (path, command) in [
        ("packaging/controller.Dockerfile", Cli::command()),
        ("packaging/runner.Dockerfile", RunnerArgs::command()),
    ] {
        let mut known = BTreeSet::new();
        variables_of(&command, &mut known);
        let text = read(path).replace("\\\n", " ");
        let env_lines: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("ENV "))
            .collect();
        assert!(!env_lines.is_empty(), "{path} sets its data directory");
        for line in env_lines {
            for setting in line.split_whitespace() {
                let name = setting.split_once('=').map_or(setting, |(name, _)| name);
                assert!(
                    known.contains(name),
                    "{path}: ENV names `{name}`, which no flag reads"
                );
            }
        }
        assert!(
            text.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{}\"]", command.get_name())),
            "{path}: runs the program"
        );
        assert!(
            text.contains("ARG BASE="),
            "{path}: the base image is an argument"
        );
    }
}

/// `systemd-analyze verify` (package `systemd`) checks every directive; the
/// units' ExecStart points at an executable that exists (this test's own:
/// the programs are not run, and their flags are checked above).
#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let binary = exe.to_str().unwrap();
    let mut units = Vec::new();
    for name in ["jamstack-controller.service", "jamstack-runner.service"] {
        let text = read(&format!("packaging/systemd/{name}"))
            .replace("/usr/local/bin/jamstack-controller", binary)
            .replace("/usr/local/bin/jamstack-runner", binary);
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap_or_else(|e| {
            panic!("running systemd-analyze failed ({e}); install it with `apt-get install systemd`")
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let complaints: Vec<&str> = said.lines().filter(|line| line.contains("jamstack-")).collect();
    assert!(
        output.status.success() && complaints.is_empty(),
        "systemd-analyze verify complained:\n{said}"
    );
}
