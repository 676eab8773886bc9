//! The certificate store against both databases: what an upload is
//! checked for, that keys are sealed at rest, that the resolver picks by
//! name (exact, wildcard, none), replacement and removal, ACME HTTP-01
//! answers and sites' HTTPS settings. `./scripts/start-postgres.sh` starts
//! the PostgreSQL server.

use jamstack_controller::db::{CertificateSource, Database, NewSite, SiteTransport};
use jamstack_controller::secrets::SecretBox;
use jamstack_controller::tls::certificate::{CertificateError, check};
use jamstack_controller::tls::{CertificateStore, Certificates};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::sync::Arc;

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

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let (db, _keep) = sqlite().await;
                ($check)(db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                let (db, _keep) = postgres().await;
                ($check)(db).await;
            }
        }
    };
}

/// A test certificate authority.
struct TestCa {
    certificate: rcgen::Certificate,
    params: CertificateParams,
    key: KeyPair,
}

impl TestCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "Test CA");
        TestCa {
            certificate: params.self_signed(&key).unwrap(),
            params,
            key,
        }
    }

    /// A leaf for `names`, valid from `from` to `until` (years), as (chain
    /// PEM, key PEM).
    fn issue_for_years(&self, names: &[&str], from: i32, until: i32) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let leaf = params
            .signed_by(&key, &rcgen::Issuer::from_params(&self.params, &self.key))
            .unwrap();
        (
            format!("{}{}", leaf.pem(), self.certificate.pem()),
            key.serialize_pem(),
        )
    }

    fn issue(&self, names: &[&str]) -> (String, String) {
        self.issue_for_years(names, 2024, 2090)
    }
}

fn now() -> i64 {
    jamstack_controller::db::now_millis()
}

fn service(db: &Database) -> Certificates {
    Certificates {
        store: Arc::new(CertificateStore::new("sites.example.test")),
        db: db.clone(),
        secrets: Arc::new(SecretBox::new([7; 32])),
        events: Default::default(),
    }
}

/// Which stored certificate the resolver hands a ClientHello for `name`,
/// by the first DNS name it covers.
fn served_for(store: &CertificateStore, name: Option<&str>) -> Option<String> {
    let certified = store.certificate_for(name)?;
    let leaf = certified.end_entity_cert().unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    Some(format!("{:?}", san.value.general_names[0]))
}

#[test]
fn an_upload_is_refused_saying_what_is_wrong() {
    let ca = TestCa::new();
    let (chain, key) = ca.issue(&["www.example.test"]);
    let (_, other_key) = ca.issue(&["www.example.test"]);
    assert!(check("www.example.test", &chain, &key, now()).is_ok());
    assert!(check("WWW.example.test.", &chain, &key, now()).is_ok());
    assert_eq!(
        check("www.example.test", &chain, &other_key, now()).unwrap_err(),
        CertificateError::KeyMismatch
    );
    let not_covered = check("blog.example.test", &chain, &key, now()).unwrap_err();
    assert!(
        not_covered
            .to_string()
            .contains("does not cover `blog.example.test`")
            && not_covered.to_string().contains("www.example.test"),
        "{not_covered}"
    );
    let (old_chain, old_key) = ca.issue_for_years(&["www.example.test"], 2019, 2020);
    assert!(matches!(
        check("www.example.test", &old_chain, &old_key, now()).unwrap_err(),
        CertificateError::Expired(_)
    ));
    assert_eq!(
        check("www.example.test", "no pem here", &key, now()).unwrap_err(),
        CertificateError::NoCertificate
    );
    assert!(matches!(
        check("www.example.test", &chain, "-----BEGIN NOTHING-----\n", now()).unwrap_err(),
        CertificateError::NoKey(_)
    ));
    assert!(matches!(
        check("a.*.example.test", &chain, &key, now()).unwrap_err(),
        CertificateError::BadHostname(_)
    ));
    // A wildcard certificate may be stored for the wildcard or a name it covers.
    let (wildcard, wildcard_key) = ca.issue(&["*.example.test"]);
    assert!(check("*.example.test", &wildcard, &wildcard_key, now()).is_ok());
    assert!(check("blog.example.test", &wildcard, &wildcard_key, now()).is_ok());
    assert!(check("a.blog.example.test", &wildcard, &wildcard_key, now()).is_err());
}

