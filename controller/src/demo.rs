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
        &state.queue,
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
