//! The edge: the only module that serves site files.
//!
//! A request whose `Host` is `<label>.<domain>` is a site request; every
//! other host reaches the API. Labels are `<site>` for the published
//! production deploy, `<deploy-id>--<site>` for a permanent link to one
//! deploy, and `deploy-preview-<pr>--<site>` / `<branch>--<site>` for the
//! latest deploy of a pull request or branch. A request resolves its deploy once, then reads only that deploy's
//! immutable manifest, so it sees the old deploy or the new one, never a mix.
//!
//! Paths follow one rule (see README, "How paths are served"): `/dir/` serves
//! `dir/index.html`; `/dir` redirects to `/dir/` when `dir/index.html`
//! exists; `/page` serves `page.html` when there is no file `page`.

mod path;

use crate::db::DeployFile;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which deploy a hostname label names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `<site>`: whatever the site has published.
    Published { site: String },
    /// `<deploy-id>--<site>`: one deploy, forever.
    Permalink { site: String, deploy_id: String },
    /// `deploy-preview-<pr>--<site>` or `<branch>--<site>`: the latest
    /// deploy of that pull request or branch.
    Alias { site: String, alias: String },
}

/// Reads a `Host` header: `Some` for a site hostname under `domain`.
pub fn target_of_host(host: &str, domain: &str) -> Option<Target> {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    if label.is_empty() || label.contains('.') {
        return None;
    }
    match label.rsplit_once("--") {
        None => Some(Target::Published {
            site: label.to_owned(),
        }),
        Some((prefix, site)) if prefix.len() == 24 && prefix.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(Target::Permalink {
                site: site.to_owned(),
                deploy_id: prefix.to_owned(),
            })
        }
        Some((alias, site)) if !alias.is_empty() && !site.is_empty() => Some(Target::Alias {
            site: site.to_owned(),
            alias: alias.to_owned(),
        }),
        Some(_) => None,
    }
}

/// Middleware on the one listener: site hosts are served here, everything
/// else goes on to the API router.
pub async fn route_by_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or("");
    match target_of_host(host, &state.config.domain) {
        Some(target) => {
            serve(
                &state,
                target,
                request.method(),
                request.uri().path(),
                request.headers(),
            )
            .await
        }
        None => next.run(request).await,
    }
}

async fn serve(
    state: &AppState,
    target: Target,
    method: &Method,
    raw_path: &str,
    headers: &HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "").into_response();
    }
    match serve_inner(state, target, raw_path, headers).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "edge failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn serve_inner(
    state: &AppState,
    target: Target,
    raw_path: &str,
    headers: &HeaderMap,
) -> anyhow::Result<Response> {
    let Some(path) = path::decode(raw_path) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad request path\n"));
    };
    let (deploy_id, immutable) = match &target {
        Target::Published { site } => {
            let Some(site) = state.db.site_by_name(site).await? else {
                return Ok(plain(StatusCode::NOT_FOUND, "no such site\n"));
            };
            let Some(deploy_id) = site.published_deploy_id else {
                return Ok(plain(
                    StatusCode::NOT_FOUND,
                    "this site has no published deploy yet; its first successful build publishes one\n",
                ));
            };
            (deploy_id, false)
        }
        Target::Permalink { site, deploy_id } => {
            let deploy = state.db.deploy(deploy_id).await?;
            let site = state.db.site_by_name(site).await?;
            match (deploy, site) {
                (Some(deploy), Some(site)) if deploy.site_id == site.id && deploy.state == "ready" => {
                    (deploy.id, true)
                }
                _ => return Ok(plain(StatusCode::NOT_FOUND, "no such deploy\n")),
            }
        }
        Target::Alias { site, alias } => {
            let Some(site) = state.db.site_by_name(site).await? else {
                return Ok(plain(StatusCode::NOT_FOUND, "no such site\n"));
            };
            match state.db.alias_deploy(site.id, alias).await? {
                Some(deploy_id) => (deploy_id, false),
                None => {
                    return Ok(plain(
                        StatusCode::NOT_FOUND,
                        "no deploy of this preview or branch\n",
                    ));
                }
            }
        }
    };
    match resolve(state, &deploy_id, &path).await? {
        Resolution::File { path, file } => {
            send_file(state, &path, &file, StatusCode::OK, immutable, headers).await
        }
        Resolution::Redirect { location } => {
            Ok((StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location)], "").into_response())
        }
        Resolution::NotFoundPage { file } => {
            send_file(state, "404.html", &file, StatusCode::NOT_FOUND, false, headers).await
        }
        Resolution::NotFound => Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// What a deploy answers for a path.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// 200 with this file of the deploy.
    File { path: String, file: DeployFile },
    /// 301 to the directory's canonical form with its slash.
    Redirect { location: String },
    /// 404 with the deploy's `404.html`.
    NotFoundPage { file: DeployFile },
    /// 404, plain.
    NotFound,
}

