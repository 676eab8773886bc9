//! Custom domains in the store, on both databases: one site per hostname,
//! one primary per site, verification recorded, background checks claimed
//! once, and only verified hostnames offered to the edge and to
//! certificates. `./scripts/start-postgres.sh` starts PostgreSQL.

use jamstack_controller::db::{
    AddRefused, CertificateSource, Database, NewDomain, NewSite, Site, VerifiedBy, VerifiedHostname,
};
use std::future::Future;

const DEFAULT_POSTGRES: &str = "postgres://jamstack:jamstack@127.0.0.1:5432/postgres";

async fn sqlite() -> (Database, Box<dyn std::any::Any>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sqlite(&dir.path().join("store.db")).await.unwrap();
    (db, Box::new(dir))
}

async fn postgres() -> (Database, Box<dyn std::any::Any>) {
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
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("JAMSTACK_TEST_POSTGRES_URL must end in /<database>"),
    };
    (Database::connect(&url).await.unwrap(), Box::new(()))
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
        repo_url: None,
        github_repo: None,
        production_branch: "main".into(),
        production_branch_follows_default: false,
        settings: Default::default(),
    })
    .await
    .unwrap()
    .unwrap()
}

fn new_domain(site: &Site, hostname: &'static str) -> NewDomain<'static> {
    NewDomain {
        site_id: site.id,
        hostname,
        verification_token: "token-of-the-claim",
        primary: false,
        verified_by: None,
        first_check_at: 0,
    }
}

/// The hostnames of a site, primary first, with the primary flag.
async fn hostnames(db: &Database, site: &Site) -> Vec<(String, bool)> {
    db.domains_of_site(site.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.hostname, d.is_primary))
        .collect()
}

