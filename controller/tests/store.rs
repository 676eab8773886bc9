//! The store (queue, leases, logs, deploys) against both databases. Every
//! test runs once on SQLite and once on PostgreSQL; `./scripts/test.sh`
//! starts the PostgreSQL server (`./scripts/start-postgres.sh`).

use jamstack_controller::db::{
    BaseRefused, BuildReport, BuildState, Database, FinalizeOutcome, FinishedAs, JobClaim, JobFinish,
    NewBuild, NewFileList, NewSite, RunnerRecord, SchedulingSettings, Site, SiteSettings,
};
use jamstack_proto::{BuildContext, ManifestFile, StepTiming};
use std::collections::HashSet;
use std::future::Future;

const DEFAULT_POSTGRES: &str = "postgres://jamstack:jamstack@127.0.0.1:5432/postgres";

async fn sqlite() -> (Database, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sqlite(&dir.path().join("store.db")).await.unwrap();
    (db, Box::new(dir))
}

async fn postgres() -> (Database, Box<dyn std::any::Any>) {
    let url = fresh_postgres_database().await;
    (Database::connect(&url).await.unwrap(), Box::new(()))
}

/// The URL of a new, empty PostgreSQL database.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url =
        std::env::var("JAMSTACK_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {admin_url} is unreachable ({e}); start it with ./scripts/start-postgres.sh")
    });
    let name = format!("jamstack_test_{}", jamstack_controller::secrets::random_hex(8));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("JAMSTACK_TEST_POSTGRES_URL must end in /<database>"),
    }
}

/// Runs `check` on a fresh SQLite database and a fresh PostgreSQL one.
macro_rules! on_both_databases {
    ($name:ident, $check:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                let (db, _keep) = sqlite().await;
                run($check, db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                let (db, _keep) = postgres().await;
                run($check, db).await;
            }
        }
    };
}

async fn run<F, Fut>(check: F, db: Database)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    check(db).await
}

async fn site(db: &Database, name: &str) -> Site {
    db.insert_site(&NewSite {
        name: name.into(),
        repo_url: Some(format!("/repos/{name}")),
        github_repo: Some(format!("octo/{name}")),
        production_branch: "main".into(),
        production_branch_follows_default: false,
        settings: Default::default(),
    })
    .await
    .unwrap()
    .unwrap()
}

async fn queue(db: &Database, site: &Site, branch: &str) -> i64 {
    db.enqueue_build(&NewBuild {
        site_id: site.id,
        context: BuildContext::Production,
        branch: branch.into(),
        commit_sha: "a".repeat(40),
        commit_message: None,
        author: None,
        pr_number: None,
        from_fork: false,
        commit_unverified: false,
        trigger: "api",
        trigger_title: None,
        trigger_payload: None,
    })
    .await
    .unwrap()
    .0
}

async fn runner(db: &Database, name: &str, labels: &[&str]) -> RunnerRecord {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    db.register_runner(name, &labels, 1, &jamstack_controller::secrets::random_hex(32))
        .await
        .unwrap()
}

const MINUTE: i64 = 60_000;

on_both_databases!(
    concurrent_claims_never_hand_out_a_job_twice,
    |db: Database| async move {
        let mut sites = Vec::new();
        for i in 0..5 {
            let s = site(&db, &format!("s{i}")).await;
            db.update_scheduling(
                s.id,
                &SchedulingSettings {
                    max_concurrent_builds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            sites.push(s);
        }
        for i in 0..60 {
            queue(&db, &sites[i % 5], &format!("b{i}")).await;
        }
        let mut claimers = Vec::new();
        for r in 0..10 {
            let db = db.clone();
            let me = runner(&db, &format!("r{r}"), &[]).await;
            claimers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let lease = jamstack_controller::secrets::random_hex(8);
                    match db.claim_next_job(&me, &lease, MINUTE, 0).await.unwrap() {
                        Some(job) => mine.push(job.job_id),
                        None => break,
                    }
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 60, "every job was claimed");
        assert_eq!(unique.len(), 60, "no job was claimed twice");
    }
);

on_both_databases!(
    sixteen_claims_of_one_schedule_tick_at_once_leave_exactly_one_winner,
    |db: Database| async move {
        use jamstack_controller::db::NewBuildSchedule;
        let s = site(&db, "scheduled").await;
        let other = site(&db, "unscheduled").await;
        let tick = 1_800_000_000_000;
        let schedule = db
            .insert_build_schedule(&NewBuildSchedule {
                site_id: s.id,
                cron: "0 6 * * *",
                time_zone: "Europe/Paris",
                branch: None,
                title: Some("Morning"),
                next_run_at: tick,
            })
            .await
            .unwrap();
        assert_eq!(schedule.last_run_at, None);
        assert!(db.due_build_schedules(tick - 1, 10).await.unwrap().is_empty());
        assert_eq!(db.due_build_schedules(tick, 10).await.unwrap().len(), 1);
        assert_eq!(db.earliest_build_schedule_tick().await.unwrap(), Some(tick));

        // Sixteen controllers wake for the same tick at once.
        let claims: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.claim_build_schedule_tick(schedule.id, tick, tick + 86_400_000 + i)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for claim in claims {
            won += usize::from(claim.await.unwrap());
        }
        assert_eq!(won, 1, "one claim of the tick wins");
        let after = db.build_schedule(s.id, schedule.id).await.unwrap().unwrap();
        assert_eq!(after.last_run_at, Some(tick));
        assert!(after.next_run_at > tick);
        assert!(
            !db.claim_build_schedule_tick(schedule.id, tick, tick + 1)
                .await
                .unwrap(),
            "a tick claimed is claimed for good"
        );

        assert!(
            db.delete_build_schedule(other.id, schedule.id)
                .await
                .unwrap()
                .is_none(),
            "not the other site's"
        );
        let removed = db
            .delete_build_schedule(s.id, schedule.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(removed.title.as_deref(), Some("Morning"));
        assert!(db.build_schedules(s.id).await.unwrap().is_empty());
        assert_eq!(db.earliest_build_schedule_tick().await.unwrap(), None);
    }
);

on_both_databases!(
    a_build_hook_is_found_by_its_url_id_kept_only_hashed_and_gone_once_revoked,
    |db: Database| async move {
        use jamstack_controller::api::build_hooks::{NewHook, make_hook};
        use jamstack_controller::auth::hash_token;
        let s = site(&db, "hooked").await;
        let other = site(&db, "other").await;
        let urls = jamstack_controller::urls::Urls {
            base_url: "http://127.0.0.1:8080".into(),
            public_url: "https://ci.example.com".into(),
            domain: "localhost".into(),
        };
        let asked = NewHook {
            name: " cms ".into(),
            trigger_branch: Some("content".into()),
            trigger_title: Some("content changed".into()),
        };
        let made = make_hook(&db, &urls, s.id, &asked).await.unwrap();
        let url_id = made
            .url
            .strip_prefix("https://ci.example.com/hooks/build/")
            .expect("the URL is the controller's public one")
            .to_owned();
        assert_eq!(url_id.len(), 64, "32 random bytes: {url_id}");
        let stored = db.build_hook_url_id_hash(made.hook.id).await.unwrap().unwrap();
        assert_ne!(stored, url_id, "the id is not stored in clear");
        assert!(!stored.contains(&url_id));
        assert_eq!(stored, hash_token(&url_id), "its SHA-256 is");

        let found = db
            .build_hook_by_url_id_hash(&hash_token(&url_id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id, found.site_id), (made.hook.id, s.id));
        assert_eq!(found.name, "cms");
        assert_eq!(found.trigger_branch.as_deref(), Some("content"));
        assert_eq!(found.trigger_title.as_deref(), Some("content changed"));
        assert_eq!(found.last_used_at, None);
        assert!(db.build_hook_by_url_id_hash(&url_id).await.unwrap().is_none());

        db.note_build_hook_used(found.id).await.unwrap();
        let listed = db.build_hooks(s.id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some());
        assert!(db.build_hooks(other.id).await.unwrap().is_empty());

        assert!(
            !db.delete_build_hook(other.id, found.id).await.unwrap(),
            "not the other site's"
        );
        assert!(db.delete_build_hook(s.id, found.id).await.unwrap());
        assert!(db.build_hook_by_url_id_hash(&stored).await.unwrap().is_none());
        assert!(db.build_hooks(s.id).await.unwrap().is_empty());

        // A build keeps the hook's title and the body its caller sent.
        let (id, _) = db
            .enqueue_build(&NewBuild {
                site_id: s.id,
                context: BuildContext::Production,
                branch: "main".into(),
                commit_sha: String::new(),
                commit_message: None,
                author: None,
                pr_number: None,
                from_fork: false,
                commit_unverified: false,
                trigger: "build_hook",
                trigger_title: Some("content changed".into()),
                trigger_payload: Some("{\"entry\": 7}".into()),
            })
            .await
            .unwrap();
        let build = db.build(id).await.unwrap().unwrap();
        assert_eq!(build.trigger, "build_hook");
        assert_eq!(build.trigger_title.as_deref(), Some("content changed"));
        assert_eq!(build.trigger_payload.as_deref(), Some("{\"entry\": 7}"));
    }
);

on_both_databases!(
    concurrent_controllers_never_send_a_notification_twice_and_failed_ones_come_back_when_due,
    |db: Database| async move {
        use jamstack_controller::db::{AttemptResult, NewNotificationHook, NotificationKind};
        let s = site(&db, "notified").await;
        let events = vec!["deploy.locked".to_owned()];
        db.insert_notification_hook(
            s.id,
            NewNotificationHook {
                kind: NotificationKind::Webhook,
                url: "http://127.0.0.1:9/a",
                emails: &[],
                events: &events,
                secret_sealed: "sealed",
            },
        )
        .await
        .unwrap();
        let emails = vec!["ops@example.com".to_owned(), "dev@example.com".to_owned()];
        let mail = db
            .insert_notification_hook(
                s.id,
                NewNotificationHook {
                    kind: NotificationKind::Email,
                    url: "",
                    emails: &emails,
                    events: &events,
                    secret_sealed: "",
                },
            )
            .await
            .unwrap();
        assert_eq!(mail.kind, NotificationKind::Email);
        assert_eq!(mail.emails, emails);
        let counter = std::sync::atomic::AtomicU64::new(0);
        for _ in 0..20 {
            let queued = db
                .queue_notifications(s.id, "deploy.locked", "{}", || {
                    format!("d{}", counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                })
                .await
                .unwrap();
            assert_eq!(queued, 2);
        }
        // Events no hook asked for queue nothing.
        assert_eq!(
            db.queue_notifications(s.id, "deploy.unlocked", "{}", || "x".into())
                .await
                .unwrap(),
            0
        );
        let mut claimers = Vec::new();
        for _ in 0..6 {
            let db = db.clone();
            claimers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = db.claim_due_notifications(3, MINUTE).await.unwrap();
                    if claimed.is_empty() {
                        break mine;
                    }
                    mine.extend(claimed.into_iter().map(|d| d.id));
                }
            }));
        }
        let mut seen = HashSet::new();
        for claimer in claimers {
            for id in claimer.await.unwrap() {
                assert!(seen.insert(id), "delivery {id} was claimed twice");
            }
        }
        assert_eq!(seen.len(), 40);
        assert!(db.claim_due_notifications(10, MINUTE).await.unwrap().is_empty());

        // A failed attempt due again now is claimable at once; a delivered
        // one never again.
        let ids: Vec<i64> = seen.into_iter().collect();
        db.record_notification_attempt(
            ids[0],
            &AttemptResult::Failed {
                status: Some(500),
                error: "boom".into(),
                retry_at: Some(0),
            },
        )
        .await
        .unwrap();
        db.record_notification_attempt(ids[1], &AttemptResult::Delivered { status: 200 })
            .await
            .unwrap();
        let again = db.claim_due_notifications(10, MINUTE).await.unwrap();
        assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), vec![ids[0]]);
        assert_eq!(again[0].attempts, 1);
        // A claimed delivery carries its hook's kind and addresses.
        match again[0].kind {
            Some(NotificationKind::Email) => assert_eq!(again[0].emails, emails),
            Some(NotificationKind::Webhook) => assert_eq!(again[0].url, "http://127.0.0.1:9/a"),
            other => panic!("claimed a delivery of kind {other:?}"),
        }
        // Pruning forgets finished deliveries only.
        assert_eq!(db.prune_notification_deliveries(i64::MAX).await.unwrap(), 1);
        assert_eq!(db.prune_notification_deliveries(i64::MAX).await.unwrap(), 0);
    }
);

