//! What a git event builds, whichever server sent it: a push becomes a
//! production build or a branch deploy, a pull request a deploy preview; a
//! deleted branch and a closed pull request take their hostnames down.
//!
//! The webhook handlers (`api::webhooks`) read deliveries into these
//! source-agnostic events; everything here decides per connected site,
//! from the site's settings, and says in one sentence per site what it did.

use crate::builds::Queue;
use crate::builds::{self, BuildRequest};
use crate::db::{BranchHistory, BranchPushed, Database, Site};
use crate::deploys::Deploys;
use crate::deploys::branch_label;
use crate::events::Event;
use crate::urls::Urls;
use jamstack_proto::BuildContext;
use std::collections::HashMap;

/// What was done with an event, as the sender is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `queued` (at least one build), `skipped` (builds recorded as
    /// skipped, none queued) or `ignored`.
    pub outcome: &'static str,
    pub builds: Vec<i64>,
    pub message: String,
}

impl Outcome {
    /// What the sender is answered: 202 when builds were queued, 200 when
    /// everything was done already.
    pub fn status(&self) -> u16 {
        if self.outcome == "queued" { 202 } else { 200 }
    }

    /// What the delivery's record says.
    pub fn record(self) -> crate::db::DeliveryRecord {
        crate::db::DeliveryRecord {
            outcome: self.outcome,
            message: self.message,
        }
    }

    pub fn ignored(message: impl Into<String>) -> Self {
        Outcome {
            outcome: "ignored",
            builds: Vec::new(),
            message: message.into(),
        }
    }
}

/// The answer to an event of a repository no site is connected to.
pub fn no_site(repository: &str) -> Outcome {
    Outcome::ignored(format!(
        "no site is connected to `{repository}`; connect one with POST /api/v1/sites"
    ))
}

/// Gathers per-site results into one [`Outcome`].
#[derive(Default)]
struct Tally {
    queued: Vec<i64>,
    skipped: Vec<i64>,
    notes: Vec<String>,
    /// A site found the push's commit built already (a replay).
    replayed: bool,
}

impl Tally {
    fn finish(self) -> Outcome {
        let outcome = if !self.queued.is_empty() {
            "queued"
        } else if !self.skipped.is_empty() {
            "skipped"
        } else if self.replayed {
            "duplicate"
        } else {
            "ignored"
        };
        let mut builds = self.queued;
        builds.extend(self.skipped);
        builds.sort_unstable();
        Outcome {
            outcome,
            builds,
            message: self.notes.join("; "),
        }
    }
}

/// A ref update, as a push webhook or a `post-receive` hook reports it.
#[derive(Debug, Clone)]
pub struct Push {
    /// The full ref, e.g. `refs/heads/main` or `refs/tags/v1`.
    pub git_ref: String,
    /// The commit the ref pointed at before, when the sender says (zeros
    /// for a new ref).
    pub before: Option<String>,
    /// The commit the ref points at now; empty to build the branch's head.
    pub after: String,
    pub deleted: bool,
    pub head_commit_message: Option<String>,
    pub head_commit_author: Option<String>,
    /// `webhook` (GitHub) or `generic-webhook`.
    pub trigger: &'static str,
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// What acting on a push or pull request needs: the queue builds go to,
/// the deploys whose aliases a closed pull request or deleted branch takes
/// down, and the sites' addresses for the notes.
#[derive(Clone)]
pub struct Triggers {
    pub queue: Queue,
    pub deploys: Deploys,
    pub urls: Urls,
}

/// A push to `sites` (all connected to the pushed repository).
pub async fn on_push(state: &Triggers, sites: &[Site], push: &Push) -> anyhow::Result<Outcome> {
    let histories = branch_histories(&state.queue.db, sites, push).await?;
    let plan = match plan_push(sites, push, &histories) {
        PushPlan::Build(plan) => plan,
        PushPlan::Ignored(outcome) => return Ok(outcome),
        PushPlan::BranchDeleted(branch) => return on_branch_deleted(state, sites, &branch).await,
    };
    let mut ids = Vec::with_capacity(plan.builds.len());
    for (planned, site) in plan.builds.iter().zip(plan.sites_of(sites)) {
        let id = match &planned.skip_reason {
            Some(reason) => {
                builds::record_skipped_build(&state.queue, site, planned.request.clone(), reason).await?
            }
            None => builds::queue_build(&state.queue, site, planned.request.clone()).await?,
        };
        ids.push(id);
    }
    Ok(plan.outcome(&ids))
}

/// What a push asks for, decided from the sites' settings alone (no
/// writes), so a delivery's builds can be recorded in one go with others
/// (see [`crate::push_batches`]).
pub enum PushPlan {
    Build(BuildPlan),
    /// Nothing to build or record: the answer is this.
    Ignored(Outcome),
    /// The branch was deleted: hostnames go away (not a build).
    BranchDeleted(String),
}

/// A build a plan asks for.
#[derive(Debug, Clone)]
pub struct PlannedBuild {
    pub site_id: i64,
    pub site_name: String,
    pub request: BuildRequest,
    /// Recorded as skipped, with this reason, instead of queued.
    pub skip_reason: Option<String>,
}

/// The builds an event asks for, and the sentence per site the sender is
/// told once they have ids.
#[derive(Debug, Clone, Default)]
pub struct BuildPlan {
    pub builds: Vec<PlannedBuild>,
    notes: Vec<PlanNote>,
    /// A site found the push's commit built already (a replay).
    replayed: bool,
}

#[derive(Debug, Clone)]
enum PlanNote {
    Text(String),
    /// Says what became of `builds[i]`.
    Build(usize),
}

impl BuildPlan {
    fn add(&mut self, site: &Site, request: BuildRequest, skip_reason: Option<String>) {
        self.notes.push(PlanNote::Build(self.builds.len()));
        self.builds.push(PlannedBuild {
            site_id: site.id,
            site_name: site.name.clone(),
            request,
            skip_reason,
        });
    }

