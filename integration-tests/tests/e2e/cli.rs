//! The `jamstack` command-line client, run as a process against a real
//! controller: logging in, sites, settings and variables, deploying a local
//! folder (twice: the second time uploads nothing), publishing, rolling
//! back, locking, diffs, builds followed to their exit status, build hooks,
//! schedules, and the exit codes scripts rely on.

use crate::helpers::{COPY_SITE_TOML, SiteRepo, TestApp, spawn_app, spawn_controller_only};
use crate::processes::binary;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// What one run of `jamstack` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `jamstack` with its own config file, as a user of one controller.
struct Jamstack {
    config: PathBuf,
    dir: tempfile::TempDir,
    url: String,
    token: String,
}

impl Jamstack {
    fn new(app: &TestApp) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Jamstack {
            config: dir.path().join("jamstack/config.toml"),
            dir,
            url: app.base_url.clone(),
            token: app.admin_token.clone(),
        }
    }

    /// Runs with the URL and token in the environment.
    async fn run(&self, args: &[&str]) -> Run {
        self.run_with(
            args,
            &[("JAMSTACK_URL", &self.url), ("JAMSTACK_TOKEN", &self.token)],
            None,
        )
        .await
    }

    /// Runs with only what `jamstack login` saved.
    async fn run_logged_in(&self, args: &[&str]) -> Run {
        self.run_with(args, &[], None).await
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
        let mut command = tokio::process::Command::new(binary("jamstack"));
        command
            .args(args)
            .env_remove("JAMSTACK_URL")
            .env_remove("JAMSTACK_TOKEN")
            .env("JAMSTACK_CONFIG", &self.config)
            // `jamstack deploy` keeps its hash cache here, not in the home folder.
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting jamstack");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let output = tokio::time::timeout(std::time::Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("jamstack {args:?} did not end in 2 minutes"))
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs, insists on success, returns the run.
    async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert_eq!(run.code, 0, "jamstack {args:?} failed: {run:?}");
        run
    }

    /// Runs with `--json`, insists on success, returns the JSON printed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.ok(&args).await.json()
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

