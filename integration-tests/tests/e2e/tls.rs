//! The edge over TLS, with a test certificate authority (rcgen) and
//! clients that trust only it: a site served over HTTP/1.1 and h2 (ALPN),
//! by reqwest and by curl; TLS 1.1 refused; the API and the dashboard on
//! the same listener; plain HTTP redirected per site, ACME HTTP-01 answers,
//! HSTS only over TLS; and on PostgreSQL, a replaced certificate served by
//! new connections of two controllers without a restart while an open
//! connection goes on.

use crate::helpers::{
    COPY_SITE_TOML, SiteRepo, TestApp, eventually, fresh_postgres_database, spawn_another_controller_on_with,
    spawn_app_with, spawn_controller_only_with,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate authority made for one test.
struct TestCa {
    certificate: rcgen::Certificate,
    params: CertificateParams,
    key: KeyPair,
}

/// A certificate the CA issued: its chain and key in PEM, its leaf in DER.
struct Issued {
    chain_pem: String,
    key_pem: String,
    leaf_der: Vec<u8>,
}

impl TestCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "jamstack test CA");
        TestCa {
            certificate: params.self_signed(&key).unwrap(),
            params,
            key,
        }
    }

    fn issue(&self, names: &[&str]) -> Issued {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let leaf = params
            .signed_by(&key, &rcgen::Issuer::from_params(&self.params, &self.key))
            .unwrap();
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.certificate.pem()),
            key_pem: key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
        }
    }

    fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A client that trusts only this CA and finds `names` on 127.0.0.1.
    fn client(&self, names: &[&str], port: u16, http1_only: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.pem().as_bytes()).unwrap())
            .tls_info(true)
            .redirect(reqwest::redirect::Policy::none());
        for name in names {
            builder = builder.resolve(name, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        if http1_only {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }
}

fn https_port(app: &TestApp) -> u16 {
    app.https_port.expect("the controller has an HTTPS listener")
}

/// Stores a certificate through the API, as `jamstack certificates upload` does.
async fn upload(app: &TestApp, hostname: &str, issued: &Issued) -> serde_json::Value {
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api(&format!("/certificates/{hostname}")))
                .json(&json!({"certificate_pem": issued.chain_pem, "key_pem": issued.key_pem})),
        )
        .await;
    assert_eq!(status, 200, "uploading the certificate of {hostname}: {body}");
    body
}

fn page(text: &str) -> String {
    format!("<h1>{text}</h1>\n")
}

/// A 600 KB text file: larger than h2's first flow-control window, in
/// many DATA frames, each line different.
fn big_text() -> String {
    (0..20_000)
        .map(|n| format!("line {n:>8} of the big file\n"))
        .collect()
}