/// How a deploy answers a decoded path (see the module doc for the rule).
/// The edge serves with it; the dashboard's "what would this path serve"
/// check shows it. Redirect and header rules join here.
pub async fn resolve(state: &AppState, deploy_id: &str, path: &str) -> anyhow::Result<Resolution> {
    let lookup = |p: String| {
        let db = state.db.clone();
        let deploy_id = deploy_id.to_owned();
        async move { db.deploy_file(&deploy_id, &p).await }
    };
    let resolved = if path.is_empty() || path.ends_with('/') {
        let index = format!("{path}index.html");
        lookup(index.clone()).await?.map(|f| (index, f))
    } else if let Some(file) = lookup(path.to_owned()).await? {
        Some((path.to_owned(), file))
    } else if lookup(format!("{path}/index.html")).await?.is_some() {
        return Ok(Resolution::Redirect {
            location: format!("/{}/", path::encode(path)),
        });
    } else {
        let html = format!("{path}.html");
        lookup(html.clone()).await?.map(|f| (html, f))
    };
    if let Some((path, file)) = resolved {
        return Ok(Resolution::File { path, file });
    }
    Ok(match lookup("404.html".to_owned()).await? {
        Some(file) => Resolution::NotFoundPage { file },
        None => Resolution::NotFound,
    })
}

/// Decodes a request path as the edge does; `None` for a path it refuses
/// (`..`, encoded dot segments, backslashes, control characters).
pub fn decode_path(raw: &str) -> Option<String> {
    path::decode(raw)
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn send_file(
    state: &AppState,
    path: &str,
    file: &DeployFile,
    status: StatusCode,
    immutable: bool,
    request_headers: &HeaderMap,
) -> anyhow::Result<Response> {
    let etag = format!("\"{}\"", file.sha256);
    let content_type = content_type(path);
    let cache_control = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=0, must-revalidate"
    };
    let mut response = if status == StatusCode::OK
        && request_headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let Some(body) = state.blobs.open(&file.sha256).await? else {
            anyhow::bail!("blob {} of {path} is missing from the blob store", file.sha256);
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(file.size as u64));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type)?);
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_str(&etag)?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache_control));
    Ok(response)
}

fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    match mime.type_() {
        mime_guess::mime::TEXT => format!("{mime}; charset=utf-8"),
        _ if mime.subtype() == mime_guess::mime::JAVASCRIPT || mime.subtype() == mime_guess::mime::JSON => {
            format!("{mime}; charset=utf-8")
        }
        _ => mime.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_name_sites_and_permalinks() {
        let d = "localhost";
        assert_eq!(
            target_of_host("blog.localhost:8080", d),
            Some(Target::Published { site: "blog".into() })
        );
        assert_eq!(
            target_of_host("BLOG.localhost.", d),
            Some(Target::Published { site: "blog".into() })
        );
        assert_eq!(
            target_of_host("0123456789abcdef01234567--blog.localhost", d),
            Some(Target::Permalink {
                site: "blog".into(),
                deploy_id: "0123456789abcdef01234567".into()
            })
        );
        assert_eq!(
            target_of_host("deploy-preview-12--blog.localhost", d),
            Some(Target::Alias {
                site: "blog".into(),
                alias: "deploy-preview-12".into()
            })
        );
        for api_host in [
            "--blog.localhost",
            "x--.localhost",
            "localhost",
            "localhost:8080",
            "127.0.0.1:8080",
            "a.b.localhost",
            "example.com",
            "",
        ] {
            assert_eq!(target_of_host(api_host, d), None, "{api_host}");
        }
    }

    #[test]
    fn html_and_text_say_their_charset() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.png"), "image/png");
        assert_eq!(content_type("blob"), "application/octet-stream");
    }
}
