//! Pages of list answers: `?page=N&per_page=M` (page from 1, `per_page`
//! 50 by default, at most 100). The answer stays a JSON array; when more
//! follows, a `Link: <…?page=N+1&per_page=M>; rel="next"` header says where,
//! as GitHub's API does.

use crate::error::{AppError, bad_request};
use crate::urls::Urls;
use axum::Json;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::LINK;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 100;
/// Pages beyond this are refused rather than turned into huge offsets.
const MAX_PAGE: u32 = 1_000_000;

/// Query parameters as `(name, value)` pairs, in their order.
type QueryPairs = Vec<(String, String)>;

/// The query parameters of a list, as documented; [`Pagination`] reads them.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// The page, from 1 (default 1).
    page: Option<u32>,
    /// Items a page, 1 to 100 (default 50).
    per_page: Option<u32>,
}

/// The page a list request asks for, and where the request was made, to
/// point at the next page.
#[derive(Debug, Clone)]
pub struct Pagination {
    pub page: u32,
    pub per_page: u32,
    /// The request's path and its other query parameters, kept for the
    /// `Link` header.
    path: String,
    other_params: QueryPairs,
    public_url: String,
}

impl Pagination {
    /// Rows to fetch: one more than a page, to know whether another follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.per_page) + 1
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// Parses `page` and `per_page` out of a query string; other
    /// parameters are kept for the next page's link.
    pub fn parse(query: &str) -> Result<(u32, u32, QueryPairs), String> {
        let mut page = 1;
        let mut per_page = DEFAULT_PER_PAGE;
        let mut other = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "page" => {
                    page = value
                        .parse::<u32>()
                        .ok()
                        .filter(|p| (1..=MAX_PAGE).contains(p))
                        .ok_or_else(|| {
                            format!(
                                "page `{value}` is not valid: pages are numbered from 1 (at most {MAX_PAGE})"
                            )
                        })?;
                }
                "per_page" => {
                    per_page = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                        .ok_or_else(|| {
                            format!("per_page `{value}` is not valid: give a number from 1 to {MAX_PER_PAGE}")
                        })?;
                }
                _ => other.push((key.into_owned(), value.into_owned())),
            }
        }
        Ok((page, per_page, other))
    }

    /// The answer for one fetched page: at most `per_page` items, with a
    /// `Link` to the next page when `items` holds more.
    pub fn answer<T>(&self, mut items: Vec<T>) -> Paged<T> {
        let more = items.len() > self.per_page as usize;
        items.truncate(self.per_page as usize);
        let next = more.then(|| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in &self.other_params {
                query.append_pair(key, value);
            }
            query.append_pair("page", &(self.page + 1).to_string());
            query.append_pair("per_page", &self.per_page.to_string());
            format!("{}{}?{}", self.public_url, self.path, query.finish())
        });
        Paged { items, next }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Pagination
where
    Urls: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let urls = Urls::from_ref(state);
        let (page, per_page, other_params) =
            Pagination::parse(parts.uri.query().unwrap_or("")).map_err(bad_request)?;
        Ok(Pagination {
            page,
            per_page,
            path: parts.uri.path().to_owned(),
            other_params,
            public_url: urls.public_url.trim_end_matches('/').to_owned(),
        })
    }
}

/// One page of a list: a JSON array, with a `Link` header when more follows.
#[derive(Debug)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Paged<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.items).into_response();
        if let Some(next) = self.next
            && let Ok(value) = format!("<{next}>; rel=\"next\"").parse()
        {
            response.headers_mut().insert(LINK, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_to_the_first_fifty_and_refuse_nonsense() {
        assert_eq!(Pagination::parse("").unwrap(), (1, 50, vec![]));
        assert_eq!(
            Pagination::parse("per_page=2&page=3&before=9").unwrap(),
            (3, 2, vec![("before".into(), "9".into())])
        );
        for (query, named) in [
            ("page=0", "page"),
            ("page=x", "page"),
            ("per_page=101", "per_page"),
            ("per_page=0", "per_page"),
            ("per_page=-1", "per_page"),
        ] {
            let error = Pagination::parse(query).unwrap_err();
            assert!(error.starts_with(named), "{query}: {error}");
        }
    }

    #[test]
    fn only_a_page_with_more_behind_it_links_to_the_next() {
        let pagination = Pagination {
            page: 2,
            per_page: 2,
            path: "/api/v1/sites".into(),
            other_params: vec![],
            public_url: "http://ctl:8080".into(),
        };
        assert_eq!(pagination.offset(), 2);
        assert_eq!(pagination.fetch_limit(), 3);
        let full = pagination.answer(vec![1, 2, 3]);
        assert_eq!(full.items, [1, 2]);
        assert_eq!(
            full.next.as_deref(),
            Some("http://ctl:8080/api/v1/sites?page=3&per_page=2")
        );
        let last = pagination.answer(vec![1, 2]);
        assert_eq!((last.items, last.next), (vec![1, 2], None));
    }
}
