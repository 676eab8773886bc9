//! Certificates by ACME through a running controller: a real CA (pebble
//! and its DNS server, challtestsrv, on loopback with their own CA) checks
//! the controller's own listeners, HTTP-01 on its plain listener and
//! TLS-ALPN-01 on its HTTPS one (pebble is told their ports), and DNS-01
//! through an operator's hook script that publishes TXT records in
//! challtestsrv. A certificate counts once a client that trusts pebble's
//! issuing root and nothing else is served the site over it, with h2.

#[path = "../../../controller/tests/support/pebble.rs"]
pub(crate) mod pebble;

use crate::domains::{add_domain, site_manager_token, site_with};
use crate::helpers::{
    TestApp, eventually, fresh_postgres_database, spawn_controller_beside_with, spawn_controller_only_with,
};
use axum::body::Bytes;
use jamstack_controller::Config;
use jamstack_controller::acme::{AcmeSettings, ChallengeKind};
use pebble::{Pebble, PebbleOptions};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A controller getting its certificates from its own pebble.
pub(crate) struct AcmeSetup {
    pub(crate) pebble: Pebble,
    pub(crate) app: TestApp,
    /// The root that signs what pebble issues: all the test's clients trust.
    issuing_root: String,
    /// The first controller's HTTPS port: where pebble checks TLS-ALPN-01.
    tls_port: u16,
}

/// ACME settings for pebble, proven by `challenge`, looking every half
/// second for names to order.
fn acme_settings(pebble: &Pebble, challenge: ChallengeKind) -> AcmeSettings {
    let mut acme = AcmeSettings::new(pebble.directory_url.clone());
    acme.ca_root = Some(pebble.ca_root.clone());
    acme.contact_email = Some("ops@example.com".into());
    acme.challenge = challenge;
    acme.check_interval = Duration::from_millis(500);
    acme
}

/// Starts pebble, then a controller whose plain listener is where pebble
/// checks HTTP-01 and whose HTTPS listener is where it checks TLS-ALPN-01,
/// getting certificates proven by `challenge` that last `validity`.
pub(crate) async fn controller_with_acme(
    validity: Duration,
    challenge: ChallengeKind,
    configure: impl FnOnce(&mut Config, &mut AcmeSettings, &Pebble),
) -> AcmeSetup {
    let options = PebbleOptions {
        validity,
        ..PebbleOptions::default()
    };
    let (http_port, tls_port) = (options.http_port, options.tls_port);
    let pebble = Pebble::start(options).await;
    let (app, _) = spawn_controller_only_with(|config| {
        config.listen = SocketAddr::from(([127, 0, 0, 1], http_port));
        config.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], tls_port)));
        let mut acme = acme_settings(&pebble, challenge);
        configure(config, &mut acme, &pebble);
        config.acme = Some(acme);
    })
    .await;
    let issuing_root = pebble.issuing_root_pem().await;
    AcmeSetup {
        pebble,
        app,
        issuing_root,
        tls_port,
    }
}

/// What a visitor over HTTPS was answered.
pub(crate) struct Visit {
    status: u16,
    version: reqwest::Version,
    body: String,
    /// The leaf certificate the server showed, DER.
    leaf: Vec<u8>,
}

impl AcmeSetup {
    /// `GET https://<host>/` on a new connection, trusting pebble's
    /// issuing root only; an error says why the visit failed.
    async fn visit_over_https(&self, host: &str) -> Result<Visit, String> {
        self.visit_over_https_at(self.tls_port, host).await
    }

