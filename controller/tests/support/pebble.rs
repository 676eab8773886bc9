//! A real ACME CA for tests: Debian's `pebble` and `pebble-challtestsrv`
//! (its DNS server), each test with its own pair on free loopback ports,
//! killed when dropped. `./scripts/start-pebble.sh` installs them.
//!
//! Pebble validates HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`
//! of 127.0.0.1 (challtestsrv answers every A query with it), so a test
//! binds those first and answers there itself. Its own HTTPS uses a
//! throwaway CA made here (`ca_root`, what `--acme-ca-root` points at);
//! the root that signs issued certificates is [`Pebble::issuing_root_pem`].

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pebble {
    pebble: Child,
    challtestsrv: Child,
    pub dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>/dir`.
    pub directory_url: String,
    /// The PEM of the CA that signed pebble's own HTTPS certificate.
    pub ca_root: PathBuf,
    /// challtestsrv's management API: `/set-txt`, `/clear-txt`, `/add-a`.
    pub challtestsrv_url: String,
    /// Where challtestsrv answers DNS (UDP and TCP): what pebble asks, and
    /// what a controller checking TXT records may ask too.
    pub dns_server: SocketAddr,
    management: SocketAddr,
    client: reqwest::Client,
}

/// What a test sets in pebble's configuration.
pub struct PebbleOptions {
    /// Where pebble checks HTTP-01 answers (the test listens there).
    pub http_port: u16,
    /// Where pebble checks TLS-ALPN-01 answers.
    pub tls_port: u16,
    /// The life of issued certificates.
    pub validity: Duration,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        PebbleOptions {
            http_port: free_port(),
            tls_port: free_port(),
            validity: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// A port of 127.0.0.1 free a moment ago and never handed out before in
/// this process. Tests run side by side: a port is bound well after it is
/// chosen (pebble's and challtestsrv's by their processes), and the kernel
/// may offer a port just let go again, so two tests could otherwise be
/// given the same one and the second to bind it fail.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner()).insert(port) {
            return port;
        }
    }
}

fn program(env: &str, name: &str) -> String {
    let program = std::env::var(env).unwrap_or_else(|_| name.to_owned());
    // Looked up on PATH here rather than by a shell: tests calling this
    // run on tokio's threads, which must not block on a child.
    let found = std::path::Path::new(&program).is_file()
        || std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(&program).is_file()));
    assert!(
        found,
        "{name} is not installed: run ./scripts/start-pebble.sh (apt-get install pebble), or set {env}"
    );
    program
}

impl Pebble {
    pub async fn start(options: PebbleOptions) -> Self {
        let pebble_program = program("JAMSTACK_TEST_PEBBLE", "pebble");
        let challtestsrv_program = program("JAMSTACK_TEST_CHALLTESTSRV", "pebble-challtestsrv");
        let dir = tempfile::tempdir().unwrap();

        // Pebble's own HTTPS: a throwaway CA and a certificate for 127.0.0.1.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "jamstack test CA for pebble");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let server = server_params.signed_by(&server_key, &ca).unwrap();
        let ca_root = dir.path().join("pebble-https-ca.pem");
        std::fs::write(&ca_root, ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dns_port = free_udp_port();
        let challtestsrv_management = format!("127.0.0.1:{}", free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.path().join("server.pem"),
                "privateKey": dir.path().join("server.key"),
                "httpPort": options.http_port,
                "tlsPort": options.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": options.validity.as_secs(),
            }
        });
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let pebble_log = log("pebble.log");
        let pebble = Command::new(&pebble_program)
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(format!("127.0.0.1:{dns_port}"))
            // Answer at once and accept every good nonce: tests measure
            // nothing, they only must not wait.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Check every challenge again, renewals included.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(pebble_log.try_clone().unwrap())
            .stderr(pebble_log)
            .spawn()
            .expect("starting pebble");
        let challtestsrv_log = log("challtestsrv.log");
        let challtestsrv = Command::new(&challtestsrv_program)
            .arg("-management")
            .arg(&challtestsrv_management)
            .arg("-dns01")
            .arg(format!("127.0.0.1:{dns_port}"))
            // Every name is 127.0.0.1, and only that: the test's answers
            // listen on IPv4 loopback.
            .arg("-defaultIPv4")
            .arg("127.0.0.1")
            .arg("-defaultIPv6")
            .arg("")
            // The test answers HTTP-01 and TLS-ALPN-01 itself.
            .arg("-http01")
            .arg("")
            .arg("-https01")
            .arg("")
            .arg("-tlsalpn01")
            .arg("")
            .stdin(Stdio::null())
            .stdout(challtestsrv_log.try_clone().unwrap())
            .stderr(challtestsrv_log)
            .spawn()
            .expect("starting pebble-challtestsrv");

        let ca_pem = std::fs::read(&ca_root).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut started = Pebble {
            pebble,
            challtestsrv,
            directory_url: format!("https://{listen}/dir"),
            ca_root,
            challtestsrv_url: format!("http://{challtestsrv_management}"),
            dns_server: SocketAddr::from(([127, 0, 0, 1], dns_port)),
            management,
            client,
            dir,
        };
        started.wait_until_up().await;
        started
    }

    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let directory = self.client.get(&self.directory_url).send().await;
            let dns = self
                .client
                .post(format!("{}/clear-txt", self.challtestsrv_url))
                .json(&serde_json::json!({"host": "_probe.example.com."}))
                .send()
                .await;
            if directory.is_ok_and(|r| r.status().is_success()) && dns.is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Ok(Some(status)) = self.pebble.try_wait() {
                panic!("pebble exited ({status}):\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not come up within 30 s:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What pebble and challtestsrv printed.
    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- pebble.log\n{}\n--- challtestsrv.log\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// The root that signs the certificates pebble issues (made anew at
    /// each start): what a client of the issued certificates trusts.
    pub async fn issuing_root_pem(&self) -> String {
        let answer = self
            .client
            .get(format!("https://{}/roots/0", self.management))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "pebble's /roots/0: {}",
            answer.status()
        );
        answer.text().await.unwrap()
    }
}

fn free_udp_port() -> u16 {
    // challtestsrv serves DNS on UDP and TCP; a port free on both is
    // found by trying.
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.challtestsrv.kill();
        let _ = self.pebble.wait();
        let _ = self.challtestsrv.wait();
    }
}