#[tokio::test]
async fn a_user_logs_in_sets_up_a_site_and_deploys_a_folder_from_the_command_line() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    let repo = SiteRepo::new();

    // Logging in with the token piped in saves it where only its owner reads it.
    let run = cli
        .run_with(
            &["login", "--url", &format!("{}/", app.base_url)],
            &[],
            Some(&format!("{}\n", app.admin_token)),
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let saved = std::fs::read_to_string(&cli.config).unwrap();
    assert!(
        saved.contains(&app.base_url) && saved.contains(&app.admin_token),
        "{saved}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cli.config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the saved token is private");
    }
    let refused = cli
        .run_with(
            &["login", "--url", &app.base_url, "--token", "not-a-token"],
            &[],
            None,
        )
        .await;
    assert_eq!(refused.code, 4, "a bad token is refused at login: {refused:?}");

    let run = cli
        .run_logged_in(&["sites", "create", "cli-site", "--repo-url", &repo.url()])
        .await;
    assert_eq!(run.code, 0, "the saved login is used: {run:?}");
    assert!(run.stdout.contains("Created site cli-site"), "{run:?}");

    let sites = cli.json(&["sites", "list"]).await;
    assert_eq!(sites.as_array().unwrap().len(), 1, "{sites}");
    assert_eq!(sites[0]["name"], "cli-site");
    let table = cli.ok(&["sites", "list"]).await;
    assert!(
        table.stdout.contains("cli-site") && table.stdout.contains("NAME"),
        "{table:?}"
    );
    assert_eq!(
        cli.json(&["sites", "show", "cli-site"]).await["production_branch"],
        "main"
    );

    // Exit codes scripts rely on.
    let missing = cli.run(&["sites", "show", "no-such-site"]).await;
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.contains("no site named `no-such-site`"),
        "{missing:?}"
    );
    let unauthorised = cli.run(&["sites", "list", "--token", "wrong"]).await;
    assert_eq!(unauthorised.code, 4, "{unauthorised:?}");
    assert!(
        unauthorised.stderr.contains("jamstack login"),
        "says what to do next: {unauthorised:?}"
    );
    let usage = cli.run(&["sites", "frobnicate"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");
    let help = cli.ok(&["--help"]).await;
    assert!(
        help.stdout.contains("Exit codes") && help.stdout.contains("5  the build failed"),
        "{help:?}"
    );

    // Settings: site settings and build limits, through one command.
    let settings = cli
        .json(&[
            "sites",
            "settings",
            "cli-site",
            "--set",
            "branch_deploys=true",
            "--set",
            "timeout_seconds=600",
            "--set",
            "cpus=0.5",
        ])
        .await;
    assert_eq!(settings["site"]["branch_deploys"], true, "{settings}");
    assert_eq!(settings["build_settings"]["timeout_seconds"], 600, "{settings}");
    let settings = cli
        .json(&["sites", "settings", "cli-site", "--set", "memory_mib=256"])
        .await;
    assert_eq!(settings["build_settings"]["memory_mib"], 256);
    assert_eq!(
        settings["build_settings"]["timeout_seconds"], 600,
        "other limits are kept: {settings}"
    );
    // A site of a monorepo: its base folder and watch paths.
    let settings = cli
        .json(&[
            "sites",
            "settings",
            "cli-site",
            "--set",
            "base=sites/cli",
            "--set",
            "watch_paths=sites/cli/**, shared/**",
        ])
        .await;
    assert_eq!(
        settings["build_paths"],
        json!({"base": "sites/cli", "watch_paths": ["sites/cli/**", "shared/**"]}),
        "{settings}"
    );
    let settings = cli
        .json(&["sites", "settings", "cli-site", "--set", "watch_paths="])
        .await;
    assert_eq!(
        settings["build_paths"],
        json!({"base": "sites/cli", "watch_paths": []}),
        "the base is kept: {settings}"
    );
    let bad = cli
        .run(&["sites", "settings", "cli-site", "--set", "colour=blue"])
        .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("production_branch"),
        "names the settings there are: {bad:?}"
    );

    // Environment variables; a secret is never shown again.
    cli.ok(&["sites", "env", "cli-site", "set", "API_KEY", "-", "--secret"])
        .await;
    cli.ok(&["sites", "env", "cli-site", "set", "MODE", "fast"]).await;
    let vars = cli.json(&["sites", "env", "cli-site", "list"]).await;
    assert_eq!(vars.as_array().unwrap().len(), 2, "{vars}");
    let key = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "API_KEY")
        .unwrap();
    assert_eq!(key["secret"], true);
    assert!(key["value"].is_null(), "{vars}");
    let table = cli.ok(&["sites", "env", "cli-site", "list"]).await;
    assert!(
        table.stdout.contains("fast") && table.stdout.contains("(hidden)"),
        "{table:?}"
    );
    cli.ok(&["sites", "env", "cli-site", "unset", "MODE"]).await;
    assert_eq!(
        cli.json(&["sites", "env", "cli-site", "list"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        cli.run(&["sites", "env", "cli-site", "unset", "MODE"]).await.code,
        3
    );

    // A folder deployed to production, then again: nothing is uploaded the second time.
    let folder = tempfile::tempdir().unwrap();
    write_files(
        folder.path(),
        &[("index.html", "<h1>one</h1>"), ("css/site.css", "body{}")],
    );
    let dir = folder.path().to_str().unwrap();
    let first = cli.ok(&["deploy", dir, "--site", "cli-site", "--prod"]).await;
    assert!(first.stderr.contains("Uploaded 2 of 2 files"), "{first:?}");
    assert!(first.stdout.contains("Published"), "{first:?}");
    assert_eq!(app.visit("cli-site", "/").await.body, "<h1>one</h1>");
    let second = cli.ok(&["deploy", dir, "--site", "cli-site", "--prod"]).await;
    assert!(
        second
            .stderr
            .contains("Nothing to upload: the controller already has all 2 files"),
        "{second:?}"
    );

    // A draft with one file changed: one upload, production unchanged.
    write_files(folder.path(), &[("index.html", "<h1>two</h1>")]);
    let draft = cli.ok(&["deploy", dir, "--site", "cli-site", "--draft"]).await;
    assert!(draft.stderr.contains("Uploaded 1 of 2 files"), "{draft:?}");
    assert_eq!(
        app.visit("cli-site", "/").await.body,
        "<h1>one</h1>",
        "a draft is not published"
    );
    let deploys = cli.json(&["deploys", "list", "cli-site"]).await;
    let deploys = deploys.as_array().unwrap();
    assert_eq!(deploys.len(), 3, "{deploys:?}");
    let draft_id = deploys[0]["id"].as_str().unwrap().to_owned();
    let second_id = deploys[1]["id"].as_str().unwrap().to_owned();
    assert!(
        draft.stdout.contains(&draft_id),
        "the draft's permalink is printed: {draft:?}"
    );

    let diff = cli.json(&["deploys", "diff", "cli-site", &draft_id]).await;
    assert_eq!(diff["against"], second_id.as_str(), "{diff}");
    assert_eq!(diff["changed"][0]["path"], "index.html", "{diff}");
    assert_eq!(diff["added"].as_array().unwrap().len(), 0, "{diff}");
    let diff = cli.ok(&["deploys", "diff", "cli-site", &draft_id]).await;
    assert!(
        diff.stdout.contains("~ index.html") && diff.stdout.contains("0 added, 1 changed, 0 removed"),
        "{diff:?}"
    );

    cli.ok(&["deploys", "publish", "cli-site", &draft_id]).await;
    assert_eq!(app.visit("cli-site", "/").await.body, "<h1>two</h1>");
    let rollback = cli.ok(&["deploys", "rollback", "cli-site"]).await;
    assert!(
        rollback.stdout.contains(&second_id),
        "rolls back to the production deploy before: {rollback:?}"
    );
    assert_eq!(app.visit("cli-site", "/").await.body, "<h1>one</h1>");

    let locked = cli.json(&["deploys", "lock", "cli-site"]).await;
    assert_eq!(locked["publish_locked"], true, "{locked}");
    let unlocked = cli.json(&["deploys", "unlock", "cli-site"]).await;
    assert_eq!(unlocked["publish_locked"], false, "{unlocked}");
    assert_eq!(
        cli.run(&["deploys", "publish", "cli-site", "no-such-deploy"])
            .await
            .code,
        3
    );

    // A token without the scope a command needs: exit 4, and the scope named.
    let (status, reader) = app
        .api_json(
            app.http
                .post(app.api("/tokens"))
                .json(&json!({ "name": "reader", "scopes": ["read"] })),
        )
        .await;
    assert_eq!(status, 201, "{reader}");
    let reader = reader["token"].as_str().unwrap();
    let listed = cli.run(&["sites", "list", "--json", "--token", reader]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let refused = cli.run(&["deploys", "lock", "cli-site", "--token", reader]).await;
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(refused.stderr.contains("`deploys` scope"), "{refused:?}");

    // A symlink out of the folder is refused, as a build's would be.
    let outside = tempfile::tempdir().unwrap();
    write_files(outside.path(), &[("secret.txt", "s3cret")]);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), folder.path().join("leak.txt"))
            .unwrap();
        let refused = cli.run(&["deploy", dir, "--site", "cli-site"]).await;
        assert_eq!(refused.code, 1, "{refused:?}");
        assert!(
            refused.stderr.contains("`leak.txt`") && refused.stderr.contains("outside"),
            "{refused:?}"
        );
    }

    let empty = tempfile::tempdir().unwrap();
    let refused = cli
        .run(&["deploy", empty.path().to_str().unwrap(), "--site", "cli-site"])
        .await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("no files to deploy"), "{refused:?}");

    let completions = cli.ok(&["completions", "bash"]).await;
    assert!(
        completions.stdout.contains("_jamstack") && completions.stdout.contains("deploys"),
        "{completions:?}"
    );
}

