//! Proxy rewrites: a `200` rule to an `http(s)://` URL forwards the
//! request there and answers with what comes back. The only HTTP client of
//! the edge.
//!
//! Forwarded: the method, the rule's URL (the request's query string on
//! it), the request's headers but the hop-by-hop ones and `Host`, with
//! `X-Forwarded-For` (appended to), `X-Forwarded-Proto` and
//! `X-Forwarded-Host` set and the rule's `headers` added, and the body,
//! streamed, up to a size limit. Answered: the upstream's status (a `3xx`
//! too: redirects are passed on, not followed), its headers but the
//! hop-by-hop ones, and its body, streamed, up to the same limit. Nothing
//! proxied is kept in the edge's memory.
//!
//! The rule's author picks the URL, and a value from the request may be in
//! it (`:splat`), so an upstream must be on the public internet unless the
//! operator allows private ones (`--allow-private-proxy-targets`): the
//! same guard notification hooks use, checked on the URL and again on
//! every address its name resolves to.

use crate::config::ProxySettings;
use crate::notifications::targets;
use axum::body::{Body, HttpBody};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::net::SocketAddr;

/// The edge's client to upstreams, made once with the operator's settings.
pub struct Upstreams {
    client: reqwest::Client,
    settings: ProxySettings,
}

/// Headers that speak for one connection, never forwarded either way.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

impl Upstreams {
    pub fn new(settings: ProxySettings) -> anyhow::Result<Upstreams> {
        let mut client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("jamstack-edge/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_targets {
            client = client.dns_resolver(std::sync::Arc::new(targets::PublicOnly));
        }
        Ok(Upstreams {
            client: client.build()?,
            settings,
        })
    }

    /// Forwards `request` (with `body`) to `url` with the rule's `added`
    /// headers, and answers with the upstream's answer or a page saying
    /// what failed.
    pub async fn forward(
        &self,
        url: &str,
        added: &[(HeaderName, HeaderValue)],
        request: &Parts,
        body: Body,
        peer: Option<SocketAddr>,
    ) -> Response {
        if let Some(refusal) = targets::refusal(url, self.settings.allow_private_targets) {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "This page is proxied to another server, which is not allowed: {refusal} \
                     (the operator allows private upstreams with --allow-private-proxy-targets)."
                ),
            );
        }
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!("This page is proxied to `{url}`, which is not a valid URL."),
            );
        };
        let mut headers = forwarded_headers(&request.headers, peer);
        for (name, value) in added {
            headers.insert(name.clone(), value.clone());
        }
        let limit = self.settings.max_body_bytes;
        if content_length(&request.headers).is_some_and(|length| length > limit) {
            return page(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("The request body is larger than the {limit} bytes a proxied request may carry."),
            );
        }
        let mut outgoing = self
            .client
            .request(request.method.clone(), parsed)
            .headers(headers);
        // A request without a body (most are GETs) goes without one: a
        // streamed body, even an empty one, is sent chunked, which the
        // upstream must then read to its end.
        if !HttpBody::is_end_stream(&body) {
            outgoing = outgoing.body(reqwest::Body::wrap_stream(limited(
                body.into_data_stream(),
                limit,
            )));
        }
        let answer = match tokio::time::timeout(self.settings.timeout, outgoing.send()).await {
            Err(_) => {
                return page(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "The upstream server of this page did not answer within {} seconds.",
                        self.settings.timeout.as_secs()
                    ),
                );
            }
            Ok(Err(error)) => return failure_page(&error, self.settings.timeout.as_secs(), limit),
            Ok(Ok(answer)) => answer,
        };
        if answer.content_length().is_some_and(|length| length > limit) {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "The upstream server's answer is larger than the {limit} bytes a proxied answer may carry."
                ),
            );
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = answer.status();
        let mut headers = answer.headers().clone();
        strip_hop_by_hop(&mut headers);
        *response.headers_mut() = headers;
        // The first chunk is awaited before the answer starts: an upstream
        // that fails or sends too much at once still gets a page, not a cut
        // connection. After that, going over the limit cuts the answer off
        // (its status is sent), and the log says why.
        let mut body = Box::pin(limited(answer.bytes_stream(), limit));
        let first = match tokio::time::timeout(self.settings.timeout, body.next()).await {
            Err(_) => {
                return page(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "The upstream server of this page did not send its answer within {} seconds.",
                        self.settings.timeout.as_secs()
                    ),
                );
            }
            Ok(Some(Err(error))) if error.to_string().contains(OVER_LIMIT) => {
                return page(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "The upstream server's answer is larger than the {limit} bytes a proxied answer may carry."
                    ),
                );
            }
            Ok(Some(Err(error))) => {
                return page(
                    StatusCode::BAD_GATEWAY,
                    &format!("The upstream server of this page broke off its answer ({error})."),
                );
            }
            Ok(first) => first,
        };
        let upstream = url.to_owned();
        let rest = body.map(move |chunk| {
            if let Err(error) = &chunk {
                tracing::warn!(upstream = %upstream, %error, "a proxied answer was cut off");
            }
            chunk
        });
        *response.body_mut() = Body::from_stream(futures_util::stream::iter(first).chain(rest));
        response
    }
}

