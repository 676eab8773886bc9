//! The controller's REST API, as the CLI calls it: bearer token on every
//! request, the API's one error shape turned into a [`CliError`] with the
//! right exit code, and list pages followed through `Link: rel="next"`.
//!
//! Answers stay `serde_json::Value`s: `--json` prints exactly what the API
//! said, and the tables read the fields they show.

use crate::error::{CliError, CliResult, exit_for_status, next_step_for_status};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Api {
    /// The controller's base URL, without a trailing `/` or `/api/v1`.
    pub base_url: String,
    token: String,
    http: reqwest::Client,
}

/// The controller's base URL as given (`https://ci.example.com/`,
/// `http://127.0.0.1:8080/api/v1`), checked and trimmed.
pub fn normalize_base_url(text: &str) -> CliResult<String> {
    let trimmed = text.trim().trim_end_matches('/');
    let trimmed = trimmed
        .strip_suffix(jamstack_proto::routes::api::PREFIX)
        .unwrap_or(trimmed);
    let parsed = url::Url::parse(trimmed).map_err(|e| {
        CliError::usage(format!(
            "`{text}` is not a URL ({e}); give the controller's address, e.g. https://ci.example.com"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::usage(format!(
            "`{text}` is not an http(s) URL; give the controller's address, e.g. https://ci.example.com"
        )));
    }
    Ok(trimmed.to_owned())
}

impl Api {
    pub fn new(base_url: String, token: String) -> Self {
        Api {
            base_url,
            token,
            http: reqwest::Client::builder()
                .user_agent(concat!("jamstack-cli/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("a TLS backend for the HTTP client"),
        }
    }

    /// The full URL of an API path such as `/api/v1/sites` (written in
    /// `jamstack_proto::routes::api`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// Sends a request; an answer that is not a success becomes the
    /// controller's message with what to do next.
    pub async fn send(&self, request: RequestBuilder) -> CliResult<Response> {
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.check(response).await
    }

    /// An answer that is not a success becomes the controller's message.
    pub async fn check(&self, response: Response) -> CliResult<Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        Err(refusal(response).await)
    }

    pub fn unreachable(&self, error: reqwest::Error) -> CliError {
        CliError::error(format!(
            "could not reach the controller at {}: {}. Check the URL (--url, JAMSTACK_URL or \
             `jamstack login --url`) and that the controller is running",
            self.base_url,
            error_chain(&error)
        ))
    }

    pub async fn json(&self, request: RequestBuilder) -> CliResult<Value> {
        let response = self.send(request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response
            .json()
            .await
            .map_err(|e| CliError::error(format!("the controller's answer is not the JSON expected: {e}")))
    }

    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.json(self.request(Method::GET, path)).await
    }

    pub async fn post<B: serde::Serialize + ?Sized>(&self, path: &str, body: &B) -> CliResult<Value> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.json(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.json(self.request(Method::PATCH, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.json(self.request(Method::DELETE, path)).await
    }

    /// A link the controller gave, pointed at the URL this client uses: the
    /// controller builds links from its public URL, which may name another
    /// host (a proxy), and the token goes only where the user sent it.
    pub fn same_origin(&self, link: &str) -> Option<String> {
        let link = url::Url::parse(link).ok()?;
        let mut target = url::Url::parse(&self.base_url).ok()?;
        target.set_path(link.path());
        target.set_query(link.query());
        Some(target.into())
    }

    /// Every item of a list, page after page, up to `limit` items.
    pub async fn list(&self, path: &str, limit: Option<usize>) -> CliResult<Vec<Value>> {
        let mut items = Vec::new();
        // The largest page the API gives, or just what is wanted.
        let per_page = limit.map_or(100, |limit| limit.clamp(1, 100));
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(self.url(&format!("{path}{separator}per_page={per_page}")));
        while let Some(url) = next.take() {
            let response = self.send(self.http.get(&url).bearer_auth(&self.token)).await?;
            next = next_page(response.headers(), response.url()).and_then(|link| self.same_origin(&link));
            let page: Value = response.json().await.map_err(|e| {
                CliError::error(format!("the controller's answer is not the JSON expected: {e}"))
            })?;
            match page {
                Value::Array(page) => items.extend(page),
                other => {
                    return Err(CliError::error(format!(
                        "expected a list from GET {url}, got: {other}"
                    )));
                }
            }
            if let Some(limit) = limit
                && items.len() >= limit
            {
                items.truncate(limit);
                break;
            }
        }
        Ok(items)
    }
}

/// The controller's refusal as an error: its message, what to do next, and
/// the exit code for the status.
pub async fn refusal(response: Response) -> CliError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<jamstack_proto::ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| {
            let text = body.trim();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("no reason given").to_owned()
            } else {
                text.chars().take(500).collect()
            }
        });
    let mut text = format!("{message} ({})", status.as_u16());
    if let Some(next) = next_step_for_status(status.as_u16()) {
        text.push_str(&format!("; {next}"));
    }
    CliError::new(exit_for_status(status.as_u16()), text)
}

/// The `rel="next"` target of a `Link` header (RFC 8288, as GitHub writes
/// them), resolved against `base`, the URL of the answer that carried it.
pub fn next_page(headers: &reqwest::header::HeaderMap, base: &url::Url) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| http_link::parse_link_header(value, base).ok())
        .flatten()
        .find(|link| link.rel.eq_ignore_ascii_case("next"))
        .map(|link| link.target.into())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    #[test]
    fn the_next_page_is_read_from_a_github_style_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            HeaderValue::from_static(
                "<http://h/api/v1/sites?page=1&per_page=2>; rel=\"prev\", \
                 <http://h/api/v1/sites?page=3&per_page=2>; rel=\"next\"",
            ),
        );
        let base = url::Url::parse("http://h/api/v1/sites?page=2&per_page=2").unwrap();
        assert_eq!(
            next_page(&headers, &base).as_deref(),
            Some("http://h/api/v1/sites?page=3&per_page=2")
        );
        assert_eq!(next_page(&HeaderMap::new(), &base), None);
        let mut relative = HeaderMap::new();
        relative.insert(LINK, HeaderValue::from_static("</api/v1/sites?page=3>; rel=next"));
        assert_eq!(
            next_page(&relative, &base).as_deref(),
            Some("http://h/api/v1/sites?page=3")
        );
    }

    #[test]
    fn page_links_are_followed_only_to_the_controller_in_use() {
        let api = Api::new("http://127.0.0.1:8080".into(), "t".into());
        assert_eq!(
            api.same_origin("https://public.example.com/api/v1/sites?page=2&per_page=50")
                .as_deref(),
            Some("http://127.0.0.1:8080/api/v1/sites?page=2&per_page=50")
        );
        assert_eq!(api.same_origin("not a url"), None);
    }

    #[test]
    fn base_urls_are_trimmed_and_checked() {
        assert_eq!(
            normalize_base_url("http://127.0.0.1:8080/api/v1/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base_url("https://ci.example.com/").unwrap(),
            "https://ci.example.com"
        );
        assert!(normalize_base_url("ci.example.com").is_err());
        assert!(normalize_base_url("ftp://ci.example.com").is_err());
    }
}