#[tokio::test]
async fn a_user_follows_builds_from_the_command_line_to_their_exit_status() {
    let app = spawn_app().await;
    let cli = Jamstack::new(&app);
    let repo = SiteRepo::new();
    let good = repo.commit(
        &[("jamstack.toml", COPY_SITE_TOML), ("src/index.html", "good")],
        "good",
    );
    app.connect_site_with("cli-builds", json!({ "repo_url": repo.url() }))
        .await;

    // `trigger --wait` prints the log as it comes and ends with the build.
    let run = cli
        .ok(&["builds", "trigger", "cli-builds", "--sha", &good, "--wait"])
        .await;
    assert!(
        run.stdout.contains(&format!("built {good}")),
        "the log is printed: {run:?}"
    );
    assert!(run.stderr.contains("succeeded"), "{run:?}");

    let broken = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"echo about to fail; exit 3\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
        )],
        "break the build",
    );
    let queued = cli
        .json(&["builds", "trigger", "cli-builds", "--sha", &broken])
        .await;
    let failed_id = queued["id"].as_i64().unwrap().to_string();
    let follow = cli.run(&["builds", "logs", &failed_id, "--follow"]).await;
    assert_eq!(
        follow.code, 5,
        "a failed build ends `logs --follow` with 5: {follow:?}"
    );
    assert!(follow.stdout.contains("about to fail"), "{follow:?}");
    assert!(follow.stderr.contains("failed"), "{follow:?}");

    // A stream cut right after the log arrived is reopened where it broke
    // off (Last-Event-ID): the log is printed once, then the build's end.
    let proxy = StreamCutter::start(app.port).await;
    let resumed = cli
        .run(&["builds", "logs", &failed_id, "--follow", "--url", &proxy.url])
        .await;
    assert_eq!(resumed.code, 5, "{resumed:?}");
    assert_eq!(
        resumed.stdout.matches("out about to fail").count(),
        1,
        "{resumed:?}"
    );
    assert!(
        proxy.connections() >= 2,
        "the stream was cut and reopened: {resumed:?}"
    );

    let shown = cli.json(&["builds", "show", &failed_id]).await;
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["exit_code"], 3);
    let log = cli.ok(&["builds", "logs", &failed_id]).await;
    assert!(log.stdout.contains("about to fail"), "{log:?}");
    let builds = cli.json(&["builds", "list", "cli-builds"]).await;
    assert_eq!(builds.as_array().unwrap().len(), 2, "{builds}");
    assert_eq!(builds[0]["id"].to_string(), failed_id, "newest first");
    let table = cli.ok(&["builds", "list", "cli-builds"]).await;
    assert!(
        table.stdout.contains("failed") && table.stdout.contains("succeeded"),
        "{table:?}"
    );

    // A retry builds the same commit again, and fails again.
    let retry = cli.json(&["builds", "retry", &failed_id]).await;
    let retry_id = retry["id"].as_i64().unwrap().to_string();
    assert_ne!(retry_id, failed_id);
    assert_eq!(retry["commit_sha"], broken.as_str(), "{retry}");
    assert_eq!(cli.run(&["builds", "logs", &retry_id, "--follow"]).await.code, 5);

    // A cancelled build ends `logs --follow` with 5 too.
    let slow = repo.commit(
        &[(
            "jamstack.toml",
            "[build]\ncommand = \"sleep 60\"\npublish = \"public\"\nimage = \"jamstack/busybox:1\"\n",
        )],
        "slow",
    );
    let queued = cli
        .json(&["builds", "trigger", "cli-builds", "--sha", &slow])
        .await;
    let slow_id = queued["id"].as_i64().unwrap().to_string();
    cli.ok(&["builds", "cancel", &slow_id]).await;
    let follow = cli.run(&["builds", "logs", &slow_id, "--follow"]).await;
    assert_eq!(follow.code, 5, "{follow:?}");
    assert!(follow.stderr.contains("cancelled"), "{follow:?}");
    assert_eq!(
        cli.json(&["builds", "show", &slow_id]).await["state"],
        "cancelled"
    );
    assert_eq!(cli.run(&["builds", "show", "999999"]).await.code, 3);
}