/// The request's headers as an upstream gets them.
pub(crate) fn forwarded_headers(incoming: &HeaderMap, peer: Option<SocketAddr>) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    let host = headers.remove(header::HOST);
    if let Some(peer) = peer {
        let chain = match incoming.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    // The edge listens on plain HTTP; a TLS terminator in front says so.
    let proto = incoming
        .get("x-forwarded-proto")
        .cloned()
        .unwrap_or(HeaderValue::from_static("http"));
    headers.insert("x-forwarded-proto", proto);
    if let Some(host) = host {
        headers.insert("x-forwarded-host", host);
    }
    headers
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // `Connection` may name more headers that speak for the connection.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

const OVER_LIMIT: &str = "the body is larger than a proxied body may be";

/// `stream`, ending with an error once more than `limit` bytes went by.
fn limited<S, B, E>(
    stream: S,
    limit: u64,
) -> impl futures_util::Stream<Item = Result<B, std::io::Error>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut seen: u64 = 0;
    stream.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.as_ref().len() as u64;
        if seen > limit {
            return Err(std::io::Error::other(format!("{OVER_LIMIT} ({limit} bytes)")));
        }
        Ok(chunk)
    })
}

fn failure_page(error: &reqwest::Error, timeout_seconds: u64, limit: u64) -> Response {
    if error.is_timeout() {
        return page(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("The upstream server of this page did not answer within {timeout_seconds} seconds."),
        );
    }
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = format!("{reason}: {cause}");
        source = cause.source();
    }
    // The request body went over the limit while it was being sent.
    if reason.contains(OVER_LIMIT) {
        return page(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("The request body is larger than the {limit} bytes a proxied request may carry."),
        );
    }
    page(
        StatusCode::BAD_GATEWAY,
        &format!("The upstream server of this page could not be reached ({reason})."),
    )
}

/// A short page saying what failed; never cached.
pub(crate) fn page(status: StatusCode, message: &str) -> Response {
    let text = format!(
        "{} {}\n\n{message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_gets_the_visitors_headers_without_the_connections_own_and_with_forwarded_ones() {
        let mut incoming = HeaderMap::new();
        incoming.insert(header::HOST, HeaderValue::from_static("blog.example.com"));
        incoming.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-hop"));
        incoming.insert("x-hop", HeaderValue::from_static("1"));
        incoming.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        incoming.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        incoming.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.1"));
        let peer = "203.0.113.7:5000".parse().ok();

        let sent = forwarded_headers(&incoming, peer);
        assert_eq!(sent.get(header::ACCEPT).unwrap(), "application/json");
        for gone in ["host", "connection", "x-hop", "transfer-encoding"] {
            assert!(!sent.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(sent.get("x-forwarded-for").unwrap(), "198.51.100.1, 203.0.113.7");
        assert_eq!(sent.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(sent.get("x-forwarded-host").unwrap(), "blog.example.com");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_ends_with_an_error() {
        let chunks =
            futures_util::stream::iter(vec![Ok::<_, std::io::Error>(vec![0u8; 6]), Ok(vec![0u8; 6])]);
        let seen: Vec<_> = limited(chunks, 10).collect().await;
        assert!(seen[0].is_ok());
        assert!(seen[1].as_ref().unwrap_err().to_string().contains(OVER_LIMIT));
    }
}
