//! Certificates from a real ACME CA (Debian's pebble, started per test on
//! loopback by `support/pebble.rs`): HTTP-01 and TLS-ALPN-01 answered by
//! small servers standing where the controller's listeners will, DNS-01
//! through a hook script that publishes TXT records in pebble's DNS
//! server, and the manager that claims, issues, stores and renews. An
//! issued certificate counts only once a TLS client trusting pebble's root
//! alone accepts it for the name.

#[path = "support/pebble.rs"]
mod pebble;

use jamstack_controller::acme::manager::{AcmeManager, CertificateSink, RenewalFailureListener, Responders};
use jamstack_controller::acme::{
    AcmeClient, AcmeFailure, AcmeSettings, ChallengeAnswer, ChallengeKind, ChallengeResponder, DnsHook,
    IssuedCertificate,
};
use jamstack_controller::db::{AcmeOrder, Database};
use jamstack_controller::metrics::Metrics;
use jamstack_controller::secrets::SecretBox;
use pebble::{Pebble, PebbleOptions};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Answers HTTP-01 on pebble's `httpPort` and TLS-ALPN-01 on its
/// `tlsPort`, from what [`ChallengeResponder::present`] was given.
#[derive(Default, Clone)]
struct TestResponder {
    tokens: Arc<Mutex<HashMap<String, String>>>,
    alpn: Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>,
    presented: Arc<Mutex<Vec<String>>>,
    cleaned: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl ChallengeResponder for TestResponder {
    async fn present(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        self.presented.lock().unwrap().push(format!("{answer:?}"));
        match answer {
            ChallengeAnswer::Http01 {
                token,
                key_authorization,
            } => {
                self.tokens
                    .lock()
                    .unwrap()
                    .insert(token.clone(), key_authorization.clone());
            }
            ChallengeAnswer::TlsAlpn01 {
                hostname,
                certificate_der,
                private_key_der,
            } => {
                let key = provider()
                    .key_provider
                    .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                        private_key_der.clone(),
                    )))
                    .map_err(|e| e.to_string())?;
                let certified = CertifiedKey::new(vec![CertificateDer::from(certificate_der.clone())], key);
                self.alpn
                    .lock()
                    .unwrap()
                    .insert(hostname.clone(), Arc::new(certified));
            }
            ChallengeAnswer::Dns01 { .. } => return Err("dns-01 is the hook's".into()),
        }
        Ok(())
    }

    async fn clean_up(&self, answer: &ChallengeAnswer) -> Result<(), String> {
        self.cleaned.lock().unwrap().push(format!("{answer:?}"));
        match answer {
            ChallengeAnswer::Http01 { token, .. } => {
                self.tokens.lock().unwrap().remove(token);
            }
            ChallengeAnswer::TlsAlpn01 { hostname, .. } => {
                self.alpn.lock().unwrap().remove(hostname);
            }
            ChallengeAnswer::Dns01 { .. } => {}
        }
        Ok(())
    }
}

#[derive(Debug)]
struct AlpnResolver(Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>);

impl ResolvesServerCert for AlpnResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let asks_acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == jamstack_controller::acme::ACME_TLS_ALPN));
        if !asks_acme {
            return None;
        }
        self.0.lock().unwrap().get(hello.server_name()?).cloned()
    }
}

impl TestResponder {
    /// Serves the answers on pebble's ports until the test ends.
    fn serve(&self, options: &PebbleOptions) {
        let http = std::net::TcpListener::bind(("127.0.0.1", options.http_port)).unwrap();
        http.set_nonblocking(true).unwrap();
        let tokens = self.tokens.clone();
        let app = axum::Router::new().route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(move |axum::extract::Path(token): axum::extract::Path<String>| {
                let answer = tokens.lock().unwrap().get(&token).cloned();
                async move { answer.ok_or(axum::http::StatusCode::NOT_FOUND) }
            }),
        );
        tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(http).unwrap();
            axum::serve(listener, app).await.unwrap();
        });

        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(AlpnResolver(self.alpn.clone())));
        config.alpn_protocols = vec![jamstack_controller::acme::ACME_TLS_ALPN.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let tls = std::net::TcpListener::bind(("127.0.0.1", options.tls_port)).unwrap();
        tls.set_nonblocking(true).unwrap();
        tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(tls).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // The CA only needs the handshake.
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
    }
}