/// A TCP proxy to the controller that cuts its first connection right after
/// the first server-sent event of the answer, as a flaky network would.
struct StreamCutter {
    url: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StreamCutter {
    async fn start(port: u16) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                tokio::spawn(async move {
                    let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                    if !first {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        return;
                    }
                    let (mut client_read, mut client_write) = client.split();
                    let (mut upstream_read, mut upstream_write) = upstream.split();
                    let forward = tokio::io::copy(&mut client_read, &mut upstream_write);
                    let answer = async {
                        // Pass the headers and the first event, then hang up.
                        let mut seen = Vec::new();
                        let mut buf = [0u8; 1];
                        loop {
                            if upstream_read.read(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                            seen.push(buf[0]);
                            client_write.write_all(&buf).await.unwrap();
                            let body = seen
                                .windows(4)
                                .position(|w| w == b"\r\n\r\n")
                                .map(|end| &seen[end + 4..]);
                            if body.is_some_and(|body| body.windows(2).any(|w| w == b"\n\n")) {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = forward => {}
                        () = answer => {}
                    }
                });
            }
        });
        StreamCutter { url, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_user_makes_lists_and_revokes_build_hooks_from_the_command_line() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    app.connect_site_with("docs", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;

    let made = cli
        .ok(&[
            "build-hooks",
            "create",
            "docs",
            "cms",
            "--title",
            "Content published",
        ])
        .await;
    let url = made
        .stdout
        .lines()
        .find(|line| line.contains("/hooks/build/"))
        .unwrap_or_else(|| panic!("the URL is printed: {made:?}"))
        .trim()
        .to_owned();
    let called = app.http.post(&url).send().await.unwrap();
    assert_eq!(called.status().as_u16(), 201);

    let listed = cli.ok(&["build-hooks", "list", "docs"]).await.stdout;
    assert!(
        listed.contains("cms") && listed.contains("Content published"),
        "{listed}"
    );
    assert!(listed.contains("(production)"), "{listed}");
    assert!(
        !listed.contains(url.rsplit('/').next().unwrap()),
        "the URL is never listed"
    );
    let hooks = cli.json(&["build-hooks", "list", "docs"]).await;
    let id = hooks[0]["id"].as_i64().unwrap().to_string();
    assert!(hooks[0]["last_used_at"].is_i64(), "{hooks}");

    cli.ok(&["build-hooks", "revoke", "docs", &id]).await;
    assert_eq!(app.http.post(&url).send().await.unwrap().status().as_u16(), 404);
    let again = cli.run(&["build-hooks", "revoke", "docs", &id]).await;
    assert_eq!(again.code, 3, "not found: {again:?}");
    assert_eq!(cli.json(&["build-hooks", "list", "docs"]).await, json!([]));
}

#[tokio::test]
async fn a_folder_deployed_again_sends_only_its_changes_and_every_file_where_they_cannot_apply() {
    let app = spawn_app().await;
    let cli = Jamstack::new(&app);
    cli.ok(&["sites", "create", "handbook"]).await;
    cli.ok(&["sites", "create", "mirror"]).await;
    let folder = tempfile::tempdir().unwrap();
    let pages: Vec<(String, String)> = (0..40)
        .map(|i| (format!("pages/{i}.html"), format!("<p>page {i}</p>")))
        .collect();
    let pages: Vec<(&str, &str)> = pages.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    write_files(folder.path(), &pages);
    write_files(
        folder.path(),
        &[("index.html", "<h1>v1</h1>"), ("old.html", "going")],
    );
    let dir = folder.path().to_str().unwrap();
    let first = cli.ok(&["deploy", dir, "--site", "handbook", "--prod"]).await;
    assert!(!first.stderr.contains("Sending only the changes"), "{first:?}");
    let first_id = app.deploys_of("handbook").await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // One page changed, one added, one removed: those three travel.
    write_files(
        folder.path(),
        &[("index.html", "<h1>v2</h1>"), ("new.html", "fresh")],
    );
    std::fs::remove_file(folder.path().join("old.html")).unwrap();
    let second = cli.ok(&["deploy", dir, "--site", "handbook", "--prod"]).await;
    assert!(
        second.stderr.contains(&format!(
            "Sending only the changes since deploy {first_id}: 2 files added or changed, 1 removed"
        )),
        "{second:?}"
    );
    assert!(second.stderr.contains("Uploaded 2 of 42 files"), "{second:?}");
    assert_eq!(app.visit("handbook", "/").await.body, "<h1>v2</h1>");
    assert_eq!(app.visit("handbook", "/new.html").await.body, "fresh");
    assert_eq!(app.visit("handbook", "/old.html").await.status, 404);
    assert_eq!(
        app.visit("handbook", "/pages/39.html").await.body,
        "<p>page 39</p>"
    );
    let listed = app.deploys_of("handbook").await;
    assert_eq!(listed[0]["file_count"], 42, "{listed:?}");

    // The same folder to another site: the last deploy is not that site's,
    // so every file goes.
    let mirrored = cli.ok(&["deploy", dir, "--site", "mirror", "--prod"]).await;
    assert!(
        mirrored
            .stderr
            .contains("Sending every file instead; the controller said: the manifest's base"),
        "{mirrored:?}"
    );
    assert!(
        mirrored
            .stderr
            .contains("Nothing to upload: the controller already has all 42 files"),
        "{mirrored:?}"
    );
    assert_eq!(app.visit("mirror", "/").await.body, "<h1>v2</h1>");
    assert_eq!(app.visit("mirror", "/pages/0.html").await.body, "<p>page 0</p>");
}

#[tokio::test]
async fn a_user_makes_a_site_for_direct_deploys_then_connects_a_repository_and_builds_it() {
    let app = spawn_app().await;
    let cli = Jamstack::new(&app);

    // No repository: the site takes folders deployed by hand.
    let created = cli.ok(&["sites", "create", "docs"]).await;
    assert!(created.stdout.contains("Created site docs"), "{created:?}");
    assert!(
        created
            .stdout
            .contains("It has no repository: deploy a folder with `jamstack deploy"),
        "{created:?}"
    );
    let folder = tempfile::tempdir().unwrap();
    write_files(folder.path(), &[("index.html", "<h1>by hand</h1>")]);
    cli.ok(&[
        "deploy",
        folder.path().to_str().unwrap(),
        "--site",
        "docs",
        "--prod",
    ])
    .await;
    assert_eq!(app.visit("docs", "/").await.body, "<h1>by hand</h1>");

    // A build has nothing to build from, and says what to do instead.
    let refused = cli.run(&["builds", "trigger", "docs"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "site `docs` has no repository; connect one with `jamstack sites update docs --repo-url ...` \
             or deploy directly with `jamstack deploy`"
        ),
        "{refused:?}"
    );

    // Connected to a repository, it builds and publishes.
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", "<h1>built</h1>"),
        ],
        "First build",
    );
    let updated = cli
        .json(&["sites", "update", "docs", "--repo-url", &repo.url()])
        .await;
    assert_eq!(updated["repo_url"], repo.url().as_str());
    cli.ok(&["builds", "trigger", "docs", "--sha", &sha, "--wait"])
        .await;
    assert_eq!(app.visit("docs", "/").await.body, "<h1>built</h1>");
}

#[tokio::test]
async fn a_user_adds_lists_and_removes_a_schedule_from_the_command_line_and_sees_its_next_run() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    app.connect_site_with("nightly", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;

    let made = cli
        .ok(&[
            "schedules",
            "add",
            "--site",
            "nightly",
            "--cron",
            "0 6 * * *",
            "--time-zone",
            "Europe/Paris",
            "--title",
            "Morning rebuild",
        ])
        .await;
    assert!(made.stdout.contains("next run"), "{made:?}");

    let schedules = cli.json(&["schedules", "list", "--site", "nightly"]).await;
    let schedule = &schedules[0];
    let local = schedule["next_run_local"].as_str().unwrap().to_owned();
    let utc = schedule["next_run_utc"].as_str().unwrap().to_owned();
    assert!(
        local.contains("T06:00:00+01:00") || local.contains("T06:00:00+02:00"),
        "06:00 in Paris: {schedule}"
    );
    assert!(utc.ends_with('Z'), "{schedule}");
    let next = chrono::DateTime::parse_from_rfc3339(&utc)
        .unwrap()
        .timestamp_millis();
    assert!(
        next > jamstack_controller::db::now_millis() && next == schedule["next_run_at"].as_i64().unwrap(),
        "{schedule}"
    );

    let listed = cli.ok(&["schedules", "list", "--site", "nightly"]).await.stdout;
    for shown in [
        "0 6 * * *",
        "Europe/Paris",
        "Morning rebuild",
        "(production)",
        &local,
        &utc,
    ] {
        assert!(listed.contains(shown), "{shown} in:\n{listed}");
    }

    let refused = cli
        .run(&["schedules", "add", "--site", "nightly", "--cron", "0 25 * * *"])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("`cron`"), "names the field: {refused:?}");
    let refused = cli
        .run(&[
            "schedules",
            "add",
            "--site",
            "nightly",
            "--cron",
            "0 6 * * *",
            "--time-zone",
            "Mars/Olympus",
        ])
        .await;
    assert!(
        refused.stderr.contains("`time_zone`"),
        "names the field: {refused:?}"
    );

