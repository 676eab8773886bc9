//! The one command a newcomer runs: `jamstack-controller up --demo` starts
//! the controller with a runner inside, builds the bundled sample site in
//! Docker and serves it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn up_with_demo_serves_the_built_sample_site_within_a_minute() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = data.path().join("stdout.txt");
    let started = Instant::now();
    let _controller = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_jamstack-controller"))
            .args([
                "up",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data.path().join("data"))
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting jamstack-controller"),
    );
    let http = reqwest::Client::new();
    let page = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo site was not served within a minute; the command printed:\n{}",
            std::fs::read_to_string(&output).unwrap_or_default()
        );
        let answer = http
            .get(format!("http://127.0.0.1:{port}/"))
            .header("Host", format!("demo.localhost:{port}"))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status() == 200
        {
            break answer.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(page.contains("It works"), "{page}");
    assert!(page.contains("built inside a container"), "{page}");

    let printed = std::fs::read_to_string(&output).unwrap();
    for expected in [
        "Admin token:   jsa_",
        &format!("http://demo.localhost:{port}/"),
        "Webhook:",
    ] {
        assert!(printed.contains(expected), "`up` prints {expected:?}:\n{printed}");
    }
}