    /// The site of each planned build, in order.
    fn sites_of<'a>(&'a self, sites: &'a [Site]) -> impl Iterator<Item = &'a Site> + 'a {
        self.builds.iter().map(move |planned| {
            sites
                .iter()
                .find(|site| site.id == planned.site_id)
                .expect("a plan names only the sites it was made from")
        })
    }

    /// The answer, once `ids` (one per planned build, in order) are known.
    pub fn outcome(&self, ids: &[i64]) -> Outcome {
        let mut tally = Tally {
            replayed: self.replayed,
            ..Tally::default()
        };
        for note in &self.notes {
            match note {
                PlanNote::Text(text) => tally.notes.push(text.clone()),
                PlanNote::Build(i) => {
                    let (planned, id) = (&self.builds[*i], ids[*i]);
                    let request = &planned.request;
                    match &planned.skip_reason {
                        Some(reason) => {
                            tally.skipped.push(id);
                            tally
                                .notes
                                .push(format!("{}: build {id} skipped ({reason})", planned.site_name));
                        }
                        None => {
                            tally.queued.push(id);
                            tally.notes.push(format!(
                                "{}: queued {} build {id} of {}",
                                planned.site_name,
                                request.context,
                                if request.commit_sha.is_empty() {
                                    &request.branch
                                } else {
                                    short(&request.commit_sha)
                                }
                            ));
                        }
                    }
                }
            }
        }
        tally.finish()
    }
}

/// What the pushed branch of each of `sites` built before (by site id),
/// for [`plan_push`]; nothing when the push names no commit or no branch.
pub async fn branch_histories(
    db: &Database,
    sites: &[Site],
    push: &Push,
) -> anyhow::Result<HashMap<i64, BranchHistory>> {
    Ok(branch_histories_of_pushes(db, &[(sites, push)])
        .await?
        .pop()
        .unwrap_or_default())
}

/// [`branch_histories`] of each of `pushes` (with the sites connected to
/// its repository), in one read for all of them.
pub async fn branch_histories_of_pushes(
    db: &Database,
    pushes: &[(&[Site], &Push)],
) -> anyhow::Result<Vec<HashMap<i64, BranchHistory>>> {
    let mut asked = Vec::new();
    // (push, site) of each branch asked.
    let mut owners = Vec::new();
    for (index, (sites, push)) in pushes.iter().enumerate() {
        let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
            continue;
        };
        if push.deleted || push.after.is_empty() {
            continue;
        }
        for site in *sites {
            asked.push(BranchPushed {
                site_id: site.id,
                branch,
                commit: &push.after,
            });
            owners.push((index, site.id));
        }
    }
    let mut histories = vec![HashMap::new(); pushes.len()];
    if asked.is_empty() {
        return Ok(histories);
    }
    for ((index, site_id), history) in owners.into_iter().zip(db.branch_histories(&asked).await?) {
        histories[index].insert(site_id, history);
    }
    Ok(histories)
}

