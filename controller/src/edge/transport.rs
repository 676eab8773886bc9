//! How site hostnames answer over plain HTTP once the controller has an
//! HTTPS listener: ACME HTTP-01 challenges are answered for any hostname,
//! a site whose `https_redirect` is on is redirected to HTTPS, and over TLS
//! a site's HSTS setting becomes its `Strict-Transport-Security` header.

use super::Edge;
use crate::db::SiteTransport;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Where ACME HTTP-01 validation asks for a challenge's answer.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// A challenge token is base64url (RFC 8555, section 8.3); anything else
/// is not looked up.
const MAX_TOKEN_LENGTH: usize = 256;

/// The answer to `GET /.well-known/acme-challenge/{token}`: the key
/// authorization the ACME client stored, or 404.
pub async fn acme_challenge(edge: &Edge, token: &str) -> Response {
    let well_formed = !token.is_empty()
        && token.len() <= MAX_TOKEN_LENGTH
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return (StatusCode::NOT_FOUND, "no such challenge\n").into_response();
    }
    match edge.db.acme_http_challenge(token).await {
        Ok(Some(key_authorization)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            key_authorization,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "reading an ACME challenge failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// 308 to the same hostname, path and query over HTTPS, on `https_port`
/// (left out when 443). 308 keeps the method and body, as a form posted
/// over HTTP must be posted again.
pub fn to_https(request: &Parts, https_port: u16) -> Response {
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path_and_query = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{name}{port}{path_and_query}");
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)], "").into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, "bad Host header\n").into_response(),
    }
}

/// The `Strict-Transport-Security` value of `transport`, if it sends one.
pub fn hsts_value(transport: &SiteTransport) -> Option<HeaderValue> {
    if transport.hsts_max_age_seconds <= 0 {
        return None;
    }
    let mut value = format!("max-age={}", transport.hsts_max_age_seconds);
    if transport.hsts_include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if transport.hsts_preload {
        value.push_str("; preload");
    }
    HeaderValue::from_str(&value).ok()
}

/// Adds the site's HSTS header to an answer sent over TLS (browsers ignore
/// it over plain HTTP, RFC 6797 section 8.1, so it is never sent there).
pub fn add_hsts(transport: &SiteTransport, headers: &mut HeaderMap) {
    if let Some(value) = hsts_value(transport) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_says_what_the_site_asks_for() {
        let mut transport = SiteTransport::default();
        assert_eq!(hsts_value(&transport), None);
        transport.hsts_max_age_seconds = 31_536_000;
        assert_eq!(hsts_value(&transport).unwrap(), "max-age=31536000");
        transport.hsts_include_subdomains = true;
        transport.hsts_preload = true;
        assert_eq!(
            hsts_value(&transport).unwrap(),
            "max-age=31536000; includeSubDomains; preload"
        );
    }

    #[test]
    fn the_redirect_keeps_host_path_and_query_and_names_the_https_port() {
        let request = axum::http::Request::get("/a/b?c=d")
            .header(header::HOST, "blog.example.com:8080")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let answer = to_https(&request, 8443);
        assert_eq!(answer.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            answer.headers()[header::LOCATION],
            "https://blog.example.com:8443/a/b?c=d"
        );
        assert_eq!(
            to_https(&request, 443).headers()[header::LOCATION],
            "https://blog.example.com/a/b?c=d"
        );
    }
}