on_both_databases!(
    certificates_are_stored_with_sealed_keys_and_picked_by_name,
    |db: Database| async move {
        let ca = TestCa::new();
        let certificates = service(&db);
        for (hostname, names) in [
            ("*.sites.example.test", &["*.sites.example.test"][..]),
            ("www.example.test", &["www.example.test"][..]),
            ("*.example.test", &["*.example.test"][..]),
        ] {
            let (chain, key) = ca.issue(names);
            let checked = check(hostname, &chain, &key, now()).unwrap();
            certificates
                .put(&checked, &chain, &key, CertificateSource::Uploaded)
                .await
                .unwrap();
        }
        let stored = db.certificates().await.unwrap();
        assert_eq!(stored.len(), 3);
        for row in &stored {
            assert!(
                !row.key_sealed.contains("PRIVATE KEY"),
                "{} is stored in clear",
                row.hostname
            );
            assert!(row.not_after > now() && row.not_before < now());
            assert_eq!(row.source, CertificateSource::Uploaded);
        }
        let store = &certificates.store;
        let named = |name| served_for(store, name);
        assert_eq!(
            named(Some("www.example.test")).unwrap(),
            "DNSName(\"www.example.test\")"
        );
        assert_eq!(
            named(Some("WWW.Example.test")).unwrap(),
            "DNSName(\"www.example.test\")"
        );
        assert_eq!(
            named(Some("blog.example.test")).unwrap(),
            "DNSName(\"*.example.test\")"
        );
        assert_eq!(
            named(Some("blog.sites.example.test")).unwrap(),
            "DNSName(\"*.sites.example.test\")"
        );
        // Without a name (an address), the platform wildcard; unknown names none.
        assert_eq!(named(None).unwrap(), "DNSName(\"*.sites.example.test\")");
        assert_eq!(named(Some("a.b.example.test")), None);
        assert_eq!(named(Some("example.org")), None);
        let mut expiries = store.expiries();
        expiries.sort();
        assert_eq!(expiries.len(), 3);
        assert_eq!(expiries[0].0, "*.example.test");

        // Another controller (another store on the same database and key)
        // loads the same certificates.
        let other = CertificateStore::new("sites.example.test");
        other.reload(&db, &certificates.secrets).await.unwrap();
        assert!(other.certificate_for(Some("www.example.test")).is_some());
        // With another key it serves none of them, and says why in the log.
        let wrong_key = CertificateStore::new("sites.example.test");
        wrong_key.reload(&db, &SecretBox::new([8; 32])).await.unwrap();
        assert!(wrong_key.certificate_for(Some("www.example.test")).is_none());
    }
);

on_both_databases!(
    a_replaced_certificate_is_served_and_a_removed_one_is_not,
    |db: Database| async move {
        let ca = TestCa::new();
        let certificates = service(&db);
        let (first, first_key) = ca.issue_for_years(&["www.example.test"], 2024, 2080);
        let checked = check("www.example.test", &first, &first_key, now()).unwrap();
        certificates
            .put(&checked, &first, &first_key, CertificateSource::Uploaded)
            .await
            .unwrap();
        let before = certificates
            .store
            .certificate_for(Some("www.example.test"))
            .unwrap();

        // A second store stands for another controller that has loaded the
        // first certificate and hears of no change.
        let elsewhere = CertificateStore::new("sites.example.test");
        elsewhere.reload(&db, &certificates.secrets).await.unwrap();

        let (second, second_key) = ca.issue_for_years(&["www.example.test"], 2024, 2085);
        let checked = check("www.example.test", &second, &second_key, now()).unwrap();
        certificates
            .put(&checked, &second, &second_key, CertificateSource::Acme)
            .await
            .unwrap();
        let after = certificates
            .store
            .certificate_for(Some("www.example.test"))
            .unwrap();
        assert_ne!(
            before.end_entity_cert().unwrap(),
            after.end_entity_cert().unwrap()
        );
        let rows = db.certificates().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].source, CertificateSource::Acme);
        assert_eq!(rows[0].not_after, checked.not_after);

        // Its periodic check finds the change by itself.
        elsewhere
            .reload_if_changed(&db, &certificates.secrets)
            .await
            .unwrap();
        assert_eq!(
            elsewhere
                .certificate_for(Some("www.example.test"))
                .unwrap()
                .end_entity_cert()
                .unwrap(),
            after.end_entity_cert().unwrap()
        );

        assert!(certificates.remove("www.example.test").await.unwrap());
        assert!(!certificates.remove("www.example.test").await.unwrap());
        assert!(
            certificates
                .store
                .certificate_for(Some("www.example.test"))
                .is_none()
        );
        elsewhere
            .reload_if_changed(&db, &certificates.secrets)
            .await
            .unwrap();
        assert!(elsewhere.certificate_for(Some("www.example.test")).is_none());
    }
);

on_both_databases!(
    acme_http_challenges_are_answered_until_they_expire,
    |db: Database| async move {
        db.put_acme_http_challenge("tok-1", "tok-1.thumb", now() + 60_000)
            .await
            .unwrap();
        db.put_acme_http_challenge("tok-old", "tok-old.thumb", now() - 1)
            .await
            .unwrap();
        assert_eq!(
            db.acme_http_challenge("tok-1").await.unwrap().as_deref(),
            Some("tok-1.thumb")
        );
        assert_eq!(db.acme_http_challenge("tok-old").await.unwrap(), None);
        assert_eq!(db.acme_http_challenge("nothing").await.unwrap(), None);
        db.delete_acme_http_challenge("tok-1").await.unwrap();
        assert_eq!(db.acme_http_challenge("tok-1").await.unwrap(), None);
    }
);

on_both_databases!(
    a_sites_https_settings_default_to_redirect_without_hsts,
    |db: Database| async move {
        let site = db
            .insert_site(&NewSite {
                name: "blog".into(),
                repo_url: Some("/repos/blog".into()),
                github_repo: None,
                production_branch: "main".into(),
                production_branch_follows_default: false,
                settings: Default::default(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            db.site_transport(site.id).await.unwrap(),
            SiteTransport::default()
        );
        assert!(SiteTransport::default().https_redirect);
        let wanted = SiteTransport {
            https_redirect: false,
            hsts_max_age_seconds: 31_536_000,
            hsts_include_subdomains: true,
            hsts_preload: true,
        };
        db.set_site_transport(site.id, &wanted).await.unwrap();
        assert_eq!(db.site_transport(site.id).await.unwrap(), wanted);
    }
);