on_both_databases!(
    jobs_go_only_to_runners_with_every_label_they_need,
    |db: Database| async move {
        let s = site(&db, "gpu-site").await;
        db.update_scheduling(
            s.id,
            &SchedulingSettings {
                required_labels: Some(vec!["gpu".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        queue(&db, &s, "main").await;
        let plain = runner(&db, "plain", &["linux"]).await;
        let gpu = runner(&db, "gpu", &["linux", "GPU"]).await;
        assert!(
            db.claim_next_job(&plain, "l1", MINUTE, 0)
                .await
                .unwrap()
                .is_none()
        );
        assert!(db.claim_next_job(&gpu, "l2", MINUTE, 0).await.unwrap().is_some());

        // A site without a limit (claimed in one statement on PostgreSQL)
        // that needs two labels.
        let both = site(&db, "two-labels").await;
        db.update_scheduling(
            both.id,
            &SchedulingSettings {
                required_labels: Some(vec!["gpu".into(), "arm".into()]),
                max_concurrent_builds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let job = queue(&db, &both, "main").await;
        let arm = runner(&db, "arm", &["arm"]).await;
        for lacking in [&plain, &gpu, &arm] {
            assert!(
                db.claim_next_job(lacking, "l3", MINUTE, 0)
                    .await
                    .unwrap()
                    .is_none(),
                "{} lacks a label",
                lacking.name
            );
        }
        let all = runner(&db, "all", &["arm", "gpu", "linux"]).await;
        let claimed = db
            .claim_next_job(&all, "l4", MINUTE, 0)
            .await
            .unwrap()
            .expect("a runner with every label claims it");
        assert_eq!(claimed.build_id, job);
        assert_eq!(claimed.attempt, 1);
        assert_eq!(
            db.build(job).await.unwrap().unwrap().state,
            BuildState::Running,
            "the claim starts the build"
        );
        let attempts = db.attempts(job).await.unwrap();
        assert_eq!(attempts.len(), 1, "and records its attempt");
        assert_eq!(attempts[0].runner, "all");
        let finished = db.finish_job(claimed.job_id, "l4", succeeded()).await.unwrap();
        let finished = finished.expect("the live lease finishes its job");
        assert_eq!((finished.build_id, finished.site_id), (job, both.id));
        assert!(
            finished
                .started_at
                .is_some_and(|started| started <= finished.finished_at)
        );
        assert_eq!(db.build(job).await.unwrap().unwrap().state, BuildState::Succeeded);
        assert_eq!(
            db.attempts(job).await.unwrap()[0].outcome.as_deref(),
            Some("succeeded")
        );
    }
);

on_both_databases!(
    a_finished_build_keeps_the_step_timings_its_runner_reported,
    |db: Database| async move {
        let s = site(&db, "timed").await;
        let timed = queue(&db, &s, "main").await;
        let untimed = queue(&db, &s, "other").await;
        let r = runner(&db, "r", &[]).await;
        let steps = vec![
            StepTiming {
                name: "fetch".into(),
                millis: 5,
            },
            StepTiming {
                name: "build".into(),
                millis: 1200,
            },
        ];
        let claimed = db.claim_next_job(&r, "l1", MINUTE, 0).await.unwrap().unwrap();
        assert_eq!(claimed.build_id, timed);
        assert!(
            db.build(timed).await.unwrap().unwrap().step_timings.is_empty(),
            "a running build has no timings yet"
        );
        db.finish_job(
            claimed.job_id,
            "l1",
            FinishedAs {
                step_timings: &steps,
                ..succeeded()
            },
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(db.build(timed).await.unwrap().unwrap().step_timings, steps);

        // A runner one protocol version behind reports none.
        let claimed = db.claim_next_job(&r, "l2", MINUTE, 0).await.unwrap().unwrap();
        assert_eq!(claimed.build_id, untimed);
        db.finish_job(claimed.job_id, "l2", succeeded())
            .await
            .unwrap()
            .unwrap();
        assert!(db.build(untimed).await.unwrap().unwrap().step_timings.is_empty());
    }
);

on_both_databases!(
    a_site_runs_no_more_builds_than_its_limit_and_the_global_limit_holds,
    |db: Database| async move {
        let s = site(&db, "one-at-a-time").await;
        queue(&db, &s, "a").await;
        queue(&db, &s, "b").await;
        let r = runner(&db, "r", &[]).await;
        let first = db
            .claim_next_job(&r, "l1", MINUTE, 0)
            .await
            .unwrap()
            .expect("the first build runs");
        assert!(
            db.claim_next_job(&r, "l2", MINUTE, 0).await.unwrap().is_none(),
            "the site's limit is one"
        );
        assert!(
            db.finish_job(first.job_id, "l1", succeeded())
                .await
                .unwrap()
                .is_some()
        );
        assert!(db.claim_next_job(&r, "l3", MINUTE, 0).await.unwrap().is_some());

        let other = site(&db, "other").await;
        queue(&db, &other, "main").await;
        assert!(
            db.claim_next_job(&r, "l4", MINUTE, 1).await.unwrap().is_none(),
            "one job runs already"
        );
    }
);

on_both_databases!(
    runners_asking_at_once_get_the_jobs_they_would_get_one_after_another,
    |db: Database| async move {
        // Oldest first: two builds of a site that runs one at a time, one
        // that needs a GPU, two of a site without a limit.
        let one = site(&db, "one-at-a-time").await;
        let one_first = queue(&db, &one, "a").await;
        queue(&db, &one, "b").await;
        let gpu_site = site(&db, "needs-gpu").await;
        let free = site(&db, "no-limit").await;
        for (s, labels) in [(&gpu_site, vec!["gpu".to_owned()]), (&free, vec![])] {
            db.update_scheduling(
                s.id,
                &SchedulingSettings {
                    required_labels: Some(labels),
                    max_concurrent_builds: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        let gpu_build = queue(&db, &gpu_site, "main").await;
        let free_first = queue(&db, &free, "a").await;
        let free_second = queue(&db, &free, "b").await;
        let runners = [
            runner(&db, "plain-1", &[]).await,
            runner(&db, "plain-2", &[]).await,
            runner(&db, "gpu", &["gpu"]).await,
            runner(&db, "plain-3", &[]).await,
            runner(&db, "plain-4", &[]).await,
        ];
        let leases = ["l1", "l2", "l3", "l4", "l5"];
        let claims: Vec<JobClaim<'_>> = runners
            .iter()
            .zip(leases)
            .map(|(runner, lease_id)| JobClaim { runner, lease_id })
            .collect();
        // At most four at once.
        let leased = db.claim_next_jobs(&claims, MINUTE, 4).await.unwrap();
        let builds: Vec<Option<i64>> = leased
            .iter()
            .map(|job| job.as_ref().map(|j| j.build_id))
            .collect();
        assert_eq!(
            builds,
            [
                Some(one_first),
                Some(free_first),
                Some(gpu_build),
                Some(free_second),
                None
            ],
            "the site's second build waits for its first; the GPU job waits for the GPU runner; \
             the fifth runner finds the global limit reached"
        );
        for (job, (runner, lease)) in leased.iter().flatten().zip(runners.iter().zip(leases)) {
            assert_eq!(job.lease_id, lease);
            assert_eq!(job.attempt, 1);
            let attempts = db.attempts(job.build_id).await.unwrap();
            assert_eq!(attempts.len(), 1, "each claim records its attempt");
            assert_eq!(attempts[0].runner, runner.name);
            assert_eq!(
                db.build(job.build_id).await.unwrap().unwrap().state,
                BuildState::Running
            );
        }

        let [Some(first), Some(second), Some(third), ..] = &leased[..] else {
            unreachable!("checked above")
        };
        let failed = FinishedAs {
            state: BuildState::Failed,
            exit_code: Some(2),
            error: Some("exit status 2"),
            deploy_id: None,
            step_timings: &[],
        };
        let finishes = [
            JobFinish {
                job_id: first.job_id,
                lease_id: "l1",
                how: succeeded(),
            },
            JobFinish {
                job_id: second.job_id,
                lease_id: "not-its-lease",
                how: succeeded(),
            },
            JobFinish {
                job_id: first.job_id,
                lease_id: "l1",
                how: succeeded(),
            },
            JobFinish {
                job_id: third.job_id,
                lease_id: "l3",
                how: failed,
            },
        ];
        let finished = db.finish_jobs(&finishes).await.unwrap();
        let ended: Vec<Option<i64>> = finished.iter().map(|f| f.map(|f| f.build_id)).collect();
        assert_eq!(
            ended,
            [Some(one_first), None, None, Some(gpu_build)],
            "a wrong lease changes nothing, and a job finished twice is finished once"
        );
        let first_build = db.build(one_first).await.unwrap().unwrap();
        assert_eq!(first_build.state, BuildState::Succeeded);
        assert_eq!(first_build.exit_code, Some(0));
        let gpu = db.build(gpu_build).await.unwrap().unwrap();
        assert_eq!(gpu.state, BuildState::Failed);
        assert_eq!(gpu.exit_code, Some(2));
        assert_eq!(gpu.error.as_deref(), Some("exit status 2"));
        assert_eq!(
            db.attempts(gpu_build).await.unwrap()[0].outcome.as_deref(),
            Some("failed")
        );
        assert_eq!(
            db.build(free_first).await.unwrap().unwrap().state,
            BuildState::Running,
            "the job finished under a wrong lease runs on"
        );
        assert!(
            db.claim_next_job(&runners[4], "l6", MINUTE, 4)
                .await
                .unwrap()
                .is_some(),
            "a finished job leaves room under the global limit"
        );
    }
);

on_both_databases!(
    a_newer_push_supersedes_queued_builds_of_its_branch,
    |db: Database| async move {
        let s = site(&db, "busy").await;
        let first = queue(&db, &s, "main").await;
        let r = runner(&db, "r", &[]).await;
        db.update_scheduling(
            s.id,
            &SchedulingSettings {
                max_concurrent_builds: Some(0),
                cancel_superseded: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let running = db.claim_next_job(&r, "l1", MINUTE, 0).await.unwrap().unwrap();
        assert_eq!(running.build_id, first);
        let second = queue(&db, &s, "main").await;
        let other_branch = queue(&db, &s, "docs").await;
        let third = queue(&db, &s, "main").await;
        let build = |id| {
            let db = db.clone();
            async move { db.build(id).await.unwrap().unwrap() }
        };
        assert_eq!(build(second).await.state, BuildState::Cancelled);
        assert!(
            build(second)
                .await
                .error
                .unwrap()
                .contains(&format!("superseded by build {third}"))
        );
        assert_eq!(
            build(other_branch).await.state,
            BuildState::Queued,
            "other branches are left alone"
        );
        assert_eq!(build(third).await.state, BuildState::Queued);
        assert_eq!(
            db.extend_lease(running.job_id, "l1", MINUTE).await.unwrap(),
            Some(true),
            "the running build is told to stop"
        );
    }
);

on_both_databases!(
    only_builds_of_sites_with_a_way_to_github_are_owed_reports,
    |db: Database| async move {
        let unreachable = site(&db, "no-credentials").await;
        let with_token = db
            .insert_site(&NewSite {
                name: "with-token".into(),
                repo_url: Some("/repos/with-token".into()),
                github_repo: Some("octo/with-token".into()),
                production_branch: "main".into(),
                production_branch_follows_default: false,
                settings: SiteSettings {
                    github_token_sealed: Some("sealed".into()),
                    ..Default::default()
                },
            })
            .await
            .unwrap()
            .unwrap();
        let installed = site(&db, "Installed").await;
        db.upsert_installation(41, "octo").await.unwrap();
        db.note_installation_repo(41, "octo/installed").await.unwrap();

        let never = queue(&db, &unreachable, "main").await;
        let by_token = queue(&db, &with_token, "main").await;
        let by_app = queue(&db, &installed, "main").await;
        let owed = |app: bool| {
            let db = db.clone();
            async move { db.builds_behind_on_reports(0, app).await.unwrap() }
        };
        assert_eq!(
            owed(true).await,
            [(by_token, with_token.id), (by_app, installed.id)],
            "a site without a token or an installation is never owed a report (build {never})"
        );
        assert_eq!(
            owed(false).await,
            [(by_token, with_token.id)],
            "without an App configured, an installation reaches nothing"
        );
        // Reported: no longer owed.
        db.save_build_report(&BuildReport {
            build_id: by_token,
            build_state: Some("queued".into()),
            ..BuildReport::default()
        })
        .await
        .unwrap();
        assert_eq!(owed(true).await, [(by_app, installed.id)]);
        // A suspended installation reaches nothing.
        db.set_installation_suspended(41, true).await.unwrap();
        assert_eq!(owed(true).await, []);
    }
);

on_both_databases!(
    attempts_handed_back_by_runners_shutting_down_do_not_count_toward_the_attempt_limit,
    |db: Database| async move {
        let s = site(&db, "upgraded").await;
        let build_id = queue(&db, &s, "main").await;
        let r = runner(&db, "restarting", &[]).await;
        // Two runner restarts: each hands the build back.
        for lease in ["l1", "l2"] {
            let job = db.claim_next_job(&r, lease, MINUTE, 0).await.unwrap().unwrap();
            assert!(db.hand_back_job(job.job_id, lease).await.unwrap().is_some());
        }
        // The third attempt loses its runner: the first loss of two allowed.
        db.claim_next_job(&r, "l3", -1, 0).await.unwrap().unwrap();
        assert_eq!(db.reap_expired_leases(2, 0).await.unwrap(), (1, vec![]));
        let fourth = db.claim_next_job(&r, "l4", -1, 0).await.unwrap().unwrap();
        assert_eq!(fourth.attempt, 4);
        // The second loss is the last allowed.
        assert_eq!(db.reap_expired_leases(2, 0).await.unwrap(), (0, vec![build_id]));
        let build = db.build(build_id).await.unwrap().unwrap();
        assert_eq!(build.state, BuildState::Failed);
        assert!(build.error.unwrap().contains("stopped answering 2 times"));
        let outcomes: Vec<_> = db
            .attempts(build_id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.outcome.unwrap())
            .collect();
        assert_eq!(outcomes, ["handed-back", "handed-back", "lost", "lost"]);
    }
);

on_both_databases!(
    an_expired_lease_is_requeued_with_its_log_kept_and_marked_then_fails_after_the_last_attempt,
    |db: Database| async move {
        let s = site(&db, "flaky").await;
        let build_id = queue(&db, &s, "main").await;
        let r = runner(&db, "vanishing", &[]).await;
        let first = db.claim_next_job(&r, "l1", -1, 0).await.unwrap().unwrap();
        assert_eq!(
            db.append_log(build_id, 1, 0, b"first attempt output\n")
                .await
                .unwrap(),
            21
        );
        assert_eq!(db.reap_expired_leases(2, 0).await.unwrap(), (1, vec![]));
        assert_eq!(
            db.build(build_id).await.unwrap().unwrap().state,
            BuildState::Queued
        );
        let log = String::from_utf8(db.read_log(build_id, 1, 0).await.unwrap()).unwrap();
        assert!(log.starts_with("first attempt output\n"), "{log}");
        assert!(
            log.contains("Attempt 1 lost its runner `vanishing`") && log.contains("attempt 2"),
            "{log}"
        );
        assert!(
            db.finish_job(first.job_id, "l1", succeeded())
                .await
                .unwrap()
                .is_none(),
            "the stale lease is refused"
        );

        let second = db.claim_next_job(&r, "l2", -1, 0).await.unwrap().unwrap();
        assert_eq!(second.attempt, 2);
        assert_eq!(db.reap_expired_leases(2, 0).await.unwrap(), (0, vec![build_id]));
        let build = db.build(build_id).await.unwrap().unwrap();
        assert_eq!(build.state, BuildState::Failed);
        assert!(build.error.unwrap().contains("stopped answering 2 times"));
        let attempts = db.attempts(build_id).await.unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|a| a.outcome.clone().unwrap())
                .collect::<Vec<_>>(),
            ["lost", "lost"]
        );
    }
);

on_both_databases!(
    runners_finishing_as_their_leases_run_out_keep_their_results_while_the_reaper_runs,
    |db: Database| async move {
        let r = runner(&db, "late", &[]).await;
        let mut leased = Vec::new();
        for i in 0..40 {
            let s = site(&db, &format!("racing{i}")).await;
            let build_id = queue(&db, &s, "main").await;
            let lease = format!("l{i}");
            // Already expired: the reaper may take it back at any moment.
            let job = db.claim_next_job(&r, &lease, -1, 0).await.unwrap().unwrap();
            leased.push((build_id, job.job_id, lease));
        }
        let reaper = {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    db.reap_expired_leases(5, 0).await.expect("reaping never fails");
                }
            })
        };
        let finishes: Vec<_> = leased
            .iter()
            .map(|(_, job_id, lease)| {
                let (db, job_id, lease) = (db.clone(), *job_id, lease.clone());
                tokio::spawn(async move {
                    db.finish_job(job_id, &lease, succeeded())
                        .await
                        .expect("finishing never fails")
                        .is_some()
                })
            })
            .collect();
        reaper.await.unwrap();
        for ((build_id, _, lease), finish) in leased.iter().zip(finishes) {
            let finished = finish.await.unwrap();
            let build = db.build(*build_id).await.unwrap().unwrap();
            // Either the runner's result stands or the build went back to
            // the queue, never both: a success is not run again.
            let expected = if finished {
                BuildState::Succeeded
            } else {
                BuildState::Queued
            };
            assert_eq!(
                build.state, expected,
                "build {build_id} (lease {lease}) finished: {finished}"
            );
        }
    }
);

on_both_databases!(
    a_build_past_the_hard_timeout_fails_and_loses_its_lease,
    |db: Database| async move {
        let s = site(&db, "slow").await;
        let build_id = queue(&db, &s, "main").await;
        let r = runner(&db, "r", &[]).await;
        let job = db.claim_next_job(&r, "l1", MINUTE, 0).await.unwrap().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(db.reap_expired_leases(3, 10).await.unwrap(), (0, vec![build_id]));
        let build = db.build(build_id).await.unwrap().unwrap();
        assert_eq!(build.state, BuildState::Failed);
        assert!(build.error.unwrap().contains("ran longer than"));
        assert_eq!(
            db.extend_lease(job.job_id, "l1", MINUTE).await.unwrap(),
            None,
            "the runner learns to stop"
        );
    }
);

on_both_databases!(
    log_appends_at_a_wrong_offset_neither_lose_nor_duplicate,
    |db: Database| async move {
        let s = site(&db, "logs").await;
        let build_id = queue(&db, &s, "main").await;
        assert_eq!(db.append_log(build_id, 1, 0, b"hello ").await.unwrap(), 6);
        assert_eq!(
            db.append_log(build_id, 1, 0, b"hello ").await.unwrap(),
            6,
            "a retried batch is not written twice"
        );
        assert_eq!(
            db.append_log(build_id, 1, 9, b"gap").await.unwrap(),
            6,
            "a batch past the end learns the length"
        );
        assert_eq!(db.append_log(build_id, 1, 6, b"world").await.unwrap(), 11);
        assert_eq!(db.read_log(build_id, 1, 0).await.unwrap(), b"hello world");
        assert_eq!(db.read_log(build_id, 1, 3).await.unwrap(), b"lo world");
        assert_eq!(
            db.read_log(build_id, 2, 0).await.unwrap(),
            b"",
            "each attempt has its own log"
        );
    }
);

on_both_databases!(
    a_hand_picked_commit_no_runner_found_on_its_branch_is_never_published,
    |db: Database| async move {
        let r = runner(&db, "r", &[]).await;
        let hash = "c".repeat(64);
        db.record_blob(&hash, 3).await.unwrap();
        let files = vec![ManifestFile {
            path: "index.html".into(),
            sha256: hash.clone(),
            size: 3,
            mode: 0o644,
        }];
        for (verified, deploy_id) in [
            (false, "f1f1f1f1f1f1f1f1f1f1f1f1"),
            (true, "f2f2f2f2f2f2f2f2f2f2f2f2"),
        ] {
            let s = site(&db, &format!("picked-{verified}")).await;
            let (build_id, _) = db
                .enqueue_build(&NewBuild {
                    site_id: s.id,
                    context: BuildContext::Production,
                    branch: "main".into(),
                    commit_sha: "d".repeat(40),
                    commit_message: None,
                    author: None,
                    pr_number: None,
                    from_fork: false,
                    commit_unverified: true,
                    trigger: "api",
                    trigger_title: None,
                    trigger_payload: None,
                })
                .await
                .unwrap();
            let lease = format!("lease-{verified}");
            let job = db.claim_next_job(&r, &lease, MINUTE, 0).await.unwrap().unwrap();
            assert!(db.build(build_id).await.unwrap().unwrap().commit_unverified);
            if verified {
                db.mark_commit_verified(build_id).await.unwrap();
            }
            let build = db.build(build_id).await.unwrap().unwrap();
            assert_eq!(build.commit_unverified, !verified);
            let deploy = db
                .upsert_build_deploy(deploy_id, &build, NewFileList::Full(&files))
                .await
                .unwrap();
            assert_eq!(
                db.finalize_deploy(&deploy.id, job.job_id, &lease, None)
                    .await
                    .unwrap(),
                FinalizeOutcome::Ready { published: verified },
                "verified: {verified}"
            );
            let published = db.site_by_id(s.id).await.unwrap().unwrap().published_deploy_id;
            assert_eq!(published.is_some(), verified);
        }
    }
);

on_both_databases!(
    finalize_is_fenced_by_the_lease_and_publishes_exactly_once,
    |db: Database| async move {
        let s = site(&db, "pub").await;
        let build_id = queue(&db, &s, "main").await;
        let r = runner(&db, "r", &[]).await;
        let job = db.claim_next_job(&r, "lease", MINUTE, 0).await.unwrap().unwrap();
        let build = db.build(build_id).await.unwrap().unwrap();
        let hash = "b".repeat(64);
        let files = vec![ManifestFile {
            path: "index.html".into(),
            sha256: hash.clone(),
            size: 3,
            mode: 0o644,
        }];
        let deploy = db
            .upsert_build_deploy("d1d1d1d1d1d1d1d1d1d1d1d1", &build, NewFileList::Full(&files))
            .await
            .unwrap();
        assert_eq!(
            db.finalize_deploy(&deploy.id, job.job_id, "lease", None)
                .await
                .unwrap(),
            FinalizeOutcome::MissingBlobs(1)
        );
        db.record_blob(&hash, 3).await.unwrap();
        assert_eq!(
            db.finalize_deploy(&deploy.id, job.job_id, "stale", None)
                .await
                .unwrap(),
            FinalizeOutcome::StaleLease
        );
        assert_eq!(
            db.finalize_deploy(&deploy.id, job.job_id, "lease", None)
                .await
                .unwrap(),
            FinalizeOutcome::Ready { published: true }
        );
        assert_eq!(
            db.finalize_deploy(&deploy.id, job.job_id, "lease", None)
                .await
                .unwrap(),
            FinalizeOutcome::Ready { published: true }
        );
        let again = db
            .upsert_build_deploy("e2e2e2e2e2e2e2e2e2e2e2e2", &build, NewFileList::Full(&files))
            .await
            .unwrap();
        assert_eq!(
            again.id, deploy.id,
            "a retried manifest finds the build's one deploy"
        );
        assert_eq!(
            db.site_by_id(s.id)
                .await
                .unwrap()
                .unwrap()
                .published_deploy_id
                .as_deref(),
            Some(deploy.id.as_str())
        );
    }
);

on_both_databases!(
    a_long_queue_of_one_busy_site_does_not_hide_other_sites_jobs,
    |db: Database| async move {
        let busy = site(&db, "busy").await;
        for i in 0..80 {
            queue(&db, &busy, &format!("b{i}")).await;
        }
        let quiet = site(&db, "quiet").await;
        let quiet_build = queue(&db, &quiet, "main").await;
        let r = runner(&db, "r", &[]).await;
        let first = db.claim_next_job(&r, "l1", MINUTE, 0).await.unwrap().unwrap();
        assert_ne!(first.build_id, quiet_build);
        let second = db
            .claim_next_job(&r, "l2", MINUTE, 0)
            .await
            .unwrap()
            .expect("the quiet site's job");
        assert_eq!(second.build_id, quiet_build);
    }
);

#[test]
fn every_migration_exists_for_both_databases() {
    let names = |backend: &str| -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "write the PostgreSQL twin with scripts/pg-migration.py"
    );
}
on_both_databases!(
    dashboard_sessions_expire_and_end_at_sign_out,
    |db: Database| async move {
        use jamstack_controller::db::now_millis;
        db.insert_session("live-hash", now_millis() + 60_000)
            .await
            .unwrap();
        db.insert_session("old-hash", now_millis() - 1).await.unwrap();
        assert!(db.session_is_live("live-hash").await.unwrap());
        assert!(!db.session_is_live("old-hash").await.unwrap(), "expired");
        assert!(!db.session_is_live("unknown").await.unwrap());
        db.delete_session("live-hash").await.unwrap();
        assert!(!db.session_is_live("live-hash").await.unwrap(), "signed out");
    }
);

on_both_databases!(
    api_tokens_are_listed_without_their_secret_and_revoked_one_by_one,
    |db: Database| async move {
        use jamstack_controller::db::TokenKind;
        db.insert_token(TokenKind::Api, "ci", "hash-ci").await.unwrap();
        db.insert_token(TokenKind::Api, "deploy-bot", "hash-bot")
            .await
            .unwrap();
        let tokens = db.live_tokens(TokenKind::Api).await.unwrap();
        let names: Vec<_> = tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["deploy-bot", "ci"]);
        assert!(db.revoke_token(TokenKind::Api, tokens[1].id).await.unwrap());
        assert!(
            !db.revoke_token(TokenKind::Api, tokens[1].id).await.unwrap(),
            "already revoked"
        );
        assert_eq!(db.token_name(TokenKind::Api, "hash-ci").await.unwrap(), None);
        assert_eq!(
            db.token_name(TokenKind::Api, "hash-bot")
                .await
                .unwrap()
                .as_deref(),
            Some("deploy-bot")
        );
        assert!(
            !db.revoke_token(TokenKind::Admin, tokens[0].id).await.unwrap(),
            "an API token's id does not revoke other kinds"
        );
    }
);

on_both_databases!(
    blobs_swept_while_deploys_upload_are_never_missing_from_a_ready_deploy,
    |db: Database| async move {
        use jamstack_controller::db::now_millis;
        use jamstack_controller::secrets::random_hex;
        // Each round leaves many unreferenced blobs for a sweep (so its
        // statement runs a while) and, at the same time, uploads a deploy
        // naming some of them again, as a new build of old content does.
        const ROUNDS: usize = 15;
        const UNREFERENCED: usize = 800;
        const NAMED: usize = 40;
        let mut ready = Vec::new();
        for round in 0..ROUNDS {
            let old: Vec<String> = (0..UNREFERENCED).map(|_| random_hex(32)).collect();
            for batch in old.chunks(50) {
                futures_util::future::try_join_all(batch.iter().map(|hash| db.record_blob(hash, 1)))
                    .await
                    .unwrap();
            }
            let s = site(&db, &format!("gc{round}")).await;
            let build_id = queue(&db, &s, "main").await;
            let r = runner(&db, &format!("r{round}"), &[]).await;
            let job = db.claim_next_job(&r, "lease", MINUTE, 0).await.unwrap().unwrap();
            let build = db.build(build_id).await.unwrap().unwrap();
            let files: Vec<ManifestFile> = old
                .iter()
                .step_by(UNREFERENCED / NAMED)
                .enumerate()
                .map(|(i, hash)| ManifestFile {
                    path: format!("f{i}.txt"),
                    sha256: hash.clone(),
                    size: 1,
                    mode: 0o644,
                })
                .collect();
            let sweeper = {
                let db = db.clone();
                tokio::spawn(async move {
                    while !db
                        .sweep_unreferenced_blobs(now_millis() + MINUTE, 500)
                        .await
                        .unwrap()
                        .is_empty()
                    {}
                })
            };
            // Start the upload at a different moment of the sweep each round.
            tokio::time::sleep(std::time::Duration::from_micros(400 * (round % 10) as u64)).await;
            let deploy_id = format!("{:0>24}", format!("{round:x}"));
            let deploy = db
                .upsert_build_deploy(&deploy_id, &build, NewFileList::Full(&files))
                .await
                .unwrap();
            let hashes: Vec<String> = files.iter().map(|f| f.sha256.clone()).collect();
            // The uploader sends what the controller says it lacks, then
            // finalizes; a blob swept in between is asked for again.
            loop {
                for hash in db.missing_blobs(&hashes).await.unwrap() {
                    db.record_blob(&hash, 1).await.unwrap();
                }
                match db
                    .finalize_deploy(&deploy.id, job.job_id, "lease", None)
                    .await
                    .unwrap()
                {
                    FinalizeOutcome::Ready { .. } => break,
                    FinalizeOutcome::MissingBlobs(_) => continue,
                    other => panic!("finalize answered {other:?}"),
                }
            }
            sweeper.await.unwrap();
            ready.push((deploy.id, hashes));
            for (id, hashes) in &ready {
                assert_eq!(
                    db.missing_blobs(hashes).await.unwrap(),
                    Vec::<String>::new(),
                    "round {round}: ready deploy {id} names blobs the sweep removed"
                );
            }
        }
    }
);

on_both_databases!(
    a_burst_of_push_deliveries_recorded_together_queues_and_supersedes_as_one_at_a_time_would,
    |db: Database| async move {
        use jamstack_controller::db::{
            BatchedBuild, Claim, DeliveryRecord, NewDelivery, PushDelivery, PushRecorded,
        };
        use std::sync::Arc;
        let s = site(&db, "batched").await;
        db.update_scheduling(
            s.id,
            &SchedulingSettings {
                max_concurrent_builds: Some(0),
                cancel_superseded: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Before the burst: a build of `main` running, another queued.
        let running = queue(&db, &s, "main").await;
        let first_runner = runner(&db, "r1", &[]).await;
        let lease = db
            .claim_next_job(&first_runner, "lease-1", MINUTE, 0)
            .await
            .unwrap()
            .expect("the running build's job");
        assert_eq!(lease.build_id, running);
        let queued_before = queue(&db, &s, "main").await;
        // A delivery handled before, and one whose handling failed.
        let delivery = |id: &str| NewDelivery {
            source: "github",
            delivery_id: Some(id.to_owned()),
            event: "push".into(),
            action: None,
            repository: Some("octo/batched".into()),
            body_sha256: None,
        };
        for (id, outcome) in [("seen", "queued"), ("failed-once", "failed")] {
            let Claim::New(row) = db.claim_delivery(&delivery(id)).await.unwrap() else {
                panic!("{id} is new");
            };
            db.finish_delivery(row, outcome, "earlier", &[]).await.unwrap();
        }

        let push = |id: &str, branch: &str, skip: bool| PushDelivery {
            delivery: delivery(id),
            installation: Some((42, "octo/batched".to_owned())),
            builds: vec![BatchedBuild {
                build: NewBuild {
                    site_id: s.id,
                    context: BuildContext::Production,
                    branch: branch.into(),
                    commit_sha: format!("{id:0>40}"),
                    commit_message: None,
                    author: None,
                    pr_number: None,
                    from_fork: false,
                    commit_unverified: false,
                    trigger: "webhook",
                    trigger_title: None,
                    trigger_payload: None,
                },
                skip_reason: skip.then(|| "the head commit's message says [skip ci]".to_owned()),
                revives_alias: None,
            }],
            describe: Arc::new(|ids: &[i64]| DeliveryRecord {
                outcome: "queued",
                message: format!("builds {ids:?}"),
            }),
        };
        let batch = [
            push("d1", "main", false),
            push("seen", "main", false),
            push("d2", "main", false),
            push("d3", "main", true),
            push("failed-once", "feature", false),
        ];
        let recorded = db.record_push_deliveries(&batch).await.unwrap();
        assert_eq!(
            recorded.deliveries[1],
            PushRecorded::Claimed,
            "a delivery id handled before is not handled again"
        );
        let build_of = |i: usize| match &recorded.deliveries[i] {
            PushRecorded::Recorded { builds, record, .. } => {
                assert_eq!(
                    record.message,
                    format!("builds {builds:?}"),
                    "the record names its builds"
                );
                builds[0]
            }
            PushRecorded::Claimed => panic!("delivery {i} was not recorded"),
        };
        let (d1, d2, d3, retried) = (build_of(0), build_of(2), build_of(3), build_of(4));
        assert!(
            queued_before < d1 && d1 < d2 && d2 < d3 && d3 < retried,
            "ids follow the order of arrival: {queued_before} {d1} {d2} {d3} {retried}"
        );

        let build = |id: i64| {
            let db = db.clone();
            async move { db.build(id).await.unwrap().unwrap() }
        };
        for (old, newer) in [(queued_before, d2), (d1, d2)] {
            let old = build(old).await;
            assert_eq!(old.state, BuildState::Cancelled, "build {} is superseded", old.id);
            assert_eq!(
                old.error.as_deref(),
                Some(format!("superseded by build {newer}, a newer commit of the same branch").as_str())
            );
        }
        assert_eq!(build(d2).await.state, BuildState::Queued);
        let skipped = build(d3).await;
        assert_eq!(
            skipped.state,
            BuildState::Skipped,
            "a skipped build supersedes nothing"
        );
        assert!(skipped.skip_reason.unwrap().contains("[skip ci]"));
        assert_eq!(build(retried).await.state, BuildState::Queued);
        assert_eq!(
            db.cancel_requested(lease.job_id, "lease-1").await.unwrap(),
            Some(true),
            "the running build of the branch is asked to stop (the site says so)"
        );
        let mut superseded: Vec<(i64, bool)> = recorded
            .superseded
            .iter()
            .map(|s| (s.build_id, s.cancelled))
            .collect();
        superseded.sort_unstable();
        assert_eq!(superseded, [(running, false), (queued_before, true), (d1, true)]);

        let deliveries = db.deliveries(20, None).await.unwrap();
        let record_of = |id: &str| {
            deliveries
                .iter()
                .find(|d| d.delivery_id.as_deref() == Some(id))
                .unwrap_or_else(|| panic!("delivery {id} is recorded"))
                .clone()
        };
        let second = record_of("d2");
        assert_eq!(
            (second.outcome.as_str(), second.builds.clone()),
            ("queued", vec![d2])
        );
        assert!(second.handled_at.is_some());
        assert_eq!(
            record_of("failed-once").builds,
            [retried],
            "a failed delivery is retried"
        );
        assert_eq!(
            record_of("seen").message,
            "earlier",
            "a handled delivery keeps its record"
        );

        assert_eq!(
            db.installation_for_repo("octo/batched").await.unwrap(),
            Some(42),
            "the installation a delivery came through is noted"
        );

        // Again: every id is known now.
        let again = db.record_push_deliveries(&batch[2..3]).await.unwrap();
        assert_eq!(again.deliveries, [PushRecorded::Claimed]);

        // Runners lease the new builds oldest first.
        let mut leased = Vec::new();
        for name in ["r2", "r3"] {
            let me = runner(&db, name, &[]).await;
            let job = db.claim_next_job(&me, name, MINUTE, 0).await.unwrap().unwrap();
            leased.push(job.build_id);
        }
        assert_eq!(leased, [d2, retried]);
    }
);

on_both_databases!(
    a_delivery_body_claimed_before_under_another_id_is_a_replay_one_at_a_time_and_in_a_batch,
    |db: Database| async move {
        use jamstack_controller::db::{
            BatchedBuild, BranchHistory, BranchPushed, Claim, DeliveryRecord, NewDelivery, PushDelivery,
            PushRecorded,
        };
        use std::sync::Arc;
        let s = site(&db, "replays").await;
        let delivery = |id: &str, body: &str| NewDelivery {
            source: "github",
            delivery_id: Some(id.to_owned()),
            event: "push".into(),
            action: None,
            repository: Some("octo/replays".into()),
            body_sha256: Some(format!("{body:0>64}")),
        };
        let Claim::New(first) = db.claim_delivery(&delivery("d1", "b1")).await.unwrap() else {
            panic!("d1 is new");
        };
        db.finish_delivery(first, "queued", "built", &[]).await.unwrap();
        match db.claim_delivery(&delivery("d1-again", "b1")).await.unwrap() {
            Claim::SameBody(earlier) => assert_eq!(earlier.id, first),
            other => panic!("a replayed body was claimed: {other:?}"),
        }
        // A redelivery (same id, same body) is a duplicate by id, as ever.
        assert!(matches!(
            db.claim_delivery(&delivery("d1", "b1")).await.unwrap(),
            Claim::Duplicate(_)
        ));
        // One that failed is claimed again by its own id and body.
        let Claim::New(failed) = db.claim_delivery(&delivery("d2", "b2")).await.unwrap() else {
            panic!("d2 is new");
        };
        db.finish_delivery(failed, "failed", "internal", &[])
            .await
            .unwrap();
        assert!(matches!(
            db.claim_delivery(&delivery("d2", "b2")).await.unwrap(),
            Claim::New(_)
        ));

        let push = |id: &str, body: &str, sha: &str| PushDelivery {
            delivery: delivery(id, body),
            installation: None,
            builds: vec![BatchedBuild {
                build: NewBuild {
                    site_id: s.id,
                    context: BuildContext::Production,
                    branch: "main".into(),
                    commit_sha: format!("{sha:0>40}"),
                    commit_message: None,
                    author: None,
                    pr_number: None,
                    from_fork: false,
                    commit_unverified: false,
                    trigger: "webhook",
                    trigger_title: None,
                    trigger_payload: None,
                },
                skip_reason: None,
                revives_alias: None,
            }],
            describe: Arc::new(|_: &[i64]| DeliveryRecord {
                outcome: "queued",
                message: String::new(),
            }),
        };
        let batch = [
            push("d3", "b3", "a3"),
            push("d1-replayed", "b1", "a1"),
            push("d3-replayed-in-the-batch", "b3", "a3"),
            push("d4", "b4", "a4"),
        ];
        let recorded = db.record_push_deliveries(&batch).await.unwrap();
        assert!(matches!(recorded.deliveries[0], PushRecorded::Recorded { .. }));
        assert_eq!(
            recorded.deliveries[1],
            PushRecorded::Claimed,
            "a body claimed before"
        );
        assert_eq!(
            recorded.deliveries[2],
            PushRecorded::Claimed,
            "a body claimed earlier in the batch"
        );
        assert!(matches!(recorded.deliveries[3], PushRecorded::Recorded { .. }));

        // What the branch built: its newest build, and the newest of a commit.
        let PushRecorded::Recorded { builds: a3, .. } = &recorded.deliveries[0] else {
            unreachable!()
        };
        let PushRecorded::Recorded { builds: a4, .. } = &recorded.deliveries[3] else {
            unreachable!()
        };
        let a3_sha = format!("{:0>40}", "a3");
        let asked = [
            BranchPushed {
                site_id: s.id,
                branch: "main",
                commit: &a3_sha,
            },
            BranchPushed {
                site_id: s.id,
                branch: "other",
                commit: &a3_sha,
            },
            BranchPushed {
                site_id: s.id + 1000,
                branch: "main",
                commit: &a3_sha,
            },
            BranchPushed {
                site_id: s.id,
                branch: "main",
                commit: "0",
            },
        ];
        assert_eq!(
            db.branch_histories(&asked).await.unwrap(),
            [
                BranchHistory {
                    last: Some((a4[0], format!("{:0>40}", "a4"))),
                    commit_built: Some(a3[0]),
                },
                BranchHistory::default(),
                BranchHistory::default(),
                BranchHistory {
                    last: Some((a4[0], format!("{:0>40}", "a4"))),
                    commit_built: None,
                },
            ],
            "one read answers every branch asked, in order"
        );
    }
);

/// A file of `content` at `path`, its hash made from the content.
fn manifest_file(path: &str, content: &str) -> ManifestFile {
    use sha2::Digest;
    ManifestFile {
        path: path.into(),
        sha256: hex::encode(sha2::Sha256::digest(content.as_bytes())),
        size: content.len() as u64,
        mode: 0o644,
    }
}

/// `count` files `f<i>.html`, each with its own content.
fn site_files(count: usize) -> Vec<ManifestFile> {
    (0..count)
        .map(|i| manifest_file(&format!("f{i}.html"), &format!("page {i}")))
        .collect()
}

/// Deploys `files` directly (no build) as `id` and makes it ready.
async fn ready_deploy(db: &Database, site: &Site, id: &str, files: &[ManifestFile]) {
    db.insert_direct_deploy(id, site.id, "main", None, NewFileList::Full(files))
        .await
        .unwrap();
    for file in files {
        db.record_blob(&file.sha256, file.size as i64).await.unwrap();
    }
    assert_eq!(
        db.finalize_direct_deploy(id, false).await.unwrap(),
        FinalizeOutcome::Ready { published: false }
    );
}

/// What every reader says deploy `id` holds, by path: the list, the edge's
/// index, and one-path lookups, which must all agree.
async fn files_read_back(db: &Database, id: &str) -> Vec<(String, String, i64)> {
    let listed: Vec<(String, String, i64)> = db
        .deploy_files(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(path, f)| (path, f.sha256, f.size))
        .collect();
    let mut indexed: Vec<(String, String, i64)> = db
        .ready_deploy_contents(id)
        .await
        .unwrap()
        .expect("a ready deploy")
        .files
        .into_iter()
        .map(|f| (f.path, f.sha256, f.size))
        .collect();
    indexed.sort();
    assert_eq!(listed, indexed, "the edge's index of {id} differs from its list");
    for (path, sha256, size) in &listed {
        let one = db.deploy_file(id, path).await.unwrap().expect("a listed path");
        assert_eq!((&one.sha256, one.size), (sha256, *size), "{id}: {path}");
        assert!(db.deploy_file_key(id, path).await.unwrap().is_some());
    }
    assert_eq!(db.count_missing_blobs(id).await.unwrap(), 0);
    listed
}

fn expected(files: &[ManifestFile]) -> Vec<(String, String, i64)> {
    let mut list: Vec<(String, String, i64)> = files
        .iter()
        .map(|f| (f.path.clone(), f.sha256.clone(), f.size as i64))
        .collect();
    list.sort();
    list
}

/// Five deploys of one site, each a few adds, changes and removals from the
/// one before (a path removed in one comes back in a later one).
fn a_chain_of_changes() -> Vec<Vec<ManifestFile>> {
    let mut versions = vec![site_files(40)];
    for step in 1..5 {
        let mut next = versions.last().unwrap().clone();
        next[step] = manifest_file(&format!("f{step}.html"), &format!("page {step}, edit {step}"));
        next[10 + step] = manifest_file(&format!("f{}.html", 10 + step), "shared new content");
        next.retain(|f| f.path != format!("f{}.html", 20 + step));
        next.push(manifest_file(&format!("new{step}.css"), &format!("style {step}")));
        if step == 3 {
            // Back, with other content than before its removal.
            next.push(manifest_file("f21.html", "page 21 again"));
        }
        versions.push(next);
    }
    versions
}

on_both_databases!(
    a_chain_of_deploys_stores_deltas_and_reads_back_each_deploys_own_files,
    |db: Database| async move {
        let s = site(&db, "chain").await;
        let versions = a_chain_of_changes();
        for (i, files) in versions.iter().enumerate() {
            ready_deploy(&db, &s, &format!("chain-{i}"), files).await;
        }
        for (i, files) in versions.iter().enumerate() {
            let id = format!("chain-{i}");
            assert_eq!(files_read_back(&db, &id).await, expected(files), "{id}");
            let stored = db.stored_file_list(&id).await.unwrap().unwrap();
            if i == 0 {
                assert_eq!(
                    (stored.base_deploy_id, stored.chain_depth, stored.rows),
                    (None, 0, 40)
                );
            } else {
                assert_eq!(stored.base_deploy_id, Some(format!("chain-{}", i - 1)));
                assert_eq!(stored.chain_depth, i as i64);
                // Two changes, a removal and an add (and a path back).
                assert_eq!(stored.rows, if i == 3 { 5 } else { 4 }, "{id}");
            }
        }
        assert!(db.deploy_file("chain-2", "f22.html").await.unwrap().is_none());
        assert!(db.deploy_file_key("chain-2", "f22.html").await.unwrap().is_none());
        assert!(db.deploy_file("chain-1", "f22.html").await.unwrap().is_some());
        assert!(db.deploy_file("chain-2", "f21.html").await.unwrap().is_none());
        assert!(db.deploy_file("chain-3", "f21.html").await.unwrap().is_some());
    }
);

on_both_databases!(
    a_deploy_changing_most_files_is_stored_in_full,
    |db: Database| async move {
        let s = site(&db, "rewrite").await;
        let first = site_files(10);
        ready_deploy(&db, &s, "rewrite-0", &first).await;
        let mut second = first.clone();
        for (i, file) in second.iter_mut().enumerate().take(6) {
            *file = manifest_file(&file.path, &format!("rewritten {i}"));
        }
        ready_deploy(&db, &s, "rewrite-1", &second).await;
        let stored = db.stored_file_list("rewrite-1").await.unwrap().unwrap();
        assert_eq!(
            (stored.base_deploy_id, stored.chain_depth, stored.rows),
            (None, 0, 10)
        );
        assert_eq!(files_read_back(&db, "rewrite-1").await, expected(&second));
    }
);

on_both_databases!(
    a_deploy_changing_one_percent_of_its_files_writes_one_percent_of_the_rows,
    |db: Database| async move {
        let s = site(&db, "big").await;
        let first = site_files(2000);
        ready_deploy(&db, &s, "big-0", &first).await;
        let mut second = first.clone();
        for i in (0..2000).step_by(100) {
            second[i] = manifest_file(&second[i].path, &format!("changed {i}"));
        }
        ready_deploy(&db, &s, "big-1", &second).await;
        let stored = db.stored_file_list("big-1").await.unwrap().unwrap();
        assert_eq!(stored.rows, 20);
        assert_eq!(stored.base_deploy_id.as_deref(), Some("big-0"));
        let deploy = db.deploy("big-1").await.unwrap().unwrap();
        assert_eq!(deploy.file_count, 2000, "the totals are the whole deploy's");
        assert_eq!(
            deploy.total_size,
            second.iter().map(|f| f.size as i64).sum::<i64>()
        );
        assert_eq!(files_read_back(&db, "big-1").await, expected(&second));
    }
);

on_both_databases!(
    removing_deploys_of_a_chain_leaves_every_other_deploys_files_as_they_were,
    |db: Database| async move {
        let s = site(&db, "prune").await;
        let versions = a_chain_of_changes();
        for (i, files) in versions.iter().enumerate() {
            ready_deploy(&db, &s, &format!("prune-{i}"), files).await;
        }
        let mut kept: Vec<usize> = (0..versions.len()).collect();
        // A middle deploy, then the full list at the bottom, then the top.
        for removed in [2, 0, 4] {
            let id = format!("prune-{removed}");
            assert_eq!(db.remove_deploy(&id).await.unwrap(), Some(s.id), "{id}");
            kept.retain(|i| *i != removed);
            for i in &kept {
                let id = format!("prune-{i}");
                assert_eq!(files_read_back(&db, &id).await, expected(&versions[*i]), "{id}");
            }
        }
        let bottom = db.stored_file_list("prune-1").await.unwrap().unwrap();
        assert_eq!(bottom.base_deploy_id, None, "the full list moved up");
        assert_eq!(bottom.chain_depth, 0);
        assert_eq!(bottom.rows, versions[1].len() as i64, "no removal rows are left");
        let top = db.stored_file_list("prune-3").await.unwrap().unwrap();
        assert_eq!(top.base_deploy_id.as_deref(), Some("prune-1"));
        assert_eq!(top.chain_depth, 1);
    }
);

on_both_databases!(
    removing_the_base_of_a_deploy_still_uploading_lets_it_finish,
    |db: Database| async move {
        let s = site(&db, "upl").await;
        let first = site_files(20);
        ready_deploy(&db, &s, "upl-0", &first).await;
        let mut second = first.clone();
        second[0] = manifest_file("f0.html", "new front page");
        second.pop();
        db.insert_direct_deploy("upl-1", s.id, "main", None, NewFileList::Full(&second))
            .await
            .unwrap();
        assert_eq!(
            db.stored_file_list("upl-1")
                .await
                .unwrap()
                .unwrap()
                .base_deploy_id
                .as_deref(),
            Some("upl-0")
        );
        assert_eq!(db.remove_deploy("upl-0").await.unwrap(), Some(s.id));
        assert_eq!(
            db.missing_blobs_of_deploy("upl-1").await.unwrap(),
            vec![second[0].sha256.clone()],
            "only the new file's blob is asked for"
        );
        db.record_blob(&second[0].sha256, second[0].size as i64)
            .await
            .unwrap();
        assert_eq!(
            db.finalize_direct_deploy("upl-1", true).await.unwrap(),
            FinalizeOutcome::Ready { published: true }
        );
        assert_eq!(files_read_back(&db, "upl-1").await, expected(&second));
        let stored = db.stored_file_list("upl-1").await.unwrap().unwrap();
        assert_eq!((stored.base_deploy_id, stored.rows), (None, 19));
    }
);

on_both_databases!(
    a_retried_manifest_replaces_the_delta_of_a_build_deploy,
    |db: Database| async move {
        let s = site(&db, "retry").await;
        let first = site_files(30);
        ready_deploy(&db, &s, "retry-0", &first).await;
        let build_id = queue(&db, &s, "main").await;
        let build = db.build(build_id).await.unwrap().unwrap();
        let mut attempt = first.clone();
        attempt[0] = manifest_file("f0.html", "first attempt");
        db.upsert_build_deploy("retry-1", &build, NewFileList::Full(&attempt))
            .await
            .unwrap();
        let mut retried = first.clone();
        retried[1] = manifest_file("f1.html", "second attempt");
        retried.pop();
        let deploy = db
            .upsert_build_deploy("retry-x", &build, NewFileList::Full(&retried))
            .await
            .unwrap();
        assert_eq!(deploy.id, "retry-1");
        let stored = db.stored_file_list("retry-1").await.unwrap().unwrap();
        assert_eq!(
            (stored.base_deploy_id.as_deref(), stored.rows),
            (Some("retry-0"), 2)
        );
        let listed: Vec<(String, String, i64)> = db
            .deploy_files("retry-1")
            .await
            .unwrap()
            .into_iter()
            .map(|(path, f)| (path, f.sha256, f.size))
            .collect();
        assert_eq!(listed, expected(&retried));
    }
);

on_both_databases!(
    the_sweep_never_removes_a_blob_a_kept_deploy_of_a_chain_uses,
    |db: Database| async move {
        use jamstack_controller::db::now_millis;
        let s = site(&db, "gcchain").await;
        let versions = a_chain_of_changes();
        for (i, files) in versions.iter().enumerate() {
            ready_deploy(&db, &s, &format!("gcc-{i}"), files).await;
        }
        let sweep_all = || async {
            let mut swept = Vec::new();
            loop {
                let batch = db
                    .sweep_unreferenced_blobs(now_millis() + MINUTE, 500)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return swept;
                }
                swept.extend(batch.into_iter().map(|b| b.sha256));
            }
        };
        assert!(sweep_all().await.is_empty(), "every blob is in use");
        let mut kept: Vec<usize> = (0..versions.len()).collect();
        for removed in [0, 3, 1] {
            assert!(
                db.remove_deploy(&format!("gcc-{removed}"))
                    .await
                    .unwrap()
                    .is_some()
            );
            kept.retain(|i| *i != removed);
            let swept: HashSet<String> = sweep_all().await.into_iter().collect();
            let used: HashSet<String> = kept
                .iter()
                .flat_map(|i| versions[*i].iter().map(|f| f.sha256.clone()))
                .collect();
            assert!(
                swept.is_disjoint(&used),
                "after removing gcc-{removed}, the sweep took blobs a kept deploy uses"
            );
            let all: Vec<String> = used.into_iter().collect();
            assert_eq!(db.missing_blobs(&all).await.unwrap(), Vec::<String>::new());
            if removed == 0 {
                assert!(
                    swept.contains(&versions[0][1].sha256),
                    "a blob only the removed deploy used is swept"
                );
            }
        }
    }
);

on_both_databases!(
    a_folder_sent_as_its_changes_since_a_ready_deploy_holds_what_it_would_hold_sent_whole,
    |db: Database| async move {
        let s = site(&db, "changes").await;
        let other = site(&db, "elsewhere").await;
        let mut files = site_files(60);
        ready_deploy(&db, &s, "ch-0", &files).await;
        let mut base = "ch-0".to_owned();
        let mut depths = Vec::new();
        // Past the deepest chain a delta may stand on: the full list is
        // written again there, and the changes keep coming.
        for round in 1..=18 {
            let changed = manifest_file(&format!("f{round}.html"), &format!("round {round}"));
            let added = manifest_file(&format!("new/{round}.html"), &"n".repeat(round));
            let removed = format!("f{}.html", 30 + round);
            // Sent again as it is: left out of what is stored.
            let unchanged = files[0].clone();
            let sent = vec![unchanged, changed.clone(), added.clone()];
            files[round] = changed;
            files.retain(|f| f.path != removed);
            files.push(added);
            let resolved = db
                .resolve_changes(s.id, &base, &sent, std::slice::from_ref(&removed))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(resolved.file_count, files.len() as u64, "round {round}");
            assert_eq!(resolved.total_size, files.iter().map(|f| f.size).sum::<u64>());
            let id = format!("ch-{round}");
            let deploy = db
                .insert_direct_deploy(&id, s.id, "main", None, NewFileList::Changes(&resolved))
                .await
                .unwrap();
            assert_eq!(deploy.file_count, files.len() as i64);
            for file in &sent {
                db.record_blob(&file.sha256, file.size as i64).await.unwrap();
            }
            assert_eq!(
                db.finalize_direct_deploy(&id, false).await.unwrap(),
                FinalizeOutcome::Ready { published: false }
            );
            assert_eq!(files_read_back(&db, &id).await, expected(&files), "round {round}");
            let stored = db.stored_file_list(&id).await.unwrap().unwrap();
            if stored.chain_depth > 0 {
                assert_eq!(stored.base_deploy_id.as_deref(), Some(base.as_str()));
                assert_eq!(stored.rows, 3, "round {round}: a change, an addition, a removal");
            } else {
                assert_eq!(stored.rows, files.len() as i64, "round {round}: the full list");
            }
            depths.push(stored.chain_depth);
            base = id;
        }
        assert_eq!(depths.iter().max(), Some(&16), "{depths:?}");
        assert!(depths.contains(&0), "the full list is written again: {depths:?}");

        // Bases that cannot be used, and nothing recorded for them.
        let refusal = |site_id: i64, base: &str, removed: &[&str]| {
            let db = db.clone();
            let (base, removed): (String, Vec<String>) =
                (base.to_owned(), removed.iter().map(|p| p.to_string()).collect());
            async move {
                db.resolve_changes(site_id, &base, &[], &removed)
                    .await
                    .unwrap()
                    .unwrap_err()
            }
        };
        assert_eq!(
            refusal(other.id, &base, &[]).await,
            BaseRefused::Unknown(base.clone()),
            "another site's deploy"
        );
        assert_eq!(
            refusal(s.id, "no-such-deploy", &[]).await,
            BaseRefused::Unknown("no-such-deploy".into())
        );
        assert_eq!(
            refusal(s.id, &base, &["f31.html"]).await,
            BaseRefused::NoSuchPath {
                base: base.clone(),
                path: "f31.html".into()
            },
            "a path the base no longer has"
        );
        db.insert_direct_deploy("ch-draft", s.id, "main", None, NewFileList::Full(&files))
            .await
            .unwrap();
        assert_eq!(
            refusal(s.id, "ch-draft", &[]).await,
            BaseRefused::NotReady("ch-draft".into())
        );

        // A base removed between resolving and recording.
        let resolved = db.resolve_changes(s.id, &base, &[], &[]).await.unwrap().unwrap();
        db.remove_deploy(&base).await.unwrap().expect("removed");
        let error = db
            .insert_direct_deploy("ch-late", s.id, "main", None, NewFileList::Changes(&resolved))
            .await
            .unwrap_err();
        assert_eq!(
            error.downcast_ref::<BaseRefused>(),
            Some(&BaseRefused::Unknown(base.clone())),
            "{error:#}"
        );
        assert!(db.deploy("ch-late").await.unwrap().is_none(), "nothing recorded");
    }
);

on_both_databases!(
    a_manifest_recorded_while_its_base_is_removed_never_stands_on_the_removed_deploy,
    |db: Database| async move {
        let s = site(&db, "race").await;
        let mut files = site_files(300);
        for round in 0..20 {
            let base = format!("race-{round}-base");
            ready_deploy(&db, &s, &base, &files).await;
            files[round] = manifest_file(&files[round].path, &format!("round {round}"));
            let child = format!("race-{round}-child");
            let remove = {
                let db = db.clone();
                let base = base.clone();
                tokio::spawn(async move { db.remove_deploy(&base).await.unwrap() })
            };
            tokio::time::sleep(std::time::Duration::from_micros(300 * (round % 7) as u64)).await;
            db.insert_direct_deploy(&child, s.id, "main", None, NewFileList::Full(&files))
                .await
                .unwrap();
            assert_eq!(remove.await.unwrap(), Some(s.id), "round {round}");
            if let Some(base) = db.stored_file_list(&child).await.unwrap().unwrap().base_deploy_id {
                assert_ne!(
                    db.deploy(&base).await.unwrap().unwrap().state,
                    "deleted",
                    "round {round}: {child} stands on a removed deploy"
                );
            }
            db.record_blob(&files[round].sha256, files[round].size as i64)
                .await
                .unwrap();
            assert_eq!(
                db.finalize_direct_deploy(&child, false).await.unwrap(),
                FinalizeOutcome::Ready { published: false }
            );
            assert_eq!(
                files_read_back(&db, &child).await,
                expected(&files),
                "round {round}"
            );
        }
    }
);

on_both_databases!(
    a_size_a_manifest_made_up_is_named_and_never_read_as_the_files_size,
    |db: Database| async move {
        let s = site(&db, "sizes").await;
        let honest = manifest_file("index.html", "home");
        let mut lie = manifest_file("big.bin", "tiny!\n");
        lie.size = 100_000;
        db.insert_direct_deploy(
            "d1",
            s.id,
            "main",
            None,
            NewFileList::Full(&[honest.clone(), lie.clone()]),
        )
        .await
        .unwrap();
        db.record_stored_blob(&honest.sha256, 4, "k-home").await.unwrap();
        db.record_stored_blob(&lie.sha256, 6, "k-tiny").await.unwrap();
        assert_eq!(
            db.files_with_false_sizes("d1").await.unwrap(),
            [("big.bin".to_owned(), 100_000, 6)]
        );
        // Made ready anyway (as by a controller before finalize checked
        // sizes), the edge's index still reads the stored size.
        assert_eq!(
            db.finalize_direct_deploy("d1", false).await.unwrap(),
            FinalizeOutcome::Ready { published: false }
        );
        let mut sizes: Vec<(String, i64)> = db
            .ready_deploy_contents("d1")
            .await
            .unwrap()
            .expect("a ready deploy")
            .files
            .into_iter()
            .map(|f| (f.path, f.size))
            .collect();
        sizes.sort();
        assert_eq!(sizes, [("big.bin".to_owned(), 6), ("index.html".to_owned(), 4)]);
    }
);

on_both_databases!(
    a_sites_build_network_is_kept_apart_from_its_limits_and_defaults_to_the_public_internet,
    |db: Database| async move {
        use jamstack_controller::db::{SiteLimits, SiteNetwork};
        use jamstack_proto::BuildNetwork;
        let s = site(&db, "net").await;
        let fresh = db.site_build_settings(s.id).await.unwrap();
        assert_eq!(fresh.network, SiteNetwork::default());
        assert_eq!(fresh.network.mode, BuildNetwork::Public);

        let limits = SiteLimits {
            memory_mib: Some(512),
            ..Default::default()
        };
        db.set_site_limits(s.id, &limits).await.unwrap();
        let network = SiteNetwork {
            mode: BuildNetwork::Off,
            private_hosts: vec!["10.213.0.2".into(), "mirror.internal".into()],
        };
        db.set_site_network(s.id, &network).await.unwrap();
        let generation = db.bump_cache_generation(s.id).await.unwrap();
        let stored = db.site_build_settings(s.id).await.unwrap();
        assert_eq!(stored.network, network, "clearing the cache keeps the network");
        assert_eq!(stored.limits, limits, "setting the network keeps the limits");
        assert_eq!(stored.cache_generation, generation);

        db.set_site_limits(s.id, &SiteLimits::default()).await.unwrap();
        assert_eq!(
            db.site_build_settings(s.id).await.unwrap().network,
            network,
            "setting the limits keeps the network"
        );
        let other = site(&db, "other").await;
        let new_site = db.site_build_settings(other.id).await.unwrap();
        assert_eq!(new_site.network.mode, BuildNetwork::Public);
        assert!(new_site.network.private_hosts.is_empty());
    }
);

/// How a runner reports a job that built and published, without timings.
fn succeeded() -> FinishedAs<'static> {
    FinishedAs {
        state: BuildState::Succeeded,
        exit_code: Some(0),
        error: None,
        deploy_id: None,
        step_timings: &[],
    }
}

on_both_databases!(
    a_production_branch_follows_the_default_branch_until_a_person_names_one,
    |db: Database| async move {
        let following = db
            .insert_site(&NewSite {
                name: "following".into(),
                repo_url: Some("/repos/following".into()),
                github_repo: Some("Octo/Following".into()),
                production_branch: "main".into(),
                production_branch_follows_default: true,
                settings: Default::default(),
            })
            .await
            .unwrap()
            .unwrap();
        let named = site(&db, "named").await;
        use jamstack_controller::db::{Claim, NewDelivery};
        let delivery = |id: &str| NewDelivery {
            source: "github",
            delivery_id: Some(id.to_owned()),
            event: "push".into(),
            action: None,
            repository: Some("octo/following".into()),
            body_sha256: Some(format!("{id:0>64}")),
        };
        assert!(following.production_branch_follows_default);
        assert!(!named.production_branch_follows_default);

        let changed = db
            .follow_default_branch("octo/following", "master", &delivery("d1"))
            .await
            .unwrap();
        assert_eq!(changed, [("following".to_owned(), "main".to_owned())]);
        assert!(
            db.follow_default_branch("octo/following", "master", &delivery("d2"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            db.follow_default_branch("octo/named", "master", &delivery("d3"))
                .await
                .unwrap()
                .is_empty()
        );
        let following = db.site_by_name("following").await.unwrap().unwrap();
        assert_eq!(following.production_branch, "master");

        // A delivery recorded before may be older than a rename: it moves
        // nothing, under its own id or its body under another.
        let Claim::New(row) = db.claim_delivery(&delivery("d4")).await.unwrap() else {
            panic!("d4 is new");
        };
        db.finish_delivery(row, "queued", "built", &[]).await.unwrap();
        let mut replayed = delivery("d4");
        replayed.delivery_id = Some("another-id".into());
        for old in [delivery("d4"), replayed] {
            assert!(
                db.follow_default_branch("octo/following", "old-name", &old)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(
            db.site_by_name("following")
                .await
                .unwrap()
                .unwrap()
                .production_branch,
            "master"
        );
        assert_eq!(
            db.site_by_name("named").await.unwrap().unwrap().production_branch,
            "main"
        );

        // Saving settings with the same branch keeps it following; naming
        // another stops it.
        for (branch, follows) in [("master", true), ("live", false)] {
            db.update_scheduling(
                following.id,
                &SchedulingSettings {
                    production_branch: Some(branch.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let site = db.site_by_name("following").await.unwrap().unwrap();
            assert_eq!(site.production_branch_follows_default, follows, "{branch}");
        }
        assert!(
            db.follow_default_branch("octo/following", "trunk", &delivery("d5"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            db.site_by_name("following")
                .await
                .unwrap()
                .unwrap()
                .production_branch,
            "live"
        );
    }
);

on_both_databases!(
    a_site_made_without_a_repository_gets_one_connected_later,
    |db: Database| async move {
        let docs = db
            .insert_site(&NewSite {
                name: "docs".into(),
                repo_url: None,
                github_repo: None,
                production_branch: "main".into(),
                production_branch_follows_default: false,
                settings: Default::default(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(docs.repo_url, None);

        db.connect_repository(
            docs.id,
            "https://github.com/octo/docs.git",
            Some("octo/docs"),
            true,
        )
        .await
        .unwrap();
        db.set_followed_default_branch(docs.id, "trunk").await.unwrap();
        let docs = db.site_by_name("docs").await.unwrap().unwrap();
        assert_eq!(docs.repo_url.as_deref(), Some("https://github.com/octo/docs.git"));
        assert_eq!(docs.github_repo.as_deref(), Some("octo/docs"));
        assert!(docs.production_branch_follows_default);
        assert_eq!(docs.production_branch, "trunk");
        assert_eq!(db.sites_for_github_repo("octo/docs").await.unwrap().len(), 1);

        // A branch a person named is not moved by what GitHub says.
        let named = site(&db, "named").await;
        db.set_followed_default_branch(named.id, "trunk").await.unwrap();
        assert_eq!(
            db.site_by_name("named").await.unwrap().unwrap().production_branch,
            "main"
        );
    }
);

on_both_databases!(
    queued_jobs_carry_what_says_why_they_wait,
    |db: Database| async move {
        let blog = site(&db, "blog").await;
        db.update_scheduling(
            blog.id,
            &SchedulingSettings {
                required_labels: Some(vec!["gpu".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let build = queue(&db, &blog, "main").await;
        let plain = runner(&db, "plain", &["linux"]).await;

        let jobs = db.queued_jobs(None).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].build_id, build);
        assert_eq!(jobs[0].required_labels, "gpu");
        assert_eq!((jobs[0].site_limit, jobs[0].site_running), (1, 0));
        assert_eq!(db.queued_jobs(Some(build)).await.unwrap().len(), 1);
        assert!(db.queued_jobs(Some(build + 1)).await.unwrap().is_empty());

        let loads = db.live_runner_loads().await.unwrap();
        assert_eq!(loads.len(), 1);
        assert_eq!((loads[0].runner.id, loads[0].leased), (plain.id, 0));
    }
);

/// Queues a build of `sha` in `context`, has a runner claim it and end it
/// in `state`.
async fn built(
    db: &Database,
    site: &Site,
    (context, branch, pr_number): (BuildContext, &str, Option<i64>),
    sha: &str,
    state: BuildState,
) {
    let (build_id, _) = db
        .enqueue_build(&NewBuild {
            site_id: site.id,
            context,
            branch: branch.into(),
            commit_sha: sha.into(),
            commit_message: None,
            author: None,
            pr_number,
            from_fork: false,
            commit_unverified: false,
            trigger: "webhook",
            trigger_title: None,
            trigger_payload: None,
        })
        .await
        .unwrap();
    let runner = runner(db, &format!("r-{build_id}"), &[]).await;
    let lease = format!("lease-{build_id}");
    let claimed = db
        .claim_next_job(&runner, &lease, MINUTE, 0)
        .await
        .unwrap()
        .expect("the build is claimed");
    assert_eq!(claimed.build_id, build_id);
    db.finish_job(claimed.job_id, &lease, FinishedAs { state, ..succeeded() })
        .await
        .unwrap()
        .expect("the live lease finishes its job");
}

on_both_databases!(
    the_commit_to_compare_with_is_the_last_successful_build_of_the_same_context,
    |db: Database| async move {
        let s = site(&db, "mono").await;
        let production = (BuildContext::Production, "main", None);
        let feature = (BuildContext::BranchDeploy, "feature", None);
        let preview = (BuildContext::DeployPreview, "fix", Some(3));
        assert_eq!(
            db.last_successful_commit(s.id, BuildContext::Production, "main", None)
                .await
                .unwrap(),
            None,
            "nothing before the first build"
        );
        built(&db, &s, production, &"a".repeat(40), BuildState::Succeeded).await;
        built(&db, &s, production, &"b".repeat(40), BuildState::Failed).await;
        built(&db, &s, production, &"c".repeat(40), BuildState::Skipped).await;
        built(&db, &s, feature, &"d".repeat(40), BuildState::Succeeded).await;
        built(&db, &s, preview, &"e".repeat(40), BuildState::Succeeded).await;
        let last = |context, branch: &'static str, pr| {
            let db = db.clone();
            async move {
                db.last_successful_commit(s.id, context, branch, pr)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            last(BuildContext::Production, "main", None).await,
            Some("a".repeat(40)),
            "failed and skipped builds built nothing to compare with"
        );
        assert_eq!(
            last(BuildContext::BranchDeploy, "feature", None).await,
            Some("d".repeat(40))
        );
        assert_eq!(last(BuildContext::BranchDeploy, "other", None).await, None);
        assert_eq!(
            last(BuildContext::DeployPreview, "fix", Some(3)).await,
            Some("e".repeat(40))
        );
        assert_eq!(last(BuildContext::DeployPreview, "fix", Some(4)).await, None);
        built(&db, &s, production, &"f".repeat(40), BuildState::Succeeded).await;
        assert_eq!(
            last(BuildContext::Production, "main", None).await,
            Some("f".repeat(40))
        );
    }
);

on_both_databases!(
    a_sites_base_and_watch_paths_are_kept_apart_from_its_other_settings,
    |db: Database| async move {
        use jamstack_controller::db::{SiteLimits, SitePaths};
        let s = site(&db, "paths").await;
        assert_eq!(
            db.site_build_settings(s.id).await.unwrap().paths,
            SitePaths::default()
        );
        let paths = SitePaths {
            base: "sites/blog".into(),
            watch_paths: vec!["sites/blog/**".into(), "shared/**".into()],
        };
        db.set_site_paths(s.id, &paths).await.unwrap();
        db.set_site_limits(s.id, &SiteLimits::default()).await.unwrap();
        db.bump_cache_generation(s.id).await.unwrap();
        assert_eq!(db.site_build_settings(s.id).await.unwrap().paths, paths);
    }
);

on_both_databases!(
    a_hostname_is_claimed_by_one_controller_and_written_only_by_its_holder,
    |db: Database| async move {
        use jamstack_controller::db::{AcmeIssued, now_millis};
        db.want_acme_certificate("shop.example.com", "http-01")
            .await
            .unwrap();
        db.want_acme_certificate("shop.example.com", "http-01")
            .await
            .unwrap();
        let now = now_millis();
        let due = db.due_acme_orders(now, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].state, "waiting");
        assert_eq!(due[0].challenge, "http-01");

        // Sixteen controllers wake for it at once.
        let claims: Vec<_> = (0..16)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.claim_acme_order("shop.example.com", &format!("controller-{i}"), now, now + 60_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for claim in claims {
            won += usize::from(claim.await.unwrap());
        }
        assert_eq!(won, 1, "one claim of a hostname wins");
        let held = db.acme_order("shop.example.com").await.unwrap().unwrap();
        assert_eq!(held.state, "issuing");
        let holder = held.held_by.clone().unwrap();
        assert!(
            db.due_acme_orders(now, 10).await.unwrap().is_empty(),
            "held: not due"
        );

        // Only the holder records the outcome.
        let issued = AcmeIssued {
            not_before: now,
            not_after: now + 90 * 86_400_000,
            renew_at: now + 60 * 86_400_000,
        };
        assert!(
            !db.finish_acme_order("shop.example.com", "someone-else", issued)
                .await
                .unwrap()
        );
        assert!(
            db.finish_acme_order("shop.example.com", &holder, issued)
                .await
                .unwrap()
        );
        let active = db.acme_order("shop.example.com").await.unwrap().unwrap();
        assert_eq!(
            (active.state.as_str(), active.held_by.as_deref()),
            ("active", None)
        );
        assert_eq!(active.shown_state(now), "active");
        assert_eq!(active.shown_state(now + 61 * 86_400_000), "renewal_due");
        assert!(db.due_acme_orders(now, 10).await.unwrap().is_empty());
        assert_eq!(db.due_acme_orders(issued.renew_at, 10).await.unwrap().len(), 1);
        assert_eq!(
            db.certificate_expiries().await.unwrap(),
            vec![("shop.example.com".to_owned(), issued.not_after)]
        );

        // A renewal that fails keeps the certificate's dates and waits.
        let later = issued.renew_at;
        assert!(
            db.claim_acme_order("shop.example.com", "controller-b", later, later + 60_000)
                .await
                .unwrap()
        );
        assert_eq!(
            db.fail_acme_order("shop.example.com", "controller-a", "client", "x", later + 1)
                .await
                .unwrap(),
            None,
            "not the holder"
        );
        assert_eq!(
            db.fail_acme_order(
                "shop.example.com",
                "controller-b",
                "urn:ietf:params:acme:error:connection",
                "shop.example.com: connection refused",
                later + 60_000
            )
            .await
            .unwrap(),
            Some(1)
        );
        let failed = db.acme_order("shop.example.com").await.unwrap().unwrap();
        assert_eq!(failed.state, "failed");
        assert_eq!(failed.not_after, Some(issued.not_after));
        assert_eq!(
            failed.last_error_type.as_deref(),
            Some("urn:ietf:params:acme:error:connection")
        );
        assert!(
            db.due_acme_orders(later + 59_999, 10).await.unwrap().is_empty(),
            "backing off"
        );
        assert_eq!(db.due_acme_orders(later + 60_000, 10).await.unwrap().len(), 1);

        // A holder that died: its hold runs out and another takes over.
        let t = later + 60_000;
        assert!(
            db.claim_acme_order("shop.example.com", "dies", t, t + 1_000)
                .await
                .unwrap()
        );
        assert!(
            !db.claim_acme_order("shop.example.com", "other", t + 999, t + 5_000)
                .await
                .unwrap()
        );
        assert!(
            db.claim_acme_order("shop.example.com", "other", t + 1_001, t + 5_000)
                .await
                .unwrap()
        );

        assert!(db.forget_acme_certificate("shop.example.com").await.unwrap());
        assert!(db.acme_orders().await.unwrap().is_empty());
    }
);

/// Two controllers (two pools) on one PostgreSQL database race for the
/// same hostnames, round after round: no name is ever held by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_controllers_on_postgres_never_both_order_the_same_hostname() {
    use jamstack_controller::db::now_millis;
    let url = fresh_postgres_database().await;
    let first = Database::connect(&url).await.unwrap();
    let second = Database::connect(&url).await.unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("site-{i}.example.com")).collect();
    for name in &names {
        first.want_acme_certificate(name, "http-01").await.unwrap();
    }
    let controller = |db: Database, me: &'static str| {
        let names = names.clone();
        tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..5i64 {
                // Each round is a later moment, when every earlier hold
                // (a minute long) has run out.
                let now = now_millis() + round * 120_000;
                for order in db.due_acme_orders(now, 100).await.unwrap() {
                    if db
                        .claim_acme_order(&order.hostname, me, now, now + 60_000)
                        .await
                        .unwrap()
                    {
                        won.push((round, order.hostname));
                    }
                }
            }
            assert_eq!(names.len(), 10);
            won
        })
    };
    let a = controller(first, "a");
    let b = controller(second, "b");
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        all.len(),
        claimed,
        "a hostname was held by both in one round: {a:?} {b:?}"
    );
    assert!(!a.is_empty() || !b.is_empty());
}

on_both_databases!(
    sites_and_tokens_made_before_teams_belong_to_the_first_team_which_the_first_admin_sign_in_owns,
    |db: Database| async move {
        use jamstack_controller::db::{Role, TokenKind};
        let blog = site(&db, "blog").await;
        db.insert_api_token("ci", "read builds", "hash-ci").await.unwrap();
        let first = db.first_team_id().await.unwrap();
        assert_eq!(db.team_of_site("blog").await.unwrap(), Some(first));
        let grant = db.bearer_token("hash-ci").await.unwrap().unwrap();
        assert_eq!(
            (grant.kind, grant.team_id, grant.user_id),
            (TokenKind::Api, Some(first), None)
        );
        assert_eq!(grant.scopes, "read builds", "an existing token keeps its scopes");

        let ada = db.insert_user("ada", None).await.unwrap().unwrap();
        let bob = db.insert_user("bob", None).await.unwrap().unwrap();
        assert!(
            db.insert_user("ada", None).await.unwrap().is_none(),
            "logins are unique"
        );
        // Two people signing in with the admin token at once: one owner.
        let (a, b) = tokio::join!(db.claim_first_team(ada.id), db.claim_first_team(bob.id));
        let claims = [a.unwrap(), b.unwrap()];
        assert_eq!(claims.iter().flatten().count(), 1, "{claims:?}");
        let owner = if claims[0].is_some() { ada.id } else { bob.id };
        assert_eq!(db.role_on_team(owner, first).await.unwrap(), Some(Role::Owner));
        let other = if owner == ada.id { bob.id } else { ada.id };
        assert_eq!(db.role_on_team(other, first).await.unwrap(), None);
        assert_eq!(db.claim_first_team(other).await.unwrap(), None, "claimed once");

        // A site made later goes to the first team too, until moved.
        let docs = site(&db, "docs").await;
        assert_eq!(db.team_of_site("docs").await.unwrap(), Some(first));
        let team = db.insert_team("design", other).await.unwrap().unwrap();
        assert!(db.insert_team("design", other).await.unwrap().is_none());
        db.move_site_to_team(docs.id, team.id).await.unwrap();
        assert_eq!(db.team_of_site("docs").await.unwrap(), Some(team.id));
        assert_eq!(db.team_of_site("nope").await.unwrap(), None);
        let build = queue(&db, &blog, "main").await;
        assert_eq!(db.team_of_build(build).await.unwrap(), Some(first));
    }
);

on_both_databases!(
    a_members_tokens_die_with_the_membership_and_the_last_owner_stays,
    |db: Database| async move {
        use jamstack_controller::db::{MembershipChange, Role};
        let ada = db
            .insert_user("ada", Some("$argon2id$stand-in"))
            .await
            .unwrap()
            .unwrap();
        let bob = db.insert_user("bob", None).await.unwrap().unwrap();
        assert_eq!(db.user_by_login("ada").await.unwrap(), Some(ada.clone()));
        assert_eq!(db.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));
        let team = db.insert_team("web", ada.id).await.unwrap().unwrap();
        assert_eq!(
            db.set_member_role(team.id, bob.id, Role::Developer)
                .await
                .unwrap(),
            MembershipChange::Done
        );
        let members: Vec<_> = db
            .team_members(team.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.login, m.role))
            .collect();
        assert_eq!(
            members,
            [
                ("ada".to_owned(), Role::Owner),
                ("bob".to_owned(), Role::Developer)
            ]
        );
        let bobs = db
            .insert_team_token(team.id, Some(bob.id), "laptop", "read builds", "hash-bob")
            .await
            .unwrap();
        let robot = db
            .insert_team_token(team.id, None, "ci", "read", "hash-robot")
            .await
            .unwrap();
        assert_eq!(db.token_owner(bobs).await.unwrap(), Some((team.id, Some(bob.id))));
        assert_eq!(db.token_owner(robot).await.unwrap(), Some((team.id, None)));

        assert_eq!(
            db.set_member_role(team.id, ada.id, Role::Admin).await.unwrap(),
            MembershipChange::LastOwner
        );
        assert_eq!(
            db.remove_member(team.id, ada.id).await.unwrap(),
            MembershipChange::LastOwner
        );
        assert_eq!(
            db.remove_member(team.id, bob.id).await.unwrap(),
            MembershipChange::Done
        );
        assert_eq!(
            db.remove_member(team.id, bob.id).await.unwrap(),
            MembershipChange::NotAMember
        );
        assert!(
            db.bearer_token("hash-bob").await.unwrap().is_none(),
            "died with the membership"
        );
        assert!(
            db.bearer_token("hash-robot").await.unwrap().is_some(),
            "the team's own token stays"
        );
        assert_eq!(db.role_on_team(bob.id, team.id).await.unwrap(), None);
        // With a second owner, the first may step down.
        db.set_member_role(team.id, bob.id, Role::Owner).await.unwrap();
        assert_eq!(
            db.set_member_role(team.id, ada.id, Role::Viewer).await.unwrap(),
            MembershipChange::Done
        );
    }
);

on_both_databases!(
    a_users_sessions_are_listed_and_revoked_one_by_one,
    |db: Database| async move {
        use jamstack_controller::db::now_millis;
        let ada = db.insert_user("ada", None).await.unwrap().unwrap();
        let bob = db.insert_user("bob", None).await.unwrap().unwrap();
        let later = now_millis() + 60_000;
        db.insert_user_session(ada.id, "ada-laptop", later).await.unwrap();
        db.insert_user_session(ada.id, "ada-phone", later).await.unwrap();
        db.insert_user_session(ada.id, "ada-old", now_millis() - 1)
            .await
            .unwrap();
        db.insert_user_session(bob.id, "bob-laptop", later).await.unwrap();
        db.insert_session("admin-session", later).await.unwrap();
        assert_eq!(db.session_user("ada-phone").await.unwrap(), Some(Some(ada.id)));
        assert_eq!(db.session_user("admin-session").await.unwrap(), Some(None));
        assert_eq!(db.session_user("ada-old").await.unwrap(), None, "expired");
        let sessions = db.user_sessions(ada.id).await.unwrap();
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        let bobs = db.user_sessions(bob.id).await.unwrap();
        assert!(
            !db.revoke_user_session(ada.id, bobs[0].id).await.unwrap(),
            "not another user's session"
        );
        assert!(db.revoke_user_session(ada.id, sessions[0].id).await.unwrap());
        assert_eq!(db.session_user("ada-phone").await.unwrap(), None, "revoked");
        assert!(db.session_user("ada-laptop").await.unwrap().is_some());
        assert!(db.session_user("bob-laptop").await.unwrap().is_some());
        // The dashboard's admin pages open to the admin's session only.
        assert!(db.session_is_live("admin-session").await.unwrap());
        assert!(!db.session_is_live("ada-laptop").await.unwrap());
    }
);

/// An installation made before teams: its schema stops at the migration
/// before teams, with a site and an API token in it.
#[tokio::test]
async fn an_installation_from_before_teams_keeps_its_sites_and_tokens_on_a_first_team_after_the_upgrade() {
    use jamstack_controller::db::{Role, TokenKind};
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut before = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
    )
    .await
    .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 30)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut old = sqlx::SqliteConnection::connect(&url).await.unwrap();
    before.run(&mut old).await.unwrap();
    // What the controller of the time wrote.
    sqlx::query(
        "INSERT INTO sites (name, repo_url, production_branch, created_at) \
         VALUES ('blog', '/repos/blog', 'main', 1000)",
    )
    .execute(&mut old)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO tokens (kind, name, token_hash, created_at, scopes) \
         VALUES ('api', 'ci', 'hash-ci', 1000, 'read deploys'), ('admin', 'admin', 'hash-admin', 1000, '')",
    )
    .execute(&mut old)
    .await
    .unwrap();
    old.close().await.unwrap();

    let db = Database::open_sqlite(&path).await.unwrap();
    let first = db.first_team_id().await.unwrap();
    assert_eq!(db.team_of_site("blog").await.unwrap(), Some(first));
    let ci = db.bearer_token("hash-ci").await.unwrap().unwrap();
    assert_eq!((ci.team_id, ci.user_id), (Some(first), None));
    assert_eq!(ci.scopes, "read deploys", "the token keeps its scopes");
    let admin = db.bearer_token("hash-admin").await.unwrap().unwrap();
    assert_eq!((admin.kind, admin.team_id), (TokenKind::Admin, None));
    let ada = db.insert_user("ada", None).await.unwrap().unwrap();
    assert_eq!(db.claim_first_team(ada.id).await.unwrap(), Some(first));
    assert_eq!(db.role_on_team(ada.id, first).await.unwrap(), Some(Role::Owner));
}

on_both_databases!(
    the_audit_log_is_read_newest_first_filtered_and_pruned_by_age,
    |db: Database| async move {
        use jamstack_controller::db::{AuditFilter, NewAuditEntry, now_millis};
        for (actor, action, site) in [
            ("admin", "create_site", None),
            ("token:3", "lock_site", Some("blog")),
            ("user:7", "set_env_var", Some("docs")),
        ] {
            db.append_audit(&NewAuditEntry {
                actor: actor.into(),
                action: action.into(),
                site: site.map(str::to_owned),
                team_id: site.map(|_| 1),
                target: format!("/api/v1/{action}"),
                ip: Some("127.0.0.1".into()),
                status: 200,
            })
            .await
            .unwrap();
        }
        let all = db.audit_page(&AuditFilter::default(), 10, 0).await.unwrap();
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["set_env_var", "lock_site", "create_site"]);
        let of = |filter: AuditFilter| {
            let db = db.clone();
            async move {
                db.audit_page(&filter, 10, 0)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.action)
                    .collect::<Vec<_>>()
            }
        };
        let by_actor = of(AuditFilter {
            actor: Some("token:3".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(by_actor, ["lock_site"]);
        let by_site = of(AuditFilter {
            site: Some("docs".into()),
            team: Some(1),
            ..Default::default()
        })
        .await;
        assert_eq!(by_site, ["set_env_var"]);
        let in_team = of(AuditFilter {
            team: Some(1),
            since: Some(now_millis() - 60_000),
            until: Some(now_millis() + 60_000),
            ..Default::default()
        })
        .await;
        assert_eq!(in_team, ["set_env_var", "lock_site"]);
        let later = of(AuditFilter {
            since: Some(now_millis() + 60_000),
            ..Default::default()
        })
        .await;
        assert!(later.is_empty());
        assert_eq!(
            db.audit_page(&AuditFilter::default(), 1, 1).await.unwrap()[0].action,
            "lock_site"
        );
        assert_eq!(db.prune_audit(now_millis() + 1).await.unwrap(), 3);
        assert!(
            db.audit_page(&AuditFilter::default(), 10, 0)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

on_both_databases!(
    an_operator_keeps_the_audit_log_for_the_days_they_chose,
    |db: Database| async move {
        use jamstack_controller::audit::prune_expired;
        use jamstack_controller::config::Retention;
        use jamstack_controller::db::{AuditFilter, NewAuditEntry, now_millis};
        const DAY: i64 = 24 * 60 * 60 * 1000;
        db.append_audit(&NewAuditEntry {
            actor: "admin".into(),
            action: "create_site".into(),
            target: "/api/v1/sites".into(),
            status: 201,
            ..Default::default()
        })
        .await
        .unwrap();
        let entries = || async { db.audit_page(&AuditFilter::default(), 10, 0).await.unwrap().len() };
        let days = |audit_days| Retention {
            audit_days,
            ..Retention::default()
        };
        assert_eq!(Retention::default().audit_days, 365, "a year by default");
        // A day later, a year's retention keeps the entry.
        assert_eq!(
            prune_expired(&db, &days(365), now_millis() + DAY).await.unwrap(),
            0
        );
        assert_eq!(entries().await, 1);
        // Retention 0 keeps it forever, even ten years on.
        assert_eq!(
            prune_expired(&db, &days(0), now_millis() + 3650 * DAY)
                .await
                .unwrap(),
            0
        );
        assert_eq!(entries().await, 1);
        // Thirty-one days on, a thirty-day retention removes it.
        assert_eq!(
            prune_expired(&db, &days(30), now_millis() + 31 * DAY)
                .await
                .unwrap(),
            1
        );
        assert_eq!(entries().await, 0);
    }
);

on_both_databases!(
    a_team_limited_to_one_build_runs_its_second_push_after_the_first_and_holds_no_other_team_back,
    |db: Database| async move {
        let olga = db.insert_user("olga", None).await.unwrap().unwrap();
        let web = db.insert_team("web", olga.id).await.unwrap().unwrap();
        let tess = db.insert_user("tess", None).await.unwrap().unwrap();
        let other = db.insert_team("other", tess.id).await.unwrap().unwrap();
        let site_of = |name: &'static str, team: i64| {
            let db = db.clone();
            async move {
                let made = db
                    .insert_site_of_team(
                        &NewSite {
                            name: name.into(),
                            repo_url: Some(format!("/repos/{name}")),
                            github_repo: None,
                            production_branch: "main".into(),
                            production_branch_follows_default: false,
                            settings: Default::default(),
                        },
                        Some(team),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                // No per-site limit: only the team's holds them back.
                let unlimited = SchedulingSettings {
                    max_concurrent_builds: Some(0),
                    ..Default::default()
                };
                db.update_scheduling(made.id, &unlimited).await.unwrap();
                made
            }
        };
        let (shop, blog, elsewhere) = (
            site_of("shop", web.id).await,
            site_of("blog", web.id).await,
            site_of("elsewhere", other.id).await,
        );
        assert_eq!(
            db.team_build_limit(web.id).await.unwrap(),
            0,
            "no limit by default"
        );
        db.set_team_build_limit(web.id, 1).await.unwrap();
        assert_eq!(db.team_build_limit(web.id).await.unwrap(), 1);
        let first = queue(&db, &shop, "main").await;
        let second = queue(&db, &blog, "main").await;
        let runners = [runner(&db, "r1", &[]).await, runner(&db, "r2", &[]).await];

        let claimed = db
            .claim_next_job(&runners[0], "l1", MINUTE, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.build_id, first);
        assert!(
            db.claim_next_job(&runners[1], "l2", MINUTE, 0)
                .await
                .unwrap()
                .is_none(),
            "the team's second build waits while its first runs"
        );
        let unheld = queue(&db, &elsewhere, "main").await;
        let other_claim = db
            .claim_next_job(&runners[1], "l3", MINUTE, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other_claim.build_id, unheld, "another team is not held back");

        db.finish_job(claimed.job_id, "l1", succeeded())
            .await
            .unwrap()
            .unwrap();
        let next = db
            .claim_next_job(&runners[0], "l4", MINUTE, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.build_id, second, "the second runs once the first is done");

        // Many claims at once still never pass the limit.
        db.finish_job(next.job_id, "l4", succeeded())
            .await
            .unwrap()
            .unwrap();
        db.set_team_build_limit(web.id, 2).await.unwrap();
        for i in 0..6 {
            queue(&db, if i % 2 == 0 { &shop } else { &blog }, &format!("b{i}")).await;
        }
        let mut claimers = Vec::new();
        for r in 0..6 {
            let db = db.clone();
            let me = runner(&db, &format!("many{r}"), &[]).await;
            claimers.push(tokio::spawn(async move {
                db.claim_next_job(&me, &format!("m{r}"), MINUTE, 0).await.unwrap()
            }));
        }
        let mut granted = 0;
        for claimer in claimers {
            granted += usize::from(claimer.await.unwrap().is_some());
        }
        assert_eq!(granted, 2, "two of six claims at once, as the team's limit says");
    }
);

on_both_databases!(
    a_sites_token_key_is_set_replaced_and_removed,
    |db: Database| async move {
        use jamstack_controller::db::IdentityKey;
        let site = site(&db, "members").await;
        assert_eq!(db.site_identity(site.id).await.unwrap(), None);
        let url = IdentityKey::JwksUrl("https://id.example.com/.well-known/jwks.json".into());
        db.set_site_identity(site.id, &url).await.unwrap();
        assert_eq!(db.site_identity(site.id).await.unwrap(), Some(url));
        let secret = IdentityKey::SealedSecret("v1:abcd".into());
        db.set_site_identity(site.id, &secret).await.unwrap();
        assert_eq!(db.site_identity(site.id).await.unwrap(), Some(secret));
        assert!(db.delete_site_identity(site.id).await.unwrap());
        assert!(!db.delete_site_identity(site.id).await.unwrap());
        assert_eq!(db.site_identity(site.id).await.unwrap(), None);
    }
);

on_both_databases!(
    people_signing_in_through_a_provider_join_and_leave_teams_as_the_rules_and_their_groups_say,
    |db: Database| async move {
        use jamstack_controller::auth::external::{ProvenPerson, user_for};
        use jamstack_controller::db::{ExternalIdentity, Role};
        let owner = db.insert_user("olga", None).await.unwrap().unwrap();
        let web = db.insert_team("web", owner.id).await.unwrap().unwrap();
        let docs = db.insert_team("docs", owner.id).await.unwrap().unwrap();
        db.set_auto_membership(web.id, "oidc-group:web", Role::Developer)
            .await
            .unwrap();
        db.set_auto_membership(web.id, "oidc-group:leads", Role::Admin)
            .await
            .unwrap();
        db.set_auto_membership(docs.id, "github-org:acme", Role::Viewer)
            .await
            .unwrap();
        // Someone already called `octocat` locally: the newcomer gets another login.
        db.insert_user("octocat", None).await.unwrap().unwrap();
        let person = |groups: &[&str]| ProvenPerson {
            identity: ExternalIdentity {
                provider: "oidc:https://id.example".into(),
                subject: "sub-1".into(),
                login: Some("octocat".into()),
                email: Some("octo@example.com".into()),
            },
            sources: groups.iter().map(|g| format!("oidc-group:{g}")).collect(),
            source_prefixes: &["oidc-group:"],
        };

        let user = user_for(&db, &person(&["web", "leads"])).await.unwrap();
        assert_eq!(db.user_by_id(user).await.unwrap().unwrap().login, "octocat-2");
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), Some(Role::Admin));
        assert_eq!(db.role_on_team(user, docs.id).await.unwrap(), None);
        let linked = db.identities_of_user(user).await.unwrap();
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].email.as_deref(), Some("octo@example.com"));

        // The same person again is the same user.
        assert_eq!(user_for(&db, &person(&["web", "leads"])).await.unwrap(), user);

        // A membership from a GitHub organization is not ended by an OIDC sign-in.
        db.sync_auto_memberships(user, &["github-"], &["github-org:acme".to_owned()])
            .await
            .unwrap();
        assert_eq!(db.role_on_team(user, docs.id).await.unwrap(), Some(Role::Viewer));

        // Out of every group: the membership the group made ends, with the
        // user's tokens on that team.
        let token = db
            .insert_team_token(web.id, Some(user), "laptop", "read", "hash-octo")
            .await
            .unwrap();
        user_for(&db, &person(&[])).await.unwrap();
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), None);
        assert_eq!(db.role_on_team(user, docs.id).await.unwrap(), Some(Role::Viewer));
        assert_eq!(db.token_owner(token).await.unwrap(), None);

        // A membership an owner made is never ended by sign-in.
        db.set_member_role(web.id, user, Role::Viewer).await.unwrap();
        user_for(&db, &person(&[])).await.unwrap();
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), Some(Role::Viewer));
        assert!(db.delete_auto_membership(web.id, "oidc-group:web").await.unwrap());
        assert_eq!(db.auto_memberships(web.id).await.unwrap().len(), 1);
    }
);

on_both_databases!(
    a_github_membership_follows_the_strongest_rule_matched_at_each_sign_in,
    |db: Database| async move {
        use jamstack_controller::auth::external::{ProvenPerson, user_for};
        use jamstack_controller::db::{ExternalIdentity, Role};
        let owner = db.insert_user("olga", None).await.unwrap().unwrap();
        let web = db.insert_team("web", owner.id).await.unwrap().unwrap();
        db.set_auto_membership(web.id, "github-org:acme", Role::Viewer)
            .await
            .unwrap();
        db.set_auto_membership(web.id, "github-team:acme/web", Role::Developer)
            .await
            .unwrap();
        let person = |sources: &[&str]| ProvenPerson {
            identity: ExternalIdentity {
                provider: "github".into(),
                subject: "9001".into(),
                login: Some("mona".into()),
                email: None,
            },
            sources: sources.iter().map(|s| s.to_string()).collect(),
            source_prefixes: &["github-"],
        };

        let user = user_for(&db, &person(&["github-org:acme"])).await.unwrap();
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), Some(Role::Viewer));
        // Joined the web team at GitHub: the stronger rule now gives the role.
        user_for(&db, &person(&["github-org:acme", "github-team:acme/web"]))
            .await
            .unwrap();
        assert_eq!(
            db.role_on_team(user, web.id).await.unwrap(),
            Some(Role::Developer)
        );
        // Left the team, still in the organization: its rule keeps them in.
        user_for(&db, &person(&["github-org:acme"])).await.unwrap();
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), Some(Role::Viewer));
        user_for(&db, &person(&[])).await.unwrap();
        assert_eq!(db.role_on_team(user, web.id).await.unwrap(), None);
    }
);