    let id = schedule["id"].as_i64().unwrap().to_string();
    cli.ok(&["schedules", "remove", "--site", "nightly", &id]).await;
    let again = cli.run(&["schedules", "remove", "--site", "nightly", &id]).await;
    assert_eq!(again.code, 3, "not found: {again:?}");
    assert_eq!(
        cli.json(&["schedules", "list", "--site", "nightly"]).await,
        json!([])
    );
}

#[tokio::test]
async fn a_user_adds_lists_and_removes_chat_and_email_notifications_from_the_command_line() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    app.connect_site_with("news", json!({ "repo_url": "/nowhere/repo.git" }))
        .await;

    let added = cli
        .ok(&[
            "notifications",
            "add",
            "news",
            "--kind",
            "slack",
            "--to",
            "https://chat.example.com/hooks/abc123secret/slack",
            "--event",
            "build.failed",
        ])
        .await;
    assert!(
        added.stdout.contains("Added slack notification hook"),
        "{added:?}"
    );
    assert!(
        !added.stdout.contains("abc123secret"),
        "a chat URL is shown by its host only: {added:?}"
    );
    let twice = cli
        .run(&[
            "notifications",
            "add",
            "news",
            "--to",
            "https://a.example.com/",
            "--to",
            "https://b.example.com/",
        ])
        .await;
    assert_eq!(twice.code, 2, "one URL per hook: {twice:?}");
    // This controller has no SMTP server: e-mail is refused, saying why.
    let refused = cli
        .run(&[
            "notifications",
            "add",
            "news",
            "--kind",
            "email",
            "--to",
            "ops@example.com",
        ])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("--smtp-url"), "{refused:?}");
    let signed = cli
        .ok(&[
            "notifications",
            "add",
            "news",
            "--to",
            "https://hooks.example.com/deploys",
        ])
        .await;
    assert!(
        signed.stdout.contains("signing secret"),
        "a webhook's secret is printed once: {signed:?}"
    );

    let listed = cli.ok(&["notifications", "list", "news"]).await.stdout;
    assert!(
        listed.contains("slack")
            && listed.contains("https://chat.example.com/…")
            && listed.contains("build.failed"),
        "{listed}"
    );
    assert!(!listed.contains("abc123secret"), "{listed}");
    let hooks = cli.json(&["notifications", "list", "news"]).await;
    assert_eq!(hooks[0]["kind"], "slack", "{hooks}");
    assert_eq!(hooks[1]["kind"], "webhook", "{hooks}");
    let id = hooks[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(
        cli.json(&["notifications", "deliveries", "news", &id]).await,
        json!([])
    );
    cli.ok(&["notifications", "remove", "news", &id]).await;
    let again = cli.run(&["notifications", "remove", "news", &id]).await;
    assert_eq!(again.code, 3, "not found: {again:?}");
    assert_eq!(
        cli.json(&["notifications", "list", "news"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_user_protects_a_site_with_a_password_from_stdin_and_makes_a_share_link() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    cli.ok(&["sites", "create", "hushed"]).await;
    let shown = cli.json(&["sites", "protect", "hushed"]).await;
    assert_eq!(shown["production"], "public");

    // Protecting without a password says what is missing.
    let refused = cli
        .run(&["sites", "protect", "hushed", "--all", "password"])
        .await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("no password"), "{refused:?}");

    let run = cli
        .run_with(
            &[
                "sites",
                "protect",
                "hushed",
                "--all",
                "password",
                "--password-stdin",
                "--json",
            ],
            &[("JAMSTACK_URL", &cli.url), ("JAMSTACK_TOKEN", &cli.token)],
            Some("quiet please\n"),
        )
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    let protection = run.json();
    assert_eq!(protection["previews"], "password");
    assert_eq!(protection["password_set"], true);
    assert!(!run.stdout.contains("quiet please"));

    let link = cli
        .ok(&["sites", "share-link", "hushed", "--expires-in", "60"])
        .await;
    assert!(
        link.stdout
            .trim()
            .starts_with(&format!("http://hushed.localhost:{}/?jamstack_share=", app.port)),
        "{link:?}"
    );
}

#[tokio::test]
async fn an_owner_limits_the_teams_concurrent_builds_from_the_command_line_and_a_viewer_cannot() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    let shown = cli.ok(&["teams", "settings", "default"]).await;
    assert!(shown.stdout.contains("no limit"), "{shown:?}");

    let set = cli
        .json(&["teams", "settings", "default", "--max-concurrent-builds", "2"])
        .await;
    assert_eq!(set, json!({ "max_concurrent_builds": 2, "auto_memberships": [] }));
    assert_eq!(
        cli.json(&["teams", "settings", "default"]).await,
        json!({ "max_concurrent_builds": 2, "auto_memberships": [] })
    );
    let refused = cli
        .run(&["teams", "settings", "default", "--max-concurrent-builds=-1"])
        .await;
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("max_concurrent_builds"),
        "says which field: {refused:?}"
    );

    // A viewer of the team reads the limit but may not change it (the
    // first person made owns the first team; the second is made viewer).
    for (request, body) in [
        ("/users", json!({ "login": "olga" })),
        ("/users", json!({ "login": "vera" })),
        ("/teams/default/members/vera", json!({ "role": "viewer" })),
    ] {
        let builder = if request.contains("members") {
            app.http.put(app.api(request))
        } else {
            app.http.post(app.api(request))
        };
        let (status, answer) = app.api_json(builder.json(&body)).await;
        assert!(status == 200 || status == 201, "{request}: {answer}");
    }
    let (status, token) = app
        .api_json(
            app.http
                .post(app.api("/teams/default/tokens"))
                .json(&json!({ "name": "vera", "scopes": ["read"], "login": "vera" })),
        )
        .await;
    assert_eq!(status, 201, "{token}");
    let as_viewer = [
        ("JAMSTACK_URL", app.base_url.as_str()),
        ("JAMSTACK_TOKEN", token["token"].as_str().unwrap()),
    ];
    let read = cli
        .run_with(&["teams", "settings", "default"], &as_viewer, None)
        .await;
    assert_eq!(read.code, 0, "{read:?}");
    assert!(read.stdout.contains('2'), "{read:?}");
    let changed = cli
        .run_with(
            &["teams", "settings", "default", "--max-concurrent-builds", "5"],
            &as_viewer,
            None,
        )
        .await;
    assert_ne!(changed.code, 0, "{changed:?}");
    assert_eq!(
        cli.json(&["teams", "settings", "default"]).await["max_concurrent_builds"],
        2
    );
}