/// Why a push of a commit `history` shows built is not built again, if it
/// is not: a captured delivery replayed, or sent again under a new id,
/// must not rebuild and republish an old commit.
///
/// "Not newer" is decided by commits, not by times (a revert by `git push
/// -f` to an older commit is legitimate, and its head commit is old):
/// - the commit is the one the branch last built: nothing would change;
/// - the commit was built before, and the push moves the branch from
///   another commit than the one it last built: an old push, played
///   again. A revert moves the branch from the commit it last built, so
///   it builds. A push that does not say where the branch was (a generic
///   sender without `before`) or that creates the branch is let through.
fn replayed_push(branch: &str, push: &Push, history: Option<&BranchHistory>) -> Option<String> {
    let history = history?;
    let (last_id, last_commit) = history.last.as_ref()?;
    if push.after.is_empty() {
        return None;
    }
    if *last_commit == push.after {
        return Some(format!(
            "commit {} was already built for branch `{branch}` (build {last_id}); nothing to do. \
             To build it again, trigger a build",
            short(&push.after)
        ));
    }
    let built = history.commit_built?;
    let before = push
        .before
        .as_deref()
        .filter(|b| !b.is_empty() && !b.bytes().all(|c| c == b'0'))?;
    (before != last_commit).then(|| {
        format!(
            "commit {} was built for branch `{branch}` before (build {built}), and this push moves the \
             branch from {}, not from {} that it last built (build {last_id}): a replayed old delivery \
             is not built. To serve that commit again, publish its deploy or trigger a build",
            short(&push.after),
            short(before),
            short(last_commit)
        )
    })
}

/// Decides what a push to `sites` builds, given what their branch built
/// before (`histories`, by site id, from [`branch_histories`]).
pub fn plan_push(sites: &[Site], push: &Push, histories: &HashMap<i64, BranchHistory>) -> PushPlan {
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        // Like Netlify: tags name releases of commits that were built when
        // their branch was pushed; building them again would change nothing.
        let what = if push.git_ref.starts_with("refs/tags/") {
            "tag pushes do not build (the commit was built when its branch was pushed)"
        } else {
            "only branches build"
        };
        return PushPlan::Ignored(Outcome::ignored(format!("`{}`: {what}", push.git_ref)));
    };
    if push.deleted {
        return PushPlan::BranchDeleted(branch.to_owned());
    }
    let skip_marker = push
        .head_commit_message
        .as_deref()
        .filter(|_| builds::honours_skip_markers(push.trigger))
        .and_then(jamstack_proto::skip_ci_marker);
    let mut plan = BuildPlan::default();
    for site in sites {
        let context = if branch == site.production_branch {
            BuildContext::Production
        } else if !site.branch_deploys {
            plan.notes.push(PlanNote::Text(format!(
                "{}: `{branch}` is not the production branch and branch deploys are off \
                 (turn them on with PATCH /api/v1/sites/{} {{\"branch_deploys\": true}})",
                site.name, site.name
            )));
            continue;
        } else if branch_label(branch).is_none() {
            plan.notes.push(PlanNote::Text(format!(
                "{}: branch `{branch}` has no letters or digits to name a hostname after",
                site.name
            )));
            continue;
        } else {
            BuildContext::BranchDeploy
        };
        if let Some(replay) = replayed_push(branch, push, histories.get(&site.id)) {
            plan.notes
                .push(PlanNote::Text(format!("{}: {replay}", site.name)));
            plan.replayed = true;
            continue;
        }
        let request = BuildRequest {
            context,
            branch: branch.to_owned(),
            commit_sha: push.after.clone(),
            commit_message: push.head_commit_message.clone(),
            author: push.head_commit_author.clone(),
            pr_number: None,
            from_fork: false,
            commit_unverified: false,
            trigger: push.trigger,
            trigger_title: None,
            trigger_payload: None,
        };
        let skip_reason = skip_marker.map(|marker| format!("the head commit's message says {marker}"));
        plan.add(site, request, skip_reason);
    }
    PushPlan::Build(plan)
}