on_both_databases!(
    an_invitation_is_used_once_before_it_expires_unless_revoked_and_an_addressed_one_is_claimed_at_sign_in,
    |db: Database| async move {
        use jamstack_controller::auth::external::{ProvenPerson, user_for};
        use jamstack_controller::db::{
            Acceptance, ExternalIdentity, InvitationState, NewInvitation, Role, now_millis,
        };
        let owner = db.insert_user("olga", None).await.unwrap().unwrap();
        let web = db.insert_team("web", owner.id).await.unwrap().unwrap();
        let week = now_millis() + 7 * 86_400_000;
        let invite = |hash: &'static str, role: Role, github_login: Option<&'static str>, expires_at: i64| {
            let db = db.clone();
            async move {
                db.insert_invitation(&NewInvitation {
                    team: web.id,
                    role,
                    token_hash: hash,
                    github_login,
                    email: None,
                    invited_by: "user:1",
                    expires_at,
                })
                .await
                .unwrap()
            }
        };

        // One use: the second person is refused, and nothing changes for them.
        let open = invite("hash-open", Role::Developer, None, week).await;
        let ana = db.insert_user("ana", None).await.unwrap().unwrap();
        let bob = db.insert_user("bob", None).await.unwrap().unwrap();
        assert_eq!(db.pending_invitations(web.id).await.unwrap().len(), 1);
        assert_eq!(
            db.accept_invitation(open, ana.id).await.unwrap(),
            Acceptance::Joined {
                team: web.id,
                role: Role::Developer
            }
        );
        assert_eq!(
            db.accept_invitation(open, bob.id).await.unwrap(),
            Acceptance::Unusable
        );
        assert_eq!(db.role_on_team(bob.id, web.id).await.unwrap(), None);
        let used = db.invitation_by_token_hash("hash-open").await.unwrap().unwrap();
        assert_eq!(used.state(now_millis()), InvitationState::Used);
        assert!(db.pending_invitations(web.id).await.unwrap().is_empty());

        // An owner invited as a viewer stays owner.
        let weaker = invite("hash-weaker", Role::Viewer, None, week).await;
        assert_eq!(
            db.accept_invitation(weaker, owner.id).await.unwrap(),
            Acceptance::Joined {
                team: web.id,
                role: Role::Owner
            }
        );

        // Expired and revoked invitations are refused.
        let expired = invite("hash-expired", Role::Admin, None, now_millis() - 1).await;
        assert_eq!(
            db.accept_invitation(expired, bob.id).await.unwrap(),
            Acceptance::Unusable
        );
        let revoked = invite("hash-revoked", Role::Admin, None, week).await;
        assert!(db.revoke_invitation(web.id, revoked).await.unwrap());
        assert!(
            !db.revoke_invitation(web.id, revoked).await.unwrap(),
            "revoked once"
        );
        assert_eq!(
            db.accept_invitation(revoked, bob.id).await.unwrap(),
            Acceptance::Unusable
        );
        assert_eq!(db.role_on_team(bob.id, web.id).await.unwrap(), None);

        // A new account made from an invitation exists only if it joined.
        let for_newcomer = invite("hash-new", Role::Viewer, None, week).await;
        let (carl, joined) = db
            .accept_invitation_as_new_user(for_newcomer, "carl", "$argon2id$stand-in")
            .await
            .unwrap();
        assert_eq!(
            joined,
            Acceptance::Joined {
                team: web.id,
                role: Role::Viewer
            }
        );
        assert_eq!(
            db.role_on_team(carl.unwrap(), web.id).await.unwrap(),
            Some(Role::Viewer)
        );
        let (nobody, refused) = db
            .accept_invitation_as_new_user(for_newcomer, "dora", "$argon2id$stand-in")
            .await
            .unwrap();
        assert_eq!((nobody, refused), (None, Acceptance::Unusable));
        assert!(
            db.user_by_login("dora").await.unwrap().is_none(),
            "no account without the team"
        );

        // Addressed to a GitHub login: refused to anyone else, claimed by
        // that person's sign-in whatever the case of their login.
        let addressed = invite("hash-octo", Role::Admin, Some("OctoCat"), week).await;
        assert_eq!(
            db.accept_invitation(addressed, bob.id).await.unwrap(),
            Acceptance::AddressedToSomeoneElse
        );
        let octocat = user_for(
            &db,
            &ProvenPerson {
                identity: ExternalIdentity {
                    provider: "github".into(),
                    subject: "583231".into(),
                    login: Some("octocat".into()),
                    email: None,
                },
                sources: Vec::new(),
                source_prefixes: &["github-"],
            },
        )
        .await
        .unwrap();
        assert_eq!(db.role_on_team(octocat, web.id).await.unwrap(), Some(Role::Admin));
        let claimed = db.invitation_by_token_hash("hash-octo").await.unwrap().unwrap();
        assert_eq!(claimed.state(now_millis()), InvitationState::Used);
    }
);