on_both_databases!(
    a_hostname_belongs_to_one_site_and_the_first_added_is_primary,
    |db: Database| async move {
        let blog = site(&db, "blog").await;
        let shop = site(&db, "shop").await;
        let first = db
            .insert_domain(&new_domain(&blog, "example.com"))
            .await
            .unwrap()
            .unwrap();
        assert!(first.is_primary, "the first domain of a site is its primary");
        assert!(!first.is_verified());
        let alias = db
            .insert_domain(&new_domain(&blog, "www.example.com"))
            .await
            .unwrap()
            .unwrap();
        assert!(!alias.is_primary);

        // Another site cannot claim it, verified or not.
        assert_eq!(
            db.insert_domain(&new_domain(&shop, "www.example.com"))
                .await
                .unwrap(),
            Err(AddRefused::HeldByAnotherSite)
        );
        assert!(matches!(
            db.insert_domain(&new_domain(&blog, "example.com")).await.unwrap(),
            Err(AddRefused::AlreadyThisSites(_))
        ));
        // The site's first domain is primary whatever other sites have.
        let shops = db
            .insert_domain(&new_domain(&shop, "shop.example.org"))
            .await
            .unwrap()
            .unwrap();
        assert!(shops.is_primary);

        // `--primary` switches, leaving exactly one.
        let switched = db
            .insert_domain(&NewDomain {
                primary: true,
                ..new_domain(&blog, "blog.example.net")
            })
            .await
            .unwrap()
            .unwrap();
        assert!(switched.is_primary);
        assert_eq!(
            hostnames(&db, &blog).await,
            [
                ("blog.example.net".to_owned(), true),
                ("example.com".to_owned(), false),
                ("www.example.com".to_owned(), false),
            ]
        );
        assert!(db.set_primary_domain(blog.id, "www.example.com").await.unwrap());
        assert!(
            !db.set_primary_domain(blog.id, "shop.example.org").await.unwrap(),
            "not this site's"
        );
        assert_eq!(
            hostnames(&db, &blog).await[0],
            ("www.example.com".to_owned(), true)
        );

        // Removing the primary makes the oldest remaining one primary.
        let removed = db
            .delete_domain(blog.id, "www.example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(removed.is_primary);
        assert_eq!(
            hostnames(&db, &blog).await,
            [
                ("example.com".to_owned(), true),
                ("blog.example.net".to_owned(), false),
            ]
        );
        assert_eq!(
            db.delete_domain(shop.id, "example.com").await.unwrap(),
            None,
            "not shop's to remove"
        );
        // Once removed, another site may claim it.
        assert!(
            db.insert_domain(&new_domain(&shop, "www.example.com"))
                .await
                .unwrap()
                .is_ok()
        );
    }
);

on_both_databases!(
    only_verified_hostnames_are_served_or_certified,
    |db: Database| async move {
        let blog = site(&db, "blog").await;
        let shop = site(&db, "shop").await;
        db.insert_domain(&new_domain(&blog, "example.com"))
            .await
            .unwrap()
            .unwrap();
        let www = db
            .insert_domain(&new_domain(&blog, "www.example.com"))
            .await
            .unwrap()
            .unwrap();
        db.insert_domain(&NewDomain {
            verified_by: Some(VerifiedBy::Admin),
            ..new_domain(&shop, "shop.example.org")
        })
        .await
        .unwrap()
        .unwrap();
        let verified = |hostname: &str, site: &Site, primary: bool| VerifiedHostname {
            hostname: hostname.into(),
            site_id: site.id,
            site_name: site.name.clone(),
            primary,
        };
        assert_eq!(
            db.verified_hostnames().await.unwrap(),
            [verified("shop.example.org", &shop, true)],
            "added by an admin: verified at once; the others wait"
        );

        db.mark_domain_verified(www.id, VerifiedBy::Dns).await.unwrap();
        assert_eq!(
            db.verified_hostnames().await.unwrap(),
            [
                verified("shop.example.org", &shop, true),
                verified("www.example.com", &blog, false),
            ]
        );
        // The edge also knows the unverified claims, to serve them nothing.
        let claimed: Vec<(String, bool)> = db
            .claimed_hostnames()
            .await
            .unwrap()
            .into_iter()
            .map(|(v, verified)| (v.hostname, verified))
            .collect();
        assert_eq!(
            claimed,
            [
                ("example.com".to_owned(), false),
                ("shop.example.org".to_owned(), true),
                ("www.example.com".to_owned(), true),
            ]
        );
        let www = db.domain_by_hostname("www.example.com").await.unwrap().unwrap();
        assert_eq!(www.verified_by, Some(VerifiedBy::Dns));
        assert_eq!(www.next_check_at, None, "no more background checks");
        assert_eq!(www.last_error, None);
    }
);

on_both_databases!(
    a_due_check_is_claimed_once_and_a_failure_is_kept_for_the_user,
    |db: Database| async move {
        let blog = site(&db, "blog").await;
        let waiting = db
            .insert_domain(&NewDomain {
                first_check_at: 1_000,
                ..new_domain(&blog, "example.com")
            })
            .await
            .unwrap()
            .unwrap();
        db.insert_domain(&NewDomain {
            first_check_at: 5_000,
            ..new_domain(&blog, "later.example.com")
        })
        .await
        .unwrap()
        .unwrap();
        assert!(
            db.claim_due_domain_checks(999, 10_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = db.claim_due_domain_checks(1_000, 10_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, waiting.id);
        assert!(
            db.claim_due_domain_checks(2_000, 10_000, 10)
                .await
                .unwrap()
                .is_empty(),
            "held by the controller checking it"
        );

        db.record_failed_domain_check(waiting.id, "no TXT record found", Some(20_000))
            .await
            .unwrap();
        let after = db.domain_by_hostname("example.com").await.unwrap().unwrap();
        assert_eq!(after.last_error.as_deref(), Some("no TXT record found"));
        assert_eq!(after.check_attempts, 1);
        assert_eq!(after.next_check_at, Some(20_000));
        assert!(after.last_checked_at.is_some());

        // Giving up: no next check, and nothing is claimed any more.
        db.record_failed_domain_check(waiting.id, "still nothing", None)
            .await
            .unwrap();
        let given_up = db.domain_by_hostname("example.com").await.unwrap().unwrap();
        assert_eq!(given_up.next_check_at, None);
        assert_eq!(given_up.check_attempts, 2);
        let due: Vec<String> = db
            .claim_due_domain_checks(i64::MAX - 1, i64::MAX, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.hostname)
            .collect();
        assert_eq!(due, ["later.example.com"]);
    }
);

on_both_databases!(a_removed_domain_is_offered_no_more, |db: Database| async move {
    let blog = site(&db, "blog").await;
    db.insert_domain(&NewDomain {
        verified_by: Some(VerifiedBy::Admin),
        ..new_domain(&blog, "example.com")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(db.verified_hostnames().await.unwrap().len(), 1);
    db.delete_domain(blog.id, "example.com").await.unwrap().unwrap();
    assert!(db.verified_hostnames().await.unwrap().is_empty());
    assert_eq!(db.domain_by_hostname("example.com").await.unwrap(), None);
});

/// Stores a certificate row for `hostname` from `source` (the store takes
/// what it is given; the checks are the TLS module's).
async fn certificate(db: &Database, hostname: &str, source: CertificateSource) {
    db.put_certificate(hostname, "chain", "sealed key", 0, 1, source)
        .await
        .unwrap();
}

async fn certificate_names(db: &Database) -> Vec<(String, CertificateSource)> {
    db.certificates()
        .await
        .unwrap()
        .into_iter()
        .map(|stored| (stored.hostname, stored.source))
        .collect()
}

on_both_databases!(
    removing_a_domain_deletes_its_certificates_and_stops_its_renewal,
    |db: Database| async move {
        let blog = site(&db, "blog").await;
        let shop = site(&db, "shop").await;
        for (site, hostname) in [
            (&blog, "www.example.com"),
            (&blog, "blog.example.com"),
            (&blog, "example.org"),
            (&shop, "shop.example.net"),
        ] {
            db.insert_domain(&NewDomain {
                verified_by: Some(VerifiedBy::Admin),
                ..new_domain(site, hostname)
            })
            .await
            .unwrap()
            .unwrap();
        }
        db.want_acme_certificate("www.example.com", "http-01")
            .await
            .unwrap();
        certificate(&db, "www.example.com", CertificateSource::Acme).await;
        certificate(&db, "*.example.com", CertificateSource::Uploaded).await;
        certificate(&db, "example.org", CertificateSource::Uploaded).await;
        certificate(&db, "*.example.net", CertificateSource::Uploaded).await;
        certificate(&db, "unrelated.example.edu", CertificateSource::Acme).await;

        // Its order and its ACME certificate go; the uploaded wildcard
        // still serves blog.example.com, so it stays.
        db.delete_domain(blog.id, "www.example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.delete_domain_certificates("www.example.com").await.unwrap(),
            ["www.example.com"]
        );
        assert_eq!(
            db.acme_order("www.example.com").await.unwrap(),
            None,
            "never renewed"
        );
        assert_eq!(
            certificate_names(&db).await,
            [
                ("*.example.com".to_owned(), CertificateSource::Uploaded),
                ("*.example.net".to_owned(), CertificateSource::Uploaded),
                ("example.org".to_owned(), CertificateSource::Uploaded),
                ("unrelated.example.edu".to_owned(), CertificateSource::Acme),
            ]
        );
        // The last name under the wildcard: the wildcard goes with it.
        db.delete_domain(blog.id, "blog.example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.delete_domain_certificates("blog.example.com").await.unwrap(),
            ["*.example.com"]
        );
        // An uploaded certificate of its own name goes with the domain.
        db.delete_domain(blog.id, "example.org").await.unwrap().unwrap();
        assert_eq!(
            db.delete_domain_certificates("example.org").await.unwrap(),
            ["example.org"]
        );
        // Another site's domain under an uploaded wildcard keeps it,
        // whoever removes a name beside it.
        db.insert_domain(&new_domain(&blog, "old.example.net"))
            .await
            .unwrap()
            .unwrap();
        db.delete_domain(blog.id, "old.example.net")
            .await
            .unwrap()
            .unwrap();
        assert!(
            db.delete_domain_certificates("old.example.net")
                .await
                .unwrap()
                .is_empty(),
            "shop.example.net is still served by *.example.net"
        );
        // A name two labels down is not served by it.
        db.insert_domain(&new_domain(&blog, "a.b.example.net"))
            .await
            .unwrap()
            .unwrap();
        db.delete_domain(shop.id, "shop.example.net")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.delete_domain_certificates("shop.example.net").await.unwrap(),
            ["*.example.net"]
        );
        assert_eq!(
            certificate_names(&db).await,
            [("unrelated.example.edu".to_owned(), CertificateSource::Acme)]
        );
        // A name added again before the cleanup keeps its uploaded one;
        // only ACME's would go, to be ordered afresh.
        db.insert_domain(&new_domain(&shop, "again.example.edu"))
            .await
            .unwrap()
            .unwrap();
        certificate(&db, "again.example.edu", CertificateSource::Uploaded).await;
        assert!(
            db.delete_domain_certificates("again.example.edu")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(db.delete_acme_certificate("unrelated.example.edu").await.unwrap());
        assert!(
            !db.delete_acme_certificate("again.example.edu").await.unwrap(),
            "uploaded stays"
        );
    }
);