    /// [`AcmeSetup::visit_over_https`] on the HTTPS listener at `port`.
    async fn visit_over_https_at(&self, port: u16, host: &str) -> Result<Visit, String> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.issuing_root.as_bytes()).unwrap())
            .tls_info(true)
            .resolve(host, SocketAddr::from(([127, 0, 0, 1], port)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = client
            .get(format!("https://{host}:{port}/"))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let leaf = response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ok(Visit {
            status: response.status().as_u16(),
            version: response.version(),
            leaf,
            body: response.text().await.unwrap_or_default(),
        })
    }

    /// Waits until `host` is served over HTTPS with a certificate pebble
    /// issued (other than `not`), and answers that visit.
    pub(crate) async fn served_over_https(&self, host: &str, not: Option<&[u8]>) -> Visit {
        self.served_over_https_at(self.tls_port, host, not).await
    }

    /// [`AcmeSetup::served_over_https`] on the HTTPS listener at `port`.
    async fn served_over_https_at(&self, port: u16, host: &str, not: Option<&[u8]>) -> Visit {
        eventually(&format!("{host} to be served over HTTPS on :{port}"), || async {
            match self.visit_over_https_at(port, host).await {
                Ok(visit) if Some(visit.leaf.as_slice()) != not => Ok(visit),
                Ok(_) => Err("still the earlier certificate".to_owned()),
                Err(error) => Err(format!("{error}\n{}", self.pebble.logs())),
            }
        })
        .await
    }

    /// The site's domain `hostname` as the API shows it.
    async fn domain(&self, site: &str, hostname: &str) -> Value {
        let (status, domains) = self
            .app
            .api_json(self.app.http.get(self.app.api(&format!("/sites/{site}/domains"))))
            .await;
        assert_eq!(status, 200, "{domains}");
        domains
            .as_array()
            .unwrap()
            .iter()
            .find(|domain| domain["hostname"] == hostname)
            .cloned()
            .unwrap_or_else(|| panic!("{hostname} is not listed: {domains}"))
    }
}

fn db(app: &TestApp) -> &jamstack_controller::db::Database {
    &app.state
        .as_ref()
        .expect("the controller runs in this process")
        .db
}

fn not_after_of(leaf: &[u8]) -> i64 {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).expect("the leaf parses");
    parsed.validity().not_after.timestamp()
}