/// Serves `certificate` over TLS and connects as a client that trusts
/// pebble's issuing root and nothing else, asking for `hostname`; answers
/// the leaf the client was shown.
async fn handshake_trusting_only_pebble(
    certificate: &IssuedCertificate,
    hostname: &str,
    pebble_root: &str,
) -> Vec<u8> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificate.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(certificate.private_key_pem.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        if let Ok(mut tls) = acceptor.accept(stream).await {
            let _ = tls.write_all(b"hello").await;
            let _ = tls.shutdown().await;
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(pebble_root.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from(hostname.to_owned()).unwrap(), stream)
        .await
        .unwrap_or_else(|e| {
            panic!("a client trusting only pebble's root refused the certificate for {hostname}: {e}")
        });
    let mut said = Vec::new();
    tls.read_to_end(&mut said).await.unwrap();
    assert_eq!(said, b"hello");
    let (_, connection) = tls.get_ref();
    connection.peer_certificates().unwrap()[0].to_vec()
}

struct Setup {
    pebble: Pebble,
    options_http_port: u16,
    responder: TestResponder,
    db: Database,
    secrets: Arc<SecretBox>,
    settings: AcmeSettings,
    _dir: tempfile::TempDir,
}

async fn setup(validity: Duration) -> Setup {
    let options = PebbleOptions {
        validity,
        ..PebbleOptions::default()
    };
    let responder = TestResponder::default();
    responder.serve(&options);
    let http_port = options.http_port;
    let pebble = Pebble::start(options).await;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_sqlite(&dir.path().join("store.db")).await.unwrap();
    let mut settings = AcmeSettings::new(pebble.directory_url.clone());
    settings.ca_root = Some(pebble.ca_root.clone());
    settings.contact_email = Some("ops@example.com".into());
    Setup {
        pebble,
        options_http_port: http_port,
        responder,
        db,
        secrets: Arc::new(SecretBox::new([7; 32])),
        settings,
        _dir: dir,
    }
}

impl Setup {
    async fn client(&self) -> AcmeClient {
        AcmeClient::load_or_register(&self.db, &self.secrets, &self.settings)
            .await
            .unwrap_or_else(|e| panic!("registering at pebble failed: {e:#}\n{}", self.pebble.logs()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_gets_a_certificate_by_http_01() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let client = setup.client().await;
    let names = vec!["shop.example.com".to_owned()];
    let issued = client
        .issue(&names, ChallengeKind::Http01, &setup.responder)
        .await
        .unwrap_or_else(|e| panic!("issuing by http-01 failed: {e}\n{}", setup.pebble.logs()));

    let root = setup.pebble.issuing_root_pem().await;
    let leaf = handshake_trusting_only_pebble(&issued, "shop.example.com", &root).await;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(parsed.validity().not_after.timestamp() * 1000, issued.not_after);
    assert!(issued.not_after - issued.not_before > 80 * 24 * 3600 * 1000);
    assert!(issued.private_key_pem.contains("BEGIN PRIVATE KEY"));
    // Presented once, cleaned up once, nothing left served.
    assert_eq!(setup.responder.presented.lock().unwrap().len(), 1);
    assert_eq!(setup.responder.cleaned.lock().unwrap().len(), 1);
    assert!(setup.responder.tokens.lock().unwrap().is_empty());
    assert_ne!(setup.options_http_port, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_domain_gets_a_certificate_by_tls_alpn_01() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let client = setup.client().await;
    let names = vec!["docs.example.org".to_owned()];
    let issued = client
        .issue(&names, ChallengeKind::TlsAlpn01, &setup.responder)
        .await
        .unwrap_or_else(|e| panic!("issuing by tls-alpn-01 failed: {e}\n{}", setup.pebble.logs()));

    let root = setup.pebble.issuing_root_pem().await;
    handshake_trusting_only_pebble(&issued, "docs.example.org", &root).await;
    let presented = setup.responder.presented.lock().unwrap().clone();
    assert_eq!(presented, vec!["tls-alpn-01 for docs.example.org".to_owned()]);
    assert!(
        setup.responder.alpn.lock().unwrap().is_empty(),
        "the challenge certificate is taken away"
    );
}

/// A hook in the exec-provider convention that publishes TXT records in
/// pebble's DNS server (challtestsrv), logging each call.
fn dns_hook_script(dir: &std::path::Path, challtestsrv_url: &str) -> std::path::PathBuf {
    let path = dir.join("dns-hook.sh");
    let log = dir.join("dns-hook.log");
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
            log = log.display(),
            url = challtestsrv_url
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_wildcard_is_issued_by_dns_01_through_the_hook() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let client = setup.client().await;
    let hook = DnsHook::new(dns_hook_script(
        setup.pebble.dir.path(),
        &setup.pebble.challtestsrv_url,
    ));
    let names = vec!["*.sites.example.net".to_owned()];
    let issued = client
        .issue(&names, ChallengeKind::Dns01, &hook)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "issuing the wildcard by dns-01 failed: {e}\n{}",
                setup.pebble.logs()
            )
        });

    let root = setup.pebble.issuing_root_pem().await;
    // One certificate serves previews, branch deploys and permalinks alike.
    handshake_trusting_only_pebble(&issued, "deploy-preview-7--blog.sites.example.net", &root).await;
    handshake_trusting_only_pebble(&issued, "blog.sites.example.net", &root).await;
    let calls = std::fs::read_to_string(setup.pebble.dir.path().join("dns-hook.log")).unwrap();
    assert_eq!(
        calls,
        "present _acme-challenge.sites.example.net.\ncleanup _acme-challenge.sites.example.net.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dns_hook_says_what_it_printed() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let client = setup.client().await;
    let path = setup.pebble.dir.path().join("broken-hook.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\necho \"zone example.net: API token expired\" >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();

    let failure = client
        .issue(
            &["*.example.net".to_owned()],
            ChallengeKind::Dns01,
            &DnsHook::new(path),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.problem_type, "client");
    assert!(
        failure.detail.contains("present _acme-challenge.example.net."),
        "{failure}"
    );
    assert!(failure.detail.contains("API token expired"), "{failure}");
    assert!(failure.detail.contains("exit status: 3"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_whose_answer_is_missing_fails_with_the_cas_reason() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let client = setup.client().await;
    /// Says it presented, but serves nothing.
    struct Forgetful;
    #[async_trait::async_trait]
    impl ChallengeResponder for Forgetful {
        async fn present(&self, _: &ChallengeAnswer) -> Result<(), String> {
            Ok(())
        }
        async fn clean_up(&self, _: &ChallengeAnswer) -> Result<(), String> {
            Ok(())
        }
    }
    let failure = client
        .issue(
            &["lost.example.com".to_owned()],
            ChallengeKind::Http01,
            &Forgetful,
        )
        .await
        .unwrap_err();
    assert!(
        failure.problem_type.starts_with("urn:ietf:params:acme:error:"),
        "the CA's problem type: {failure}"
    );
    assert!(failure.detail.starts_with("lost.example.com: "), "{failure}");
    assert!(failure.advice().contains("A/AAAA"), "{}", failure.advice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_is_registered_once_and_kept_sealed() {
    let setup = setup(Duration::from_secs(90 * 24 * 3600)).await;
    let first = setup.client().await;
    let again = setup.client().await;
    assert_eq!(first.account_id(), again.account_id());
    let sealed = setup
        .db
        .acme_account(&setup.settings.directory_url)
        .await
        .unwrap()
        .unwrap();
    assert!(sealed.starts_with("v1:"), "sealed like other secrets");
    assert!(!sealed.contains("key_pkcs8"), "no credential in clear");
    // Another controller key cannot open it.
    let other = SecretBox::new([8; 32]);
    let error = AcmeClient::load_or_register(&setup.db, &other, &setup.settings)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("sealed with another secret key"),
        "{error:#}"
    );
}

#[derive(Default)]
struct MemorySink(Mutex<Vec<(String, i64)>>);

#[async_trait::async_trait]
impl CertificateSink for MemorySink {
    async fn store(&self, hostname: &str, certificate: &IssuedCertificate) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((hostname.to_owned(), certificate.not_after));
        Ok(())
    }

    async fn discard(&self, hostname: &str) -> anyhow::Result<bool> {
        let mut stored = self.0.lock().unwrap();
        let before = stored.len();
        stored.retain(|(kept, _)| kept != hostname);
        Ok(stored.len() < before)
    }
}

#[derive(Default)]
struct Listener(Mutex<Vec<(String, String)>>);

#[async_trait::async_trait]
impl RenewalFailureListener for Listener {
    async fn renewal_failed(&self, order: &AcmeOrder, failure: &AcmeFailure) {
        self.0
            .lock()
            .unwrap()
            .push((order.hostname.clone(), failure.problem_type.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_issues_renews_short_lived_certificates_and_backs_off_after_a_failed_renewal() {
    // Certificates of 30 s: renewal is due after two thirds of that.
    let setup = setup(Duration::from_secs(30)).await;
    let sink = Arc::new(MemorySink::default());
    let metrics = Arc::new(Metrics::default());
    let responders = Responders {
        http01: Some(Arc::new(setup.responder.clone())),
        ..Responders::default()
    };
    let listener = Arc::new(Listener::default());
    let mut manager = AcmeManager::new(
        setup.db.clone(),
        setup.secrets.clone(),
        setup.settings.clone(),
        responders,
        sink.clone(),
        metrics.clone(),
    );
    manager.on_renewal_failure = Some(listener.clone());
    setup
        .db
        .want_acme_certificate("app.example.com", "http-01")
        .await
        .unwrap();
    assert_eq!(
        setup
            .db
            .acme_order("app.example.com")
            .await
            .unwrap()
            .unwrap()
            .state,
        "waiting"
    );

    assert_eq!(manager.round().await.unwrap(), 1, "{}", setup.pebble.logs());
    let first = setup.db.acme_order("app.example.com").await.unwrap().unwrap();
    assert_eq!(first.state, "active", "{first:?}");
    let not_after = first.not_after.unwrap();
    let renew_at = first.renew_at.unwrap();
    assert_eq!(renew_at, not_after - (not_after - first.not_before.unwrap()) / 3);
    assert_eq!(sink.0.lock().unwrap().len(), 1);
    assert_eq!(
        manager.round().await.unwrap(),
        0,
        "not due again before its renewal time"
    );

    // Its renewal time comes: a new certificate, expiring later.
    let wait = renew_at - jamstack_controller::db::now_millis();
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64 + 50)).await;
    assert_eq!(
        setup
            .db
            .acme_order("app.example.com")
            .await
            .unwrap()
            .unwrap()
            .shown_state(jamstack_controller::db::now_millis()),
        "renewal_due"
    );
    assert_eq!(manager.round().await.unwrap(), 1);
    let renewed = setup.db.acme_order("app.example.com").await.unwrap().unwrap();
    assert_eq!(renewed.state, "active");
    assert!(renewed.not_after.unwrap() > not_after);
    assert_eq!(sink.0.lock().unwrap().len(), 2);

    // The next renewal fails (nobody answers): counted, told, retried later.
    setup.responder.tokens.lock().unwrap().clear();
    let mut failing = manager.clone();
    failing.responders = Responders::default();
    setup.db.make_acme_order_due("app.example.com").await.unwrap();
    assert_eq!(failing.round().await.unwrap(), 1);
    let failed = setup.db.acme_order("app.example.com").await.unwrap().unwrap();
    assert_eq!(failed.state, "failed");
    assert_eq!(failed.attempts, 1);
    assert_eq!(failed.last_error_type.as_deref(), Some("client"));
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap()
            .contains("cannot answer http-01"),
        "{failed:?}"
    );
    let wait = failed.next_attempt_at - jamstack_controller::db::now_millis();
    assert!(
        (45_000..=75_000).contains(&wait),
        "first retry after about a minute, not {wait} ms"
    );
    assert_eq!(
        failed.not_after, renewed.not_after,
        "the certificate served is kept"
    );
    assert_eq!(failing.round().await.unwrap(), 0, "backing off");
    assert_eq!(
        *listener.0.lock().unwrap(),
        vec![("app.example.com".to_owned(), "client".to_owned())]
    );
    let text = metrics.render(Default::default());
    assert!(text.contains("jamstack_acme_renewal_failures_total 1"), "{text}");
}