/// A deleted branch: its branch deploy's hostname goes away and its
/// unfinished builds are cancelled. The production branch's deletion
/// changes nothing: the site keeps serving its published deploy.
async fn on_branch_deleted(state: &Triggers, sites: &[Site], branch: &str) -> anyhow::Result<Outcome> {
    let mut tally = Tally::default();
    for site in sites {
        if branch == site.production_branch {
            tally.notes.push(format!(
                "{}: the production branch `{branch}` was deleted; the site keeps serving its published deploy",
                site.name
            ));
            continue;
        }
        let Some(label) = branch_label(branch) else {
            continue;
        };
        let unfinished = state
            .queue
            .db
            .unfinished_builds(site.id, BuildContext::BranchDeploy, branch, None)
            .await?;
        builds::cancel_builds(&state.queue, site.id, &unfinished).await?;
        if state.queue.db.retire_alias(site.id, &label).await? {
            state
                .deploys
                .announce(crate::deploys::events::DeployEvent::SiteChanged { site_id: site.id })
                .await;
            tally.notes.push(format!(
                "{}: branch `{branch}` was deleted; {} is taken down",
                site.name,
                state.urls.site_url(&format!("{label}--{}", site.name))
            ));
            state.queue.events.publish(Event::AliasRemoved {
                site_id: site.id,
                alias: label,
            });
        } else {
            tally.notes.push(format!(
                "{}: branch `{branch}` was deleted; it had no branch deploy",
                site.name
            ));
        }
    }
    if tally.notes.is_empty() {
        tally.notes.push(format!("branch `{branch}` was deleted"));
    }
    Ok(tally.finish())
}

/// A pull request opened, reopened or pushed to.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub number: i64,
    pub head_ref: String,
    pub head_sha: String,
    pub from_fork: bool,
    pub author: Option<String>,
    pub title: Option<String>,
}

/// A pull request opened, reopened or pushed to builds a deploy preview in
/// every site that has previews on.
pub async fn on_pull_request(state: &Triggers, sites: &[Site], pr: &PullRequest) -> anyhow::Result<Outcome> {
    let mut tally = Tally::default();
    for site in sites {
        if !site.deploy_previews {
            tally.notes.push(format!(
                "{}: deploy previews are off (turn them on with PATCH /api/v1/sites/{} {{\"deploy_previews\": true}})",
                site.name, site.name
            ));
            continue;
        }
        let id = builds::queue_build(
            &state.queue,
            site,
            BuildRequest {
                context: BuildContext::DeployPreview,
                branch: pr.head_ref.clone(),
                commit_sha: pr.head_sha.clone(),
                // Filled in when the runner reports the commit it fetched.
                commit_message: None,
                author: pr.author.clone(),
                pr_number: Some(pr.number),
                from_fork: pr.from_fork,
                commit_unverified: false,
                trigger: "webhook",
                trigger_title: None,
                trigger_payload: None,
            },
        )
        .await?;
        tally.queued.push(id);
        tally.notes.push(format!(
            "{}: queued deploy preview build {id} of pull request #{} at {}{}",
            site.name,
            pr.number,
            short(&pr.head_sha),
            if pr.from_fork { " (from a fork)" } else { "" }
        ));
    }
    Ok(tally.finish())
}

/// A closed (or merged) pull request: its preview's hostname goes away and
/// its unfinished preview builds are cancelled.
pub async fn on_pull_request_closed(
    state: &Triggers,
    sites: &[Site],
    pr_number: i64,
) -> anyhow::Result<Outcome> {
    let mut tally = Tally::default();
    for site in sites {
        let unfinished = state
            .queue
            .db
            .unfinished_builds(site.id, BuildContext::DeployPreview, "", Some(pr_number))
            .await?;
        builds::cancel_builds(&state.queue, site.id, &unfinished).await?;
        let alias = format!("deploy-preview-{pr_number}");
        let removed = state.queue.db.retire_alias(site.id, &alias).await?;
        if removed {
            // The edge forgets the hostname before anyone is told it is gone.
            state
                .deploys
                .announce(crate::deploys::events::DeployEvent::SiteChanged { site_id: site.id })
                .await;
        }
        tally.notes.push(if removed {
            format!(
                "{}: pull request #{pr_number} closed; {} is taken down",
                site.name,
                state.urls.site_url(&format!("{alias}--{}", site.name))
            )
        } else {
            format!(
                "{}: pull request #{pr_number} closed; it had no deploy preview",
                site.name
            )
        });
        // Told even without a hostname, so GitHub's deployments of a
        // preview that never finished become inactive too.
        state.queue.events.publish(Event::AliasRemoved {
            site_id: site.id,
            alias,
        });
    }
    Ok(tally.finish())
}
