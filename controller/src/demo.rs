//! The bundled sample site, so a newcomer sees a real deploy without GitHub:
//! its files are compiled in, committed to a local git repository in the
//! data directory, connected as site `demo` and built like any other site.

use crate::builds::{BuildRequest, queue_build};
use crate::db::{NewSite, Site};
use crate::state::AppState;
use jamstack_proto::BuildContext;

pub const SITE_NAME: &str = "demo";

const FILES: &[(&str, &str)] = &[
    (
        "jamstack.toml",
        include_str!("../../examples/demo-site/jamstack.toml"),
    ),
    ("build.sh", include_str!("../../examples/demo-site/build.sh")),
    (
        "src/index.html",
        include_str!("../../examples/demo-site/src/index.html"),
    ),
    (
        "src/about/index.html",
        include_str!("../../examples/demo-site/src/about/index.html"),
    ),
    (
        "src/404.html",
        include_str!("../../examples/demo-site/src/404.html"),
    ),
    (
        "src/style.css",
        include_str!("../../examples/demo-site/src/style.css"),
    ),
];

/// Makes (once) the demo repository and site, and queues a build of it.
/// Returns the site and the build id.
pub async fn connect_and_build(state: &AppState) -> anyhow::Result<(Site, i64)> {
    let repo_dir = state.config.data_dir.join("demo-site.git");
    let site = match state.db.site_by_name(SITE_NAME).await? {
        Some(site) => site,
        None => {
            let dir = repo_dir.clone();
            tokio::task::spawn_blocking(move || {
                let files: Vec<(&str, &[u8])> = FILES.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
                jamstack_runner::git::commit_files(&dir, "main", &files, "Add the demo site")
            })
            .await??;
            let new_site = NewSite {
                name: SITE_NAME.to_owned(),
                repo_url: repo_dir.to_string_lossy().into_owned(),
                github_repo: None,
                production_branch: "main".to_owned(),
                settings: Default::default(),
            };
            match state.db.insert_site(&new_site).await? {
                Some(site) => site,
                None => state
                    .db
                    .site_by_name(SITE_NAME)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the demo site vanished"))?,
            }
        }
    };
    let build_id = queue_build(
        state,
        &site,
        BuildRequest {
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            context: BuildContext::Production,
            branch: site.production_branch.clone(),
            commit_sha: String::new(),
            commit_message: None,
            author: None,
            trigger: "demo",
        },
    )
    .await?;
    Ok((site, build_id))
}

/// Makes sure the Docker engine has the image the demo site builds in, so
/// `up --demo` works on a fresh machine: `jamstack-runner images build-demo`
/// builds it when the engine lacks it (only the runner speaks to Docker),
/// saying what it does and how long it took on this process's output.
pub async fn ensure_image() -> anyhow::Result<()> {
    let runner = runner_binary();
    let status = tokio::process::Command::new(&runner)
        .args(["images", "build-demo"])
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "starting {} to make the demo's image: {e}. `jamstack-runner` is looked for beside \
                 this program, then on PATH; install it there (both binaries ship together)",
                runner.display()
            )
        })?;
    if !status.success() {
        anyhow::bail!(
            "the demo's image could not be made ({status}; the reason is above). \
             ./scripts/build-images.sh builds it too"
        );
    }
    Ok(())
}

/// `jamstack-runner` beside this program's own executable (how both are
/// installed and built), else the one on PATH.
fn runner_binary() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("jamstack-runner")))
        .filter(|beside| beside.exists())
        .unwrap_or_else(|| "jamstack-runner".into())
}