/// Points `host` at `addresses` in pebble's DNS server (none: back to its
/// default, this machine).
async fn point_at(pebble: &crate::acme::pebble::Pebble, host: &str, addresses: &[&str]) {
    let (path, body) = if addresses.is_empty() {
        ("clear-a", json!({ "host": format!("{host}.") }))
    } else {
        (
            "add-a",
            json!({ "host": format!("{host}."), "addresses": addresses }),
        )
    };
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", pebble.challtestsrv_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_follows_a_domains_certificate_from_waiting_for_dns_to_active_in_jamstack_domains_list() {
    use jamstack_controller::acme::ChallengeKind;
    let setup = crate::acme::controller_with_acme(
        std::time::Duration::from_secs(90 * 24 * 3600),
        ChallengeKind::Http01,
        |config, _, pebble| config.dns_resolver = Some(pebble.dns_server),
    )
    .await;
    let app = &setup.app;
    crate::acme::one_page_site(app, "shop", "the shop").await;
    let cli = Jamstack::new(app);
    let manager = crate::domains::site_manager_token(app).await;
    let as_manager = [
        ("JAMSTACK_URL", app.base_url.as_str()),
        ("JAMSTACK_TOKEN", manager.as_str()),
    ];
    let host = "cli.example.com";
    let added = cli
        .run_with(&["domains", "add", "shop", host], &as_manager, None)
        .await;
    assert_eq!(added.code, 0, "{added:?}");
    let token = cli.json(&["domains", "list", "shop"]).await[0]["txt_record"]["value"]
        .as_str()
        .unwrap()
        .to_owned();

    // Waiting for its TXT record: the certificate waits too, and says so.
    let waiting = cli.ok(&["domains", "list", "shop"]).await.stdout;
    assert!(waiting.contains("CERTIFICATE"), "{waiting}");
    assert_eq!(
        waiting.matches("waiting for dns").count(),
        2,
        "state and certificate: {waiting}"
    );
    assert!(
        waiting.contains(&format!("_jamstack-challenge.{host} = {token}")),
        "the record to add: {waiting}"
    );
    assert!(
        waiting.contains(&format!(
            "{host}: no certificate yet: prove control of the domain first (its TXT record)"
        )),
        "{waiting}"
    );

    // Proven while the name points where the controller is not: the
    // order fails, and the list says why and what to do.
    point_at(&setup.pebble, host, &["127.0.0.2"]).await;
    let response = reqwest::Client::new()
        .post(format!("{}/set-txt", setup.pebble.challtestsrv_url))
        .json(&json!({ "host": format!("_jamstack-challenge.{host}."), "value": token }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let verified = cli
        .run_with(&["domains", "verify", "shop", host], &as_manager, None)
        .await;
    assert_eq!(verified.code, 0, "{verified:?}");
    assert_eq!(verified.stdout, format!("{host}: verified\n"), "{verified:?}");
    crate::helpers::eventually("the order to fail", || async {
        let listed = cli.json(&["domains", "list", "shop"]).await;
        match listed[0]["certificate"]["state"].as_str() {
            Some("failed") => Ok(()),
            other => Err(format!("{other:?}: {listed}")),
        }
    })
    .await;
    let failed = cli.ok(&["domains", "list", "shop"]).await.stdout;
    assert!(!failed.contains("waiting for dns"), "{failed}");
    assert!(failed.contains("verified"), "{failed}");
    assert!(
        failed.contains(&format!("{host}: the certificate could not be issued: {host}: ")),
        "{failed}"
    );
    assert!(
        failed.contains("(urn:ietf:params:acme:error:"),
        "the CA's problem type: {failed}"
    );
    let advice = failed
        .lines()
        .find(|line| line.starts_with("  what to do: "))
        .unwrap_or_else(|| panic!("no advice: {failed}"));
    assert!(advice.contains("A/AAAA"), "{advice}");

    // Pointed back here and tried again at once (rather than after its
    // wait): active, with its expiry, and nothing left to do.
    point_at(&setup.pebble, host, &[]).await;
    let db = &app.state.as_ref().unwrap().db;
    assert!(db.make_acme_order_due(host).await.unwrap());
    setup.served_over_https(host, None).await;
    let active = cli.ok(&["domains", "list", "shop"]).await.stdout;
    let year = active
        .split("active, expires ")
        .nth(1)
        .unwrap_or_else(|| panic!("no expiry shown: {active}"));
    assert!(year.starts_with("20"), "an RFC 3339 date: {active}");
    assert!(!active.contains("what to do"), "{active}");
    assert!(!active.contains("could not be issued"), "{active}");
    assert!(!active.contains("no certificate yet"), "{active}");
}

#[tokio::test]
async fn an_owner_sets_and_clears_a_teams_automatic_memberships_from_the_command_line() {
    let (app, _) = spawn_controller_only().await;
    let cli = Jamstack::new(&app);
    cli.ok(&["teams", "settings", "default", "--max-concurrent-builds", "3"])
        .await;

    let set = cli
        .ok(&[
            "teams",
            "settings",
            "default",
            "--auto-join",
            "oidc-group:web=developer",
            "--auto-join",
            "github-org:acme=viewer",
        ])
        .await;
    assert!(
        set.stdout.contains("auto-join oidc-group:web as developer")
            && set.stdout.contains("auto-join github-org:acme as viewer"),
        "the rules are printed: {set:?}"
    );
    // Changing the rules keeps the limit in force.
    let shown = cli.json(&["teams", "settings", "default"]).await;
    assert_eq!(shown["max_concurrent_builds"], 3, "{shown}");
    assert_eq!(
        shown["auto_memberships"],
        json!([
            { "source": "github-org:acme", "role": "viewer" },
            { "source": "oidc-group:web", "role": "developer" },
        ])
    );

    // Given again, the rules become exactly the ones given.
    let replaced = cli
        .json(&[
            "teams",
            "settings",
            "default",
            "--auto-join",
            "oidc-group:ops=admin",
        ])
        .await;
    assert_eq!(
        replaced["auto_memberships"],
        json!([{ "source": "oidc-group:ops", "role": "admin" }])
    );

    // A rule that is not SOURCE=ROLE, or names no known source, is refused
    // saying what to give; nothing changes.
    let malformed = cli
        .run(&["teams", "settings", "default", "--auto-join", "oidc-group:ops"])
        .await;
    assert_eq!(malformed.code, 2, "{malformed:?}");
    assert!(malformed.stderr.contains("SOURCE=ROLE"), "{malformed:?}");
    let unknown = cli
        .run(&["teams", "settings", "default", "--auto-join", "ldap:ops=admin"])
        .await;
    assert_ne!(unknown.code, 0, "{unknown:?}");
    assert!(unknown.stderr.contains("oidc-group:<group>"), "{unknown:?}");

    let cleared = cli.ok(&["teams", "settings", "default", "--no-auto-join"]).await;
    assert!(cleared.stdout.contains("no automatic memberships"), "{cleared:?}");
    let shown = cli.json(&["teams", "settings", "default"]).await;
    assert_eq!(shown["auto_memberships"], json!([]), "{shown}");
    assert_eq!(shown["max_concurrent_builds"], 3, "{shown}");
}
