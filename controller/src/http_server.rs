//! The listeners' accept loop: connections served by hyper with the bounds
//! [`HttpLimits`] sets, so idle and slow clients cannot hold the
//! controller. `axum::serve` offers neither a cap on connections nor a
//! timeout on a request's head (a client sending half a header was held
//! for as long as it liked), hence this loop.
//!
//! The plain listener speaks HTTP/1.1. Given a TLS acceptor, the same loop
//! serves HTTPS: the handshake must finish within the header timeout (a
//! slow ClientHello holds nothing longer than a slow header), then HTTP/1.1
//! or h2, as ALPN chose, and every request carries [`OverTls`].

mod batched_writes;

use crate::config::HttpLimits;
use axum::body::Body;
use axum::extract::ConnectInfo;
use batched_writes::BatchedIo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// A request extension: the request came over the HTTPS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// Streams one h2 connection may have open at once.
const H2_MAX_STREAMS: u32 = 256;

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the connections' requests in flight. Every
/// request carries its peer's address (`ConnectInfo<SocketAddr>`), and
/// [`OverTls`] when `tls` is given.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) where
    S: tower::Service<axum::http::Request<Body>, Response = axum::response::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Vectored writes: a file's bytes go from the edge's cache to the
        // socket in one `writev` beside the head, where flattening copied
        // each answer into a per-connection buffer first. 100 KB files went
        // from 0.79x to 0.89x nginx's requests/s, 1 MB files from 0.73x to
        // 0.79x, and memory per connection under 1 MB files from 40 KiB to
        // 4 KiB (scripts/bench/large-assets.sh, 3 rounds each); 1 KB pages
        // stayed at 1.10x nginx's.
        .writev(true);
    // Over TLS the protocol is known from ALPN before the first byte, so
    // each connection goes straight to its own builder: hyper-util's
    // `auto` builder would read ahead to sniff it and keep every read of
    // the connection behind that buffer.
    let mut h2 = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        // Ping an idle h2 connection; one that does not answer is closed.
        .keep_alive_interval(Some(std::time::Duration::from_secs(60)))
        .keep_alive_timeout(limits.header_read_timeout);
    let (h1, h2) = (Arc::new(http.clone()), Arc::new(h2));
    tokio::pin!(shutdown);
    loop {
        // At the cap, stop accepting: new connections wait in the backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the connection semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather
                    // than spin, as hyper's and axum's loops do.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Nagle's algorithm stays on, as axum::serve leaves it: turning it
        // off, 1 KB pages went from 88,000 to 70,000 requests/s under wrk.
        let over_tls = tls.is_some();
        let service = app
            .clone()
            .map_request(move |request: axum::http::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                if over_tls {
                    request.extensions_mut().insert(OverTls);
                }
                request
            });
        if let Some(tls) = &tls {
            // Over TLS, Nagle's algorithm does hold answers back: rustls
            // writes a large answer in several records, and a short last
            // write waits for the visitor's (delayed) acknowledgement of the
            // one before. nginx and Go set TCP_NODELAY on TLS connections too.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, %peer, "setting TCP_NODELAY failed");
            }
            let (tls, h1, h2, watcher) = (tls.clone(), h1.clone(), h2.clone(), graceful.watcher());
            let handshake_timeout = limits.header_read_timeout;
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let alpn = stream.get_ref().1.alpn_protocol();
                // A TLS-ALPN-01 validation ends with the handshake.
                if alpn == Some(crate::tls::ACME_TLS_ALPN) {
                    return;
                }
                // No ALPN, or `http/1.1`: HTTP/1.1 (h2 over TLS is only
                // ever chosen by ALPN, RFC 9113 section 3.2).
                let served = if alpn == Some(b"h2".as_slice()) {
                    // The answers one turn of the connection makes leave
                    // together (see `batched_writes`).
                    let (stream, sender) = BatchedIo::new(stream);
                    let connection =
                        h2.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    sender.after_each_poll(watcher.watch(connection)).await
                } else {
                    let connection =
                        h1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    watcher.watch(connection).await
                };
                if let Err(error) = served {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
                drop(permit);
            });
            continue;
        }
        // No protocol upgrades: nothing the controller serves uses them.
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