/// A controller with an HTTPS listener (and a runner), serving the site
/// `blog` with a certificate for `blog.localhost` (clients refuse a wildcard
/// directly under a single-label name such as `*.localhost`).
async fn blog_over_https(ca: &TestCa) -> TestApp {
    let app = spawn_app_with(|config| config.https_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let repo = SiteRepo::new();
    let sha = repo.commit(
        &[
            ("jamstack.toml", COPY_SITE_TOML),
            ("src/index.html", &page("over tls")),
            ("src/big.txt", &big_text()),
        ],
        "first",
    );
    app.connect_site("blog", &repo, "octo/blog").await;
    app.wait_for_success(app.push("octo/blog", &repo, &sha).await)
        .await;
    upload(&app, "blog.localhost", &ca.issue(&["blog.localhost"])).await;
    app
}

/// Sends a ClientHello that offers TLS 1.1 at most and returns the answer's
/// record type (21 for an alert, 22 for a handshake) and, for an alert, its
/// description.
async fn answer_to_tls_1_1(port: u16, name: &str) -> (u8, u8) {
    let mut hello = Vec::new();
    hello.extend([0x03, 0x02]); // TLS 1.1
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    // ECDHE-RSA-AES128-SHA, ECDHE-ECDSA-AES128-SHA, AES128-SHA
    hello.extend([0x00, 0x06, 0xc0, 0x13, 0xc0, 0x09, 0x00, 0x2f]);
    hello.extend([0x01, 0x00]); // null compression
    let name = name.as_bytes();
    let mut server_name = Vec::new();
    server_name.extend(((name.len() + 3) as u16).to_be_bytes());
    server_name.push(0);
    server_name.extend((name.len() as u16).to_be_bytes());
    server_name.extend(name);
    let mut extensions = vec![0x00, 0x00];
    extensions.extend((server_name.len() as u16).to_be_bytes());
    extensions.extend(server_name);
    hello.extend((extensions.len() as u16).to_be_bytes());
    hello.extend(extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend((hello.len() as u16).to_be_bytes());
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(&record).await.unwrap();
    // Type, version (2), length (2), then an alert's level and description.
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).await.unwrap();
    (answer[0], answer[6])
}

#[tokio::test]
async fn a_visitor_gets_the_site_over_https_with_http1_and_h2_and_tls_1_1_is_refused() {
    let ca = TestCa::new();
    let app = blog_over_https(&ca).await;
    let port = https_port(&app);
    let url = format!("https://blog.localhost:{port}/");

    let http1 = ca.client(&["blog.localhost"], port, true);
    let answer = http1
        .get(&url)
        .send()
        .await
        .expect("an HTTPS answer over HTTP/1.1");
    assert_eq!(answer.version(), reqwest::Version::HTTP_11);
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), page("over tls"));

    let h2 = ca.client(&["blog.localhost"], port, false);
    let answer = h2.get(&url).send().await.expect("an HTTPS answer over h2");
    assert_eq!(answer.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), page("over tls"));
    // Several requests at once on the one h2 connection.
    let answers = futures_util::future::join_all((0..20).map(|_| h2.get(&url).send())).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!(
            (answer.version(), answer.status().as_u16()),
            (reqwest::Version::HTTP_2, 200)
        );
    }

    // Large answers, several at once on the one connection, arrive whole
    // and in order between the small ones.
    let big_url = format!("https://blog.localhost:{port}/big.txt");
    let answers = futures_util::future::join_all((0..6).map(|n| {
        let url = if n % 2 == 0 { &big_url } else { &url };
        h2.get(url.as_str()).send()
    }))
    .await;
    for (n, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        let expected = if n % 2 == 0 { big_text() } else { page("over tls") };
        assert!(
            answer.text().await.unwrap() == expected,
            "answer {n} arrived whole"
        );
    }

    // curl, with its own TLS library, negotiates h2 too (run without
    // blocking: this controller serves on the test's own runtime).
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let curl = tokio::process::Command::new("curl")
        .args([
            "--http2",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(&ca_file)
        .args(["--resolve", &format!("blog.localhost:{port}:127.0.0.1"), &url])
        .output()
        .await
        .expect("curl is installed (apt-get install curl)");
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "2 200",
        "curl: {}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // TLS 1.1 gets a fatal alert, never a ServerHello.
    let (record, description) = answer_to_tls_1_1(port, "blog.localhost").await;
    assert_eq!(
        record, 21,
        "an alert, not a handshake record (alert {description})"
    );

    // A name no certificate covers fails the handshake.
    let unknown = ca.client(&["nobody.example.org"], port, false);
    assert!(
        unknown
            .get(format!("https://nobody.example.org:{port}/"))
            .send()
            .await
            .is_err()
    );

    // The API and the dashboard answer on the same listener, on the
    // controller's own name.
    upload(&app, "deploy.example.test", &ca.issue(&["deploy.example.test"])).await;
    let controller = ca.client(&["deploy.example.test"], port, false);
    let sites = controller
        .get(format!("https://deploy.example.test:{port}/api/v1/sites"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (sites.version(), sites.status().as_u16()),
        (reqwest::Version::HTTP_2, 200)
    );
    assert!(sites.text().await.unwrap().contains("\"blog\""));
    let login = controller
        .get(format!("https://deploy.example.test:{port}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert!(login.text().await.unwrap().contains("<form"));

    // Each certificate's expiry is in /metrics; the list never shows a key.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("jamstack_certificate_expiry_seconds{hostname=\"blog.localhost\"}")
            && metrics.contains("jamstack_certificate_expiry_seconds{hostname=\"deploy.example.test\"}"),
        "{metrics}"
    );
    let listed = app.get_json("/certificates").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed[0]["hostname"], "blog.localhost");
    assert_eq!(listed[0]["names"], json!(["blog.localhost"]));
    assert_eq!(listed[0]["source"], "uploaded");
    assert!(!listed.to_string().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn an_upload_that_does_not_fit_its_hostname_is_refused_saying_why() {
    let ca = TestCa::new();
    let (app, _runner) =
        spawn_controller_only_with(|config| config.https_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let issued = ca.issue(&["www.example.test"]);
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/certificates/blog.example.test"))
                .json(&json!({"certificate_pem": issued.chain_pem, "key_pem": issued.key_pem})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("does not cover `blog.example.test`"),
        "{body}"
    );
    let other = ca.issue(&["www.example.test"]);
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/certificates/www.example.test"))
                .json(&json!({"certificate_pem": issued.chain_pem, "key_pem": other.key_pem})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("does not belong"),
        "{body}"
    );
    assert_eq!(app.get_json("/certificates").await, json!([]));
}

#[tokio::test]
async fn plain_http_redirects_to_https_per_site_answers_acme_and_hsts_comes_only_over_tls() {
    let ca = TestCa::new();
    let app = blog_over_https(&ca).await;
    let port = https_port(&app);

    let redirected = app.visit("blog", "/about/?a=1").await;
    assert_eq!(redirected.status, 308, "{}", redirected.body);
    assert_eq!(
        redirected.header("location"),
        format!("https://blog.localhost:{port}/about/?a=1")
    );

    // ACME HTTP-01 answers come over plain HTTP for any hostname.
    let state = app.state.as_ref().unwrap();
    state
        .db
        .put_acme_http_challenge(
            "tok_en-1",
            "tok_en-1.thumbprint",
            jamstack_controller::db::now_millis() + 60_000,
        )
        .await
        .unwrap();
    for host in ["blog.localhost", "www.customer.example"] {
        let answer = app
            .http
            .get(format!(
                "http://127.0.0.1:{}/.well-known/acme-challenge/tok_en-1",
                app.port
            ))
            .header("Host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{host}");
        assert_eq!(answer.text().await.unwrap(), "tok_en-1.thumbprint");
    }
    assert_eq!(
        app.visit("blog", "/.well-known/acme-challenge/unknown")
            .await
            .status,
        404
    );

    // The site turns the redirect off: plain HTTP serves it again.
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/blog/https"))
                .json(&json!({"https_redirect": false, "hsts_max_age_seconds": 31536000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let plain = app.visit("blog", "/").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, page("over tls"));
    assert_eq!(
        plain.header("strict-transport-security"),
        "",
        "never over plain HTTP"
    );
    let client = ca.client(&["blog.localhost"], port, false);
    let secure = client
        .get(format!("https://blog.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(secure.headers()["strict-transport-security"], "max-age=31536000");

    // Preload without includeSubDomains is refused, saying what it needs.
    let (status, body) = app
        .api_json(
            app.http
                .put(app.api("/sites/blog/https"))
                .json(&json!({"hsts_preload": true})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("hsts_include_subdomains"),
        "{body}"
    );
}

/// The DER of the leaf certificate a connection to `name` is served.
async fn served_leaf(client: &reqwest::Client, name: &str, port: u16) -> Vec<u8> {
    let answer = client
        .get(format!("https://{name}:{port}/healthz"))
        .send()
        .await
        .expect("an HTTPS answer");
    answer
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the answer carries the peer's certificate")
        .to_vec()
}

#[tokio::test]
async fn on_postgresql_a_replaced_certificate_is_served_by_both_controllers_without_a_restart() {
    let ca = TestCa::new();
    let database = fresh_postgres_database().await;
    let (first, _runner) = spawn_controller_only_with(|config| {
        config.database_url = Some(database.clone());
        config.https_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let key_file = first.data_dir.join("secret.key");
    let second = spawn_another_controller_on_with(&database, &first.admin_token, |config| {
        config.https_listen = Some("127.0.0.1:0".parse().unwrap());
        config.secret_key_file = Some(key_file.clone());
    })
    .await;
    let name = "www.example.test";
    let ports = [https_port(&first), https_port(&second)];

    let old = ca.issue(&[name]);
    upload(&first, name, &old).await;
    // The second controller hears of it through the relay.
    let held_open = ca.client(&[name], ports[1], false);
    eventually("the second controller serving the uploaded certificate", || {
        let held_open = &held_open;
        let old = &old;
        async move {
            match held_open
                .get(format!("https://{name}:{}/healthz", ports[1]))
                .send()
                .await
            {
                Ok(answer) => {
                    let leaf = answer
                        .extensions()
                        .get::<reqwest::tls::TlsInfo>()
                        .and_then(|info| info.peer_certificate())
                        .map(<[u8]>::to_vec);
                    if leaf.as_deref() == Some(&old.leaf_der[..]) {
                        Ok(())
                    } else {
                        Err("another certificate".to_owned())
                    }
                }
                Err(error) => Err(error.to_string()),
            }
        }
    })
    .await;

    // Renewed: new connections to either controller get the new one
    // within seconds, with no restart.
    let renewed = ca.issue(&[name]);
    upload(&first, name, &renewed).await;
    for port in ports {
        eventually("a new connection being served the renewed certificate", || {
            let renewed = &renewed;
            let ca = &ca;
            async move {
                // A new client: a new connection and a full handshake.
                let leaf = served_leaf(&ca.client(&[name], port, false), name, port).await;
                if leaf == renewed.leaf_der {
                    Ok(())
                } else {
                    Err(format!("port {port} still serves the old certificate"))
                }
            }
        })
        .await;
    }
    // The connection opened before the renewal goes on, with the
    // certificate it was opened with.
    assert_eq!(served_leaf(&held_open, name, ports[1]).await, old.leaf_der);
}
