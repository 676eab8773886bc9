//! What a client that has not shown who it is may hold of the listener,
//! over real TCP: a request head sent half is dropped after the header
//! timeout, unauthenticated bodies are refused before they are read (or
//! read within a time limit), and connections beyond the cap wait.

use crate::helpers::{TestApp, spawn_controller_only_with};
use jamstack_proto::{PROTOCOL_HEADER, PROTOCOL_VERSION, routes};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);

async fn controller(max_connections: usize) -> TestApp {
    let (app, _runner) = spawn_controller_only_with(|config| {
        config.http.header_read_timeout = HEADER_TIMEOUT;
        config.http.body_read_timeout = BODY_TIMEOUT;
        config.http.max_connections = max_connections;
    })
    .await;
    app
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(("127.0.0.1", app.port)).await.unwrap()
}

/// Reads the answer's status line and headers (up to the blank line), or
/// what came before the connection closed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads the rest of an answer whose head was read (its body, by
/// `content-length`).
async fn read_body(stream: &mut TcpStream, head: &str) -> String {
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn a_request_head_sent_by_half_is_dropped_after_the_header_timeout() {
    let app = controller(64).await;
    let mut slow = connect(&app).await;
    let started = Instant::now();
    slow.write_all(b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Ev")
        .await
        .unwrap();
    // The controller closes the connection; no answer to a request it
    // never got whole.
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest).await;
    let held = started.elapsed();
    assert!(
        held >= HEADER_TIMEOUT,
        "dropped after {held:?}, before the timeout"
    );
    let answered = String::from_utf8_lossy(&rest);
    assert!(!answered.starts_with("HTTP/1.1 2"), "{answered}");

    // A whole request on a new connection is answered as ever.
    let mut whole = connect(&app).await;
    whole
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut whole).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[tokio::test]
async fn a_runner_registration_of_a_megabyte_is_refused_413_before_it_is_read() {
    let app = controller(64).await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         {PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {}\r\n\r\n",
        routes::runner::REGISTER,
        1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // 64 KiB of the megabyte, and no more: the answer comes without it.
    stream.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let body = read_body(&mut stream, &head).await;
    assert!(body.contains("a registration is at most 16 KiB"), "{body}");
}

#[tokio::test]
async fn a_webhook_without_a_signature_header_is_refused_401_before_its_body_is_read() {
    let app = controller(64).await;
    for (path, header) in [
        ("/webhooks/github", "X-Hub-Signature-256"),
        ("/webhooks/generic/any-site", "X-Jamstack-Signature-256"),
    ] {
        let mut stream = connect(&app).await;
        // 20 MB announced, none sent.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: unsigned\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            20 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 401"), "{path}: {head}");
        let body = read_body(&mut stream, &head).await;
        assert!(body.contains(&format!("missing {header}")), "{path}: {body}");
    }
    let refused = app.webhook_deliveries().await;
    assert_eq!(refused.len(), 2, "both are recorded as refused: {refused:?}");
}

#[tokio::test]
async fn a_signed_webhook_whose_body_trickles_is_answered_408_after_the_body_timeout() {
    let app = controller(64).await;
    let mut stream = connect(&app).await;
    let signature = format!("sha256={}", "0".repeat(64));
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\n\
         X-Hub-Signature-256: {signature}\r\nContent-Length: 1000\r\n\r\n{{\"ref\":"
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let head = read_head(&mut stream).await;
    let held = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(held >= BODY_TIMEOUT, "answered after {held:?}");
    let body = read_body(&mut stream, &head).await;
    assert!(body.contains("did not arrive within"), "{body}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_is_let_go() {
    let app = controller(2).await;
    // Two clients hold the two connections the cap allows, sending half a
    // request head each.
    let started = Instant::now();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = connect(&app).await;
        holder.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        holders.push(holder);
    }
    // A third is answered only once the header timeout lets one of them go.
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut third).await;
    let waited = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        waited >= HEADER_TIMEOUT,
        "the third connection was served after {waited:?}, while two others held the cap"
    );
}
