//! The bundled sample site, so a newcomer sees a real deploy without GitHub:
//! its files are compiled in, committed to a local git repository in the
//! data directory, connected as site `demo` and built like any other site.

use crate::builds::{BuildRequest, Queue, queue_build};
use crate::db::{Database, NewSite, Site};
use jamstack_proto::BuildContext;
use std::path::Path;

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
pub async fn connect_and_build(data_dir: &Path, db: &Database, queue: &Queue) -> anyhow::Result<(Site, i64)> {
    let repo_dir = data_dir.join("demo-site.git");
    let site = match db.site_by_name(SITE_NAME).await? {
        Some(site) => site,
        None => {
            let dir = repo_dir.clone();
            tokio::task::spawn_blocking(move || commit_demo_files(&dir)).await??;
            let new_site = NewSite {
                name: SITE_NAME.to_owned(),
                repo_url: Some(repo_dir.to_string_lossy().into_owned()),
                github_repo: None,
                production_branch: "main".to_owned(),
                production_branch_follows_default: false,
                settings: Default::default(),
            };
            match db.insert_site(&new_site).await? {
                Some(site) => site,
                None => db
                    .site_by_name(SITE_NAME)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the demo site vanished"))?,
            }
        }
    };
    let build_id = queue_build(
        queue,
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
            trigger_title: None,
            trigger_payload: None,
        },
    )
    .await?;
    Ok((site, build_id))
}

/// Commits the demo's files to a new repository at `dir`, on `main`.
fn commit_demo_files(dir: &Path) -> Result<(), git2::Error> {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    let repo = git2::Repository::init_opts(dir, &options)?;
    for (path, content) in FILES {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        }
        std::fs::write(&full, content).map_err(|e| git2::Error::from_str(&e.to_string()))?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let signature = git2::Signature::now("Jamstack Demo", "demo@jamstack.localhost")?;
    let parent = repo
        .refname_to_id("refs/heads/main")
        .ok()
        .map(|id| repo.find_commit(id))
        .transpose()?;
    repo.commit(
        Some("refs/heads/main"),
        &signature,
        &signature,
        "Add the demo site",
        &tree,
        &parent.iter().collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// Makes sure the Docker engine has the image the demo site builds in, so
/// `up --demo` works on a fresh machine: `jamstack-runner images build-demo`
/// builds it when the engine lacks it (only the runner speaks to Docker),
/// saying what it does and how long it took on this process's output.
pub async fn ensure_image(runner: &std::path::Path) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(runner)
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