/// Publishes a one-page site `name` saying `text`.
pub(crate) async fn one_page_site(app: &TestApp, name: &str, text: &str) {
    let page = format!("<h1>{text}</h1>\n");
    site_with(app, name, &[("index.html", page.as_bytes())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_custom_domain_gets_a_certificate_by_http_01_and_is_served_over_https_with_h2() {
    let setup = controller_with_acme(
        Duration::from_secs(90 * 24 * 3600),
        ChallengeKind::Http01,
        |_, _, _| {},
    )
    .await;
    let app = &setup.app;
    one_page_site(app, "shop", "the shop").await;
    let started = Instant::now();
    // Added by the admin: verified at once, so its certificate is ordered.
    let (status, added) = add_domain(
        app,
        &app.admin_token,
        "shop",
        json!({"hostname": "shop.example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    // Added by a site manager: waiting for its TXT record, so not ordered.
    let token = site_manager_token(app).await;
    let (status, waiting) =
        add_domain(app, &token, "shop", json!({"hostname": "unproven.example.org"})).await;
    assert_eq!(status, 201, "{waiting}");

    let visit = setup.served_over_https("shop.example.com", None).await;
    eprintln!(
        "http-01: certificate served {:?} after the domain was added",
        started.elapsed()
    );
    assert_eq!(visit.status, 200);
    assert_eq!(visit.version, reqwest::Version::HTTP_2, "h2 by ALPN");
    assert_eq!(visit.body, "<h1>the shop</h1>\n");

    let shown = setup.domain("shop", "shop.example.com").await;
    assert_eq!(shown["certificate"]["state"], "active", "{shown}");
    assert_eq!(
        shown["certificate"]["not_after"].as_i64().unwrap() / 1000,
        not_after_of(&visit.leaf),
        "{shown}"
    );
    // The unverified name: nothing ordered, nothing served, and it says why.
    let unproven = setup.domain("shop", "unproven.example.org").await;
    assert_eq!(unproven["certificate"]["state"], "waiting_for_dns", "{unproven}");
    assert!(
        unproven["certificate"]["next_step"]
            .as_str()
            .unwrap()
            .contains("TXT record"),
        "{unproven}"
    );
    let refused = setup.visit_over_https("unproven.example.org").await;
    assert!(refused.is_err(), "an unverified name has no certificate");
    let orders = db(app).acme_orders().await.unwrap();
    let names: Vec<&str> = orders.iter().map(|order| order.hostname.as_str()).collect();
    assert_eq!(names, ["shop.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_custom_domain_gets_a_certificate_by_tls_alpn_01() {
    let setup = controller_with_acme(
        Duration::from_secs(90 * 24 * 3600),
        ChallengeKind::TlsAlpn01,
        |_, _, _| {},
    )
    .await;
    let app = &setup.app;
    one_page_site(app, "docs", "the docs").await;
    let started = Instant::now();
    let (status, added) = add_domain(
        app,
        &app.admin_token,
        "docs",
        json!({"hostname": "docs.example.org"}),
    )
    .await;
    assert_eq!(status, 201, "{added}");

    let visit = setup.served_over_https("docs.example.org", None).await;
    eprintln!(
        "tls-alpn-01: certificate served {:?} after the domain was added",
        started.elapsed()
    );
    assert_eq!(visit.status, 200);
    assert_eq!(visit.version, reqwest::Version::HTTP_2);
    assert_eq!(visit.body, "<h1>the docs</h1>\n");
    let order = db(app).acme_order("docs.example.org").await.unwrap().unwrap();
    assert_eq!(order.challenge, "tls-alpn-01");
    assert!(
        db(app).acme_alpn_challenges().await.unwrap().is_empty(),
        "the challenge certificate is taken away once the order ends"
    );
}

/// How many orders pebble took: its log says `Added order` once for each.
fn orders_placed(pebble: &Pebble) -> usize {
    std::fs::read_to_string(pebble.dir.path().join("pebble.log"))
        .unwrap_or_default()
        .matches("Added order")
        .count()
}

/// Two controllers on one PostgreSQL database sharing a secret key, both
/// getting certificates by `challenge` from one pebble, which reaches
/// only the first (its listeners are on pebble's ports): an answer the
/// second placed must be given by the first.
async fn two_controllers_with_acme(challenge: ChallengeKind) -> (AcmeSetup, TestApp) {
    let database = fresh_postgres_database().await;
    let url = database.clone();
    let setup = controller_with_acme(
        Duration::from_secs(90 * 24 * 3600),
        challenge,
        move |config, _, _| config.database_url = Some(url),
    )
    .await;
    let acme = acme_settings(&setup.pebble, challenge);
    let second = spawn_controller_beside_with(&setup.app, &database, move |config| {
        config.https_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.acme = Some(acme);
    })
    .await;
    (setup, second)
}

/// Adds a verified domain beside two controllers: one order is placed,
/// both serve the certificate within seconds without a restart; removed,
/// the certificate is gone from the database and from both, and nothing
/// is ordered again.
async fn two_controllers_order_once_serve_both_and_forget_on_removal(challenge: ChallengeKind) {
    let (setup, second) = two_controllers_with_acme(challenge).await;
    let first = &setup.app;
    let second_port = second
        .https_port
        .expect("the second controller listens for HTTPS");
    let host = "shop.example.com";
    one_page_site(first, "shop", "the shop").await;
    let (status, added) = add_domain(first, &first.admin_token, "shop", json!({"hostname": host})).await;
    assert_eq!(status, 201, "{added}");

    let on_first = setup.served_over_https(host, None).await;
    let served_at = Instant::now();
    let on_second = setup.served_over_https_at(second_port, host, None).await;
    let relayed = served_at.elapsed();
    eprintln!(
        "{}: the second controller served the certificate {relayed:?} after the first",
        challenge.as_str()
    );
    assert!(
        relayed < Duration::from_secs(10),
        "told through the relay, not found by the periodic check: {relayed:?}"
    );
    for visit in [&on_first, &on_second] {
        assert_eq!(visit.status, 200);
        assert_eq!(visit.version, reqwest::Version::HTTP_2, "h2 by ALPN");
        assert_eq!(visit.body, "<h1>the shop</h1>\n");
    }
    assert_eq!(on_first.leaf, on_second.leaf, "one certificate, served by both");
    // Both managers look again several times: nothing more is ordered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(orders_placed(&setup.pebble), 1, "{}", setup.pebble.logs());
    let order = db(first)
        .acme_order(host)
        .await
        .unwrap()
        .expect("the name is kept");
    assert_eq!((order.state.as_str(), order.held_by), ("active", None));
    assert_eq!(order.challenge, challenge.as_str());
    let shown = second.get_json("/sites/shop/domains").await;
    assert_eq!(shown[0]["certificate"]["state"], "active", "{shown}");

    // Removed through the second controller: neither offers a certificate
    // for the name any longer, and the database holds none.
    let (status, body) = second
        .api_json(
            second
                .http
                .delete(second.api(&format!("/sites/shop/domains/{host}"))),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let removed_at = Instant::now();
    for port in [setup.tls_port, second_port] {
        let refused = eventually(&format!("no certificate for {host} on :{port}"), || async {
            match setup.visit_over_https_at(port, host).await {
                Err(error) => Ok(error),
                Ok(visit) => Err(format!("still served with a certificate: {}", visit.status)),
            }
        })
        .await;
        assert!(
            refused.contains("AlertReceived"),
            "the TLS handshake is refused: {refused}"
        );
    }
    assert!(
        removed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        removed_at.elapsed()
    );
    assert_eq!(
        db(first).certificate(host).await.unwrap(),
        None,
        "the key is deleted"
    );
    assert_eq!(db(first).acme_order(host).await.unwrap(), None, "never renewed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        orders_placed(&setup.pebble),
        1,
        "nothing ordered after the removal"
    );
    assert!(setup.visit_over_https_at(second_port, host).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_database_order_a_domains_certificate_once_by_http_01_and_both_serve_it() {
    two_controllers_order_once_serve_both_and_forget_on_removal(ChallengeKind::Http01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_on_one_database_order_a_domains_certificate_once_by_tls_alpn_01_and_both_serve_it() {
    two_controllers_order_once_serve_both_and_forget_on_removal(ChallengeKind::TlsAlpn01).await;
}

/// A DNS hook in lego's exec convention that publishes TXT records in
/// challtestsrv, logging each call.
fn dns_hook_script(pebble: &Pebble) -> std::path::PathBuf {
    let dir = pebble.dir.path();
    let path = dir.join("dns-hook.sh");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
set -eu
echo "$1 $2" >> {log}
case "$1" in
  present) curl -fsS -X POST -d "{{\"host\":\"$2\",\"value\":\"$3\"}}" {url}/set-txt ;;
  cleanup) curl -fsS -X POST -d "{{\"host\":\"$2\"}}" {url}/clear-txt ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
"#,
            log = dir.join("dns-hook.log").display(),
            url = pebble.challtestsrv_url
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_wildcard_is_issued_by_dns_01_through_the_operators_hook() {
    let setup = controller_with_acme(
        Duration::from_secs(90 * 24 * 3600),
        ChallengeKind::Http01,
        |config, acme, pebble| {
            config.domain = "sites.example.net".into();
            acme.dns_hook = Some(dns_hook_script(pebble));
        },
    )
    .await;
    let app = &setup.app;
    one_page_site(app, "blog", "the blog").await;
    let started = Instant::now();

    let visit = setup.served_over_https("blog.sites.example.net", None).await;
    eprintln!(
        "dns-01: wildcard served {:?} after the site was made",
        started.elapsed()
    );
    assert_eq!(visit.status, 200);
    assert_eq!(visit.version, reqwest::Version::HTTP_2);
    assert_eq!(visit.body, "<h1>the blog</h1>\n");
    let (_, parsed) = x509_parser::parse_x509_certificate(&visit.leaf).unwrap();
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => (*dns).to_owned(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["*.sites.example.net"]);
    let calls = std::fs::read_to_string(setup.pebble.dir.path().join("dns-hook.log")).unwrap();
    assert_eq!(
        calls,
        "present _acme-challenge.sites.example.net.\ncleanup _acme-challenge.sites.example.net.\n"
    );
}

/// Records the bodies POSTed to it.
async fn start_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_without_a_restart_and_a_failed_renewal_is_notified() {
    // Certificates of 12 s are renewed at two thirds of their life, the
    // 30 days of --acme-renew-before-days being longer than all of it.
    let setup = controller_with_acme(Duration::from_secs(12), ChallengeKind::Http01, |_, _, _| {}).await;
    let app = &setup.app;
    one_page_site(app, "news", "the news").await;
    let (url, received) = start_receiver().await;
    let (status, hook) = app
        .api_json(
            app.http
                .post(app.api("/sites/news/notifications"))
                .json(&json!({"url": url, "events": ["certificate.failed"]})),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let (status, added) = add_domain(
        app,
        &app.admin_token,
        "news",
        json!({"hostname": "news.example.com"}),
    )
    .await;
    assert_eq!(status, 201, "{added}");

    let first = setup.served_over_https("news.example.com", None).await;
    let renewing = Instant::now();
    let renewed = setup
        .served_over_https("news.example.com", Some(&first.leaf))
        .await;
    eprintln!(
        "renewal: a new certificate served {:?} after the first",
        renewing.elapsed()
    );
    assert!(not_after_of(&renewed.leaf) > not_after_of(&first.leaf));
    assert_eq!(renewed.body, "<h1>the news</h1>\n");

    // The name now points where the controller is not: the next renewal
    // fails with the CA's reason, told to the site's hook and shown.
    let response = reqwest::Client::new()
        .post(format!("{}/add-a", setup.pebble.challtestsrv_url))
        .json(&json!({"host": "news.example.com.", "addresses": ["127.0.0.2"]}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let told = eventually("certificate.failed to be delivered", || async {
        let bodies = received.lock().unwrap().clone();
        bodies
            .into_iter()
            .find(|body| body["event"] == "certificate.failed")
            .ok_or_else(|| "nothing yet".to_owned())
    })
    .await;
    let certificate = &told["data"]["certificate"];
    assert_eq!(certificate["hostname"], "news.example.com", "{told}");
    assert!(
        certificate["problem_type"]
            .as_str()
            .unwrap()
            .starts_with("urn:ietf:params:acme:error:"),
        "the CA's problem type: {told}"
    );
    assert!(
        certificate["advice"].as_str().unwrap().contains("A/AAAA"),
        "{told}"
    );
    let shown = setup.domain("news", "news.example.com").await;
    assert_eq!(shown["certificate"]["state"], "failed", "{shown}");
    assert!(
        shown["certificate"]["error"]
            .as_str()
            .unwrap()
            .starts_with("news.example.com: "),
        "{shown}"
    );
    assert!(
        shown["certificate"]["next_step"]
            .as_str()
            .unwrap()
            .contains("A/AAAA"),
        "{shown}"
    );
}

#[tokio::test]
async fn acme_settings_that_cannot_work_stop_the_start_saying_which_flag_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("hook.sh");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let https = |acme: &mut AcmeSettings| acme.directory_url = "https://acme.example/dir".into();
    /// A change to good settings, whether there is an HTTPS listener, and
    /// what the refusal says.
    type Case = (Box<dyn Fn(&mut AcmeSettings)>, bool, &'static str);
    let cases: Vec<Case> = vec![
        (
            Box::new(|acme| acme.directory_url = "http://acme.example/dir".into()),
            false,
            "--acme-directory `http://acme.example/dir` is not an https:// URL",
        ),
        (
            Box::new(move |acme| {
                https(acme);
                acme.contact_email = Some("ops at example".into());
            }),
            false,
            "--acme-email `ops at example` is not an e-mail address",
        ),
        (
            Box::new(move |acme| {
                https(acme);
                acme.challenge = ChallengeKind::TlsAlpn01;
            }),
            false,
            "--acme-challenge tls-alpn-01 is answered by the HTTPS listener; set --https-listen",
        ),
        (
            Box::new(move |acme| {
                https(acme);
                acme.dns_hook = Some(not_executable.clone());
            }),
            false,
            "is not an executable file",
        ),
        (
            Box::new(move |acme| {
                https(acme);
                acme.ca_root = Some("/nonexistent/pebble.pem".into());
            }),
            true,
            "reading --acme-ca-root /nonexistent/pebble.pem",
        ),
    ];
    for (change, https_listener, expected) in cases {
        let mut config = Config::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        if https_listener {
            config.https_listen = Some("127.0.0.1:0".parse().unwrap());
        }
        let mut acme = AcmeSettings::new("");
        change(&mut acme);
        config.acme = Some(acme);
        let error = jamstack_controller::Application::build(config)
            .await
            .expect_err("the start is refused");
        let error = format!("{error:#}");
        assert!(error.contains(expected), "{error}");
    }
}
