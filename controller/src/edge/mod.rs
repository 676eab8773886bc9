//! The edge: the only module that serves site files.
//!
//! A request whose `Host` is `<label>.<domain>`, or a verified custom
//! domain (`custom_domains.rs`), is a site request; every other host
//! reaches the API. Labels are `<site>` for the published
//! production deploy, `<deploy-id>--<site>` for a permanent link to one
//! deploy, and `deploy-preview-<pr>--<site>` / `<branch>--<site>` for the
//! latest deploy of a pull request or branch.
//!
//! A request resolves its deploy once (`cache.rs`: the hostname's pointer,
//! kept in memory and forgotten the moment a publish is announced), then
//! reads only that deploy's immutable index (`index.rs`: files, rules and
//! routing), so it sees the old deploy or the new one, never a mix. The
//! answer (`respond.rs`) carries a strong ETag, honours `If-None-Match` and
//! `Range`, picks a precompressed variant by `Accept-Encoding`, and says how
//! long it may be cached; the deploy's `_headers` and `[[headers]]` rules
//! are added last. `path.rs` decodes request paths so none escapes a
//! deploy; `rules.rs` reads and matches the redirect and header rules.
//! A proxy rewrite is forwarded by `proxy.rs`, the edge's one HTTP client
//! to upstreams; it is the only answer that reads the request's body, and
//! is never kept in the memory cache. A proxy rule to one of our own
//! hostnames is served here, in-process, with its hops bounded. Rules with
//! conditions on who the visitor is ask `visitors.rs` (the country) and
//! `identity.rs` (the roles of a verified `nf_jwt` token), only for
//! deploys whose rules use them.

pub mod cache;
pub mod custom_domains;
pub mod identity;
pub mod index;
pub mod path;
pub mod protection;
pub mod proxy;
pub mod respond;
pub mod transport;
pub mod visitors;
/// The rules a deploy's author wrote, as the edge matches them.
pub use jamstack_rules as rules;

pub use cache::EdgeCache;

/// The edge as a service: its memory of pointers, indexes and hot files,
/// and where it reads what it serves from.
#[derive(Clone)]
pub struct Edge {
    pub db: Database,
    pub config: Arc<Config>,
    pub cache: Arc<EdgeCache>,
    pub blobs: Arc<dyn BlobStore>,
    pub metrics: Arc<Metrics>,
    /// Signs and checks access to protected hostnames.
    pub access: Arc<protection::SiteAccess>,
    /// Where proxy rewrites are forwarded.
    pub upstreams: Arc<proxy::Upstreams>,
    /// Where visitors are, for `Country` conditions.
    pub visitors: Arc<visitors::Visitors>,
    /// Who visitors are, for `Role` conditions.
    pub identities: Arc<identity::Identities>,
    /// Opens the site variables signed proxy requests are signed with.
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// Where sites are served, for the `site_url` of signed requests.
    pub urls: crate::urls::Urls,
}

use crate::config::Config;
use crate::db::Database;
use crate::deploys::BlobStore;
use crate::metrics::Metrics;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cache::Resolved;
pub use index::Route;
use respond::{FileAnswer, REVALIDATE};
use std::sync::Arc;

/// Which deploy a hostname label names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `<site>`: whatever the site has published.
    Published { site: String },
    /// `<deploy-id>--<site>`: one deploy, forever.
    Permalink { site: String, deploy_id: String },
    /// `deploy-preview-<pr>--<site>` or `<branch>--<site>`: the latest
    /// deploy of that pull request or branch.
    Alias { site: String, alias: String },
}

impl Target {
    /// The name of the site the hostname belongs to.
    pub fn site(&self) -> &str {
        match self {
            Target::Published { site } | Target::Permalink { site, .. } | Target::Alias { site, .. } => site,
        }
    }
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

/// The one listener's service: site hostnames are answered by the edge
/// before anything else runs (no routing, tracing or API middleware), every
/// other host goes to the API router.
#[derive(Clone)]
pub struct SiteHostsFirst {
    /// Shared by every request rather than cloned into each: cloning the
    /// controller's state per request made two cores fight over its
    /// counters (about 5% of the edge's time under load).
    state: Arc<Edge>,
    api: axum::Router,
}

impl SiteHostsFirst {
    pub fn new(edge: Edge, api: axum::Router) -> Self {
        SiteHostsFirst {
            state: Arc::new(edge),
            api,
        }
    }
}

impl tower::Service<Request> for SiteHostsFirst {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Response, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        // The router is always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // ACME HTTP-01 validation comes over plain HTTP to any hostname the
        // controller is to get a certificate for, site or not.
        if let Some(token) = request
            .uri()
            .path()
            .strip_prefix(transport::ACME_CHALLENGE_PREFIX)
            && request
                .extensions()
                .get::<crate::http_server::OverTls>()
                .is_none()
        {
            let (state, token) = (self.state.clone(), token.to_owned());
            return Box::pin(async move { Ok(transport::acme_challenge(&state, &token).await) });
        }
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host())
            .unwrap_or("");
        if let Some(target) = target_of_host(host, &self.state.config.domain) {
            return Box::pin(serve_target(self.state.clone(), target, request));
        }
        // A name outside the platform's domain may be a verified custom
        // domain; addresses and single labels (`localhost`) never are.
        let Some((hostname, port)) = custom_domains::candidate(host) else {
            return Box::pin(tower::Service::call(&mut self.api, request));
        };
        let port = port.map(str::to_owned);
        match self.state.cache.custom_hosts.lookup_now(&hostname) {
            Some(Some(custom)) => Box::pin(serve_custom(self.state.clone(), custom, port, request)),
            Some(None) => Box::pin(tower::Service::call(&mut self.api, request)),
            None => {
                let state = self.state.clone();
                let mut api = self.api.clone();
                Box::pin(async move {
                    match state.cache.custom_hosts.lookup(&state.db, &hostname).await {
                        Ok(Some(custom)) => serve_custom(state, custom, port, request).await,
                        Ok(None) => tower::Service::call(&mut api, request).await,
                        Err(error) => {
                            tracing::error!(error = format!("{error:#}"), "reading custom domains failed");
                            Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "internal error\n"))
                        }
                    }
                })
            }
        }
    }
}

/// Serves a site hostname: the production deploy, a preview, a branch
/// deploy or a permalink (or the sign-in form of a protected one).
async fn serve_target(
    state: Arc<Edge>,
    target: Target,
    request: Request,
) -> Result<Response, std::convert::Infallible> {
    // Only a proxy rewrite, and the sign-in form of a protected hostname,
    // read the body; the head is all the rest of the edge needs.
    let (head, body) = request.into_parts();
    let sign_in = head.method == Method::POST && head.uri.path() == protection::SIGN_IN_PATH;
    let started = std::time::Instant::now();
    let response = if sign_in {
        serve_sign_in(&state, &target, &head, body).await
    } else {
        serve(&state, target, &head, body).await
    };
    state.metrics.edge.record(response.status(), started.elapsed());
    Ok(response)
}

/// Serves a verified custom hostname: its site's production deploy,
/// exactly as `<site>.<domain>` (rules, headers, protection), or, for an
/// alias, a permanent redirect to the primary with the same path and
/// query. The redirect keeps the scheme the visitor used (a
/// scheme-relative `Location`) and the port they came to.
async fn serve_custom(
    state: Arc<Edge>,
    custom: custom_domains::CustomHost,
    port: Option<String>,
    request: Request,
) -> Result<Response, std::convert::Infallible> {
    match custom {
        custom_domains::CustomHost::Serve { site } => {
            serve_target(state, Target::Published { site }, request).await
        }
        custom_domains::CustomHost::Unverified => {
            let response = plain(StatusCode::NOT_FOUND, "no such site\n");
            state
                .metrics
                .edge
                .record(response.status(), std::time::Duration::ZERO);
            Ok(response)
        }
        custom_domains::CustomHost::RedirectTo { primary } => {
            let started = std::time::Instant::now();
            let host = match port {
                Some(port) => format!("{primary}:{port}"),
                None => primary,
            };
            let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let response = match HeaderValue::from_str(&format!("//{host}{path_and_query}")) {
                Ok(location) => {
                    let mut response = Response::new(axum::body::Body::empty());
                    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
                    response.headers_mut().insert(header::LOCATION, location);
                    response
                }
                Err(_) => plain(StatusCode::BAD_REQUEST, "bad request path\n"),
            };
            state.metrics.edge.record(response.status(), started.elapsed());
            Ok(response)
        }
    }
}

async fn serve_sign_in(state: &Edge, target: &Target, request: &Parts, body: axum::body::Body) -> Response {
    let Ok(form) = axum::body::to_bytes(body, protection::MAX_SIGN_IN_FORM).await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "the sign-in form is too large\n");
    };
    match protection::sign_in(state, target, request, &form).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "site sign-in failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn serve(state: &Edge, target: Target, request: &Parts, body: axum::body::Body) -> Response {
    match serve_inner(state, target, request, body).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "edge failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn serve_inner(
    state: &Edge,
    target: Target,
    request: &Parts,
    body: axum::body::Body,
) -> anyhow::Result<Response> {
    let Some(decoded) = path::decode(request.uri.path()) else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad request path\n"));
    };
    let serving = match state.cache.serving_now(&target) {
        Some(hit) => hit,
        None => match load(state, &target).await? {
            Ok(loaded) => loaded,
            Err(answer) => return Ok(answer),
        },
    };
    let over_tls = request.extensions.get::<crate::http_server::OverTls>().is_some();
    if !over_tls
        && serving.transport.https_redirect
        && let Some(https) = state.config.https_listen
    {
        return Ok(transport::to_https(request, https.port()));
    }
    let transport = serving.transport;
    let mut response = serve_deploy(state, &target, serving, decoded, request, body).await?;
    if over_tls {
        transport::add_hsts(&transport, response.headers_mut());
    }
    Ok(response)
}

/// The answer of the deploy `serving` names for the `decoded` path.
async fn serve_deploy(
    state: &Edge,
    target: &Target,
    serving: cache::Serving,
    decoded: String,
    request: &Parts,
    body: axum::body::Body,
) -> anyhow::Result<Response> {
    let cache::Serving {
        index,
        immutable: permalink,
        guard,
        transport: _,
    } = serving;
    let method = &request.method;
    let reads_only = method == Method::GET || method == Method::HEAD;
    // Checked before any file is looked up or any request forwarded: a
    // visitor without access learns nothing of the deploy, not even which
    // paths it has.
    if let Some(guard) = &guard
        && let Some(refused) = protection::check(state, guard, request)
    {
        return Ok(refused);
    }
    // `Basic-Auth` in the deploy's `_headers`, as Netlify reads it.
    let mut private = guard.is_some();
    let site_path = format!("/{decoded}");
    if index.rules.has_basic_auth()
        && let Some(accepted) = index.rules.basic_auth_for(&site_path)
    {
        if !protection::basic_auth_allows(&accepted, &request.headers) {
            return Ok(protection::basic_auth_refusal());
        }
        private = true;
    }
    let visitor = Visitor::of(state, target, &index.rules, request).await?;
    // What a visitor with a token sees is theirs: no shared cache keeps it.
    private |= index.rules.uses_roles();
    // A proxy rewrite takes every method and the body; everything else
    // the edge serves is read-only. Most deploys have no proxy rule, and
    // route once.
    if index.rules.proxies()
        && let (Route::Proxy { url, headers, signed }, _) =
            index.route_with_rule(&decoded, &rule_request(request, &site_path, &visitor))
    {
        let mut added = headers;
        if let Some(variable) = &signed {
            match signature(state, target, variable).await? {
                Ok(value) => added.push((axum::http::HeaderName::from_static("x-nf-sign"), value)),
                Err(page) => return Ok(page),
            }
        }
        let mut response = match own_target(state, &url) {
            Some(own) => proxy_here(state, own, &url, &added, request, body).await,
            None => {
                state
                    .upstreams
                    .forward(&url, &added, request, body, peer_of(request))
                    .await
            }
        };
        // As on Netlify, the proxying site's custom headers are not added:
        // they apply only to files served from its own deploy, and the
        // upstream sets its own.
        if private {
            protection::make_private(response.headers_mut());
        }
        return Ok(response);
    }
    if !reads_only {
        return Ok((StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")], "").into_response());
    }
    let answer = answer_from(state, &index, permalink, &decoded, request, &visitor, private).await?;
    Ok(answer.response)
}

/// How many proxy rules one request may pass through on this controller
/// (a site proxying to a site proxying to ...) before it is answered 508:
/// two sites proxying to each other would otherwise never answer.
const MAX_PROXY_HOPS: u8 = 5;

/// How many proxy rules a request has passed through here so far; set on
/// the request a proxy rule makes, never read from a visitor.
#[derive(Debug, Clone, Copy)]
struct ProxyHops(u8);

/// The hostname a proxy rule's `url` names, when it is one this
/// controller serves: answered here, without a network round trip.
fn own_target(state: &Edge, url: &str) -> Option<Target> {
    let parsed = reqwest::Url::parse(url).ok()?;
    target_of_host(parsed.host_str()?, &state.config.domain)
}

/// Serves a proxy rule's `url` on one of this controller's own hostnames
/// (`target`) in-process: the request as an upstream would get it (the
/// forwarded headers and the rule's `added` ones, the body), and its answer
/// as it is. It is ours, so no private-address guard applies; the number
/// of hops is bounded.
async fn proxy_here(
    state: &Edge,
    target: Target,
    url: &str,
    added: &[(axum::http::HeaderName, HeaderValue)],
    request: &Parts,
    body: axum::body::Body,
) -> Response {
    let hops = request.extensions.get::<ProxyHops>().map_or(0, |hops| hops.0) + 1;
    if hops > MAX_PROXY_HOPS {
        return proxy::page(
            StatusCode::LOOP_DETECTED,
            &format!(
                "This page is proxied from site to site on this server more than {MAX_PROXY_HOPS} times; \
                 the sites' proxy rules send requests in a circle. Change one of them."
            ),
        );
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return proxy::page(
            StatusCode::BAD_GATEWAY,
            &format!("This page is proxied to `{url}`, which is not a valid URL."),
        );
    };
    let peer = peer_of(request);
    let mut headers = proxy::forwarded_headers(&request.headers, peer);
    for (name, value) in added {
        headers.insert(name.clone(), value.clone());
    }
    let authority = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    let Ok(host) = HeaderValue::from_str(&authority) else {
        return proxy::page(StatusCode::BAD_GATEWAY, "The proxied URL's host cannot be sent.");
    };
    headers.insert(header::HOST, host);
    let path_and_query = match parsed.query() {
        Some(query) => format!("{}?{query}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    let Ok(inner) = axum::http::Request::builder()
        .method(request.method.clone())
        .uri(path_and_query)
        .body(body)
    else {
        return proxy::page(
            StatusCode::BAD_GATEWAY,
            &format!("This page is proxied to `{url}`, whose path cannot be requested."),
        );
    };
    let (mut head, body) = inner.into_parts();
    head.headers = headers;
    head.extensions.insert(ProxyHops(hops));
    if let Some(peer) = peer {
        head.extensions.insert(axum::extract::ConnectInfo(peer));
    }
    Box::pin(serve(state, target, &head, body)).await
}

/// The `X-Nf-Sign` value of a proxy rule with `signed = "variable"`: a JWS
/// (HS256) signed with the site's variable, with the claims Netlify sends;
/// or a page saying the variable is missing.
async fn signature(
    state: &Edge,
    target: &Target,
    variable: &str,
) -> anyhow::Result<Result<HeaderValue, Response>> {
    let missing = || {
        Ok(Err(proxy::page(
            StatusCode::BAD_GATEWAY,
            &format!(
                "This page is proxied with a request signed with the site variable `{variable}`, which the \
                 site does not have; set it in the site's settings (environment variables)."
            ),
        )))
    };
    let Some(site) = state.db.site_by_name(target.site()).await? else {
        return Ok(Err(plain(StatusCode::NOT_FOUND, "no such site\n")));
    };
    let Some(stored) = state
        .db
        .site_env_vars(site.id)
        .await?
        .into_iter()
        .find(|var| var.name == variable)
    else {
        return missing();
    };
    let key = if stored.secret {
        match state
            .secrets
            .open_site_variable(site.id, &stored.name, &stored.value)
        {
            Some(key) => key,
            None => return missing(),
        }
    } else {
        stored.value
    };
    if key.is_empty() {
        return missing();
    }
    let claims = serde_json::json!({
        "netlify_id": site.id.to_string(),
        "site_url": state.urls.site_url(&site.name).trim_end_matches('/'),
        "iss": "netlify",
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )?;
    Ok(Ok(HeaderValue::from_str(&token)?))
}

/// An answer of a deploy, with what decided it.
struct Answer {
    response: Response,
    route: Route,
    /// The redirect rule that decided, if one did.
    rule: Option<rules::MatchedRule>,
    /// The size of the file served, if one is.
    file_size: Option<u64>,
}

/// How deploy `deploy_id` answers `request`, whose path decodes to
/// `decoded`. Serving and [`describe`] both come here, so a description
/// cannot disagree with what is served.
async fn answer(
    state: &Edge,
    deploy_id: &str,
    permalink: bool,
    decoded: &str,
    request: &Parts,
) -> anyhow::Result<Answer> {
    let Some(index) = state.cache.index(&state.db, deploy_id).await? else {
        // Removed between reading the pointer and the index.
        return Ok(Answer {
            response: plain(StatusCode::NOT_FOUND, "no such deploy\n"),
            route: Route::Plain(StatusCode::NOT_FOUND),
            rule: None,
            file_size: None,
        });
    };
    answer_from(
        state,
        &index,
        permalink,
        decoded,
        request,
        &Visitor::default(),
        false,
    )
    .await
}

/// How the deploy of `index` answers `request`: the one place both serving
/// and [`describe`] end up. A `private` answer is one only the visitor's
/// own browser may keep (see [`protection::make_private`]).
async fn answer_from(
    state: &Edge,
    index: &index::DeployIndex,
    permalink: bool,
    decoded: &str,
    request: &Parts,
    visitor: &Visitor,
    private: bool,
) -> anyhow::Result<Answer> {
    let headers = &request.headers;
    let site_path = format!("/{decoded}");
    let (route, rule) = index.route_with_rule(decoded, &rule_request(request, &site_path, visitor));
    let mut file_size = None;
    let mut response = match &route {
        Route::File { path, status } => {
            let Some(file) = index.file(path) else {
                anyhow::bail!(
                    "routed to `{path}`, which deploy {} does not have",
                    index.deploy_id
                );
            };
            file_size = Some(file.original.size);
            let answer = FileAnswer {
                path,
                file,
                status: *status,
                permalink,
                private,
            };
            respond::file_response(state, answer, &request.method, headers).await?
        }
        Route::Redirect { status, location } => {
            let mut response = Response::new(axum::body::Body::empty());
            *response.status_mut() = *status;
            let headers = response.headers_mut();
            headers.insert(header::LOCATION, HeaderValue::from_str(location)?);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
            response
        }
        Route::Plain(status) => plain(*status, "not found\n"),
        // Described only: serving forwards the request before coming here.
        Route::Proxy { url, .. } => {
            let mut response = Response::new(axum::body::Body::empty());
            response
                .headers_mut()
                .insert("x-proxied-to", HeaderValue::from_str(url)?);
            response
        }
    };
    let rule_headers = index.rules.headers_for(&site_path);
    add_rule_headers(response.headers_mut(), &rule_headers);
    // A file answer was made private as it was built, unless the deploy's
    // own `Cache-Control` replaced the edge's.
    let made_private = matches!(route, Route::File { .. })
        && !rule_headers.iter().any(|(name, _)| name == header::CACHE_CONTROL);
    if private && !made_private {
        protection::make_private(response.headers_mut());
    }
    Ok(Answer {
        response,
        route,
        rule,
        file_size,
    })
}

/// What the edge worked out about a visitor, for the rules that ask.
#[derive(Debug, Default)]
struct Visitor {
    country: Option<String>,
    roles: Vec<String>,
}

impl Visitor {
    /// Looks up only what `rules` use: most deploys pay nothing.
    async fn of(
        state: &Edge,
        target: &Target,
        rules: &rules::Rules,
        request: &Parts,
    ) -> anyhow::Result<Visitor> {
        let country = rules
            .uses_country()
            .then(|| state.visitors.country(&request.headers, peer_of(request)))
            .flatten();
        let mut roles = Vec::new();
        if rules.uses_roles()
            && let Some(site) = state.db.site_by_name(target.site()).await?
        {
            roles = state
                .identities
                .roles(&state.db, &state.secrets, site.id, &request.headers)
                .await?;
        }
        Ok(Visitor { country, roles })
    }
}

/// The address the request came from, as the listener saw it.
fn peer_of(request: &Parts) -> Option<std::net::SocketAddr> {
    request
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0)
}

/// `request` as the redirect rules see it; `site_path` is its decoded path.
fn rule_request<'a>(request: &'a Parts, site_path: &'a str, visitor: &'a Visitor) -> rules::Request<'a> {
    let headers = &request.headers;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    rules::Request {
        path: site_path,
        query: request.uri.query(),
        host,
        accept_language: headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        cookie: headers.get(header::COOKIE).and_then(|v| v.to_str().ok()),
        country: visitor.country.as_deref(),
        roles: &visitor.roles,
    }
}

/// What `target` serves, read from the database (the pointer) and the
/// index cache, then kept beside the pointer for the next request; or the
/// answer when it serves nothing.
async fn load(state: &Edge, target: &Target) -> anyhow::Result<Result<cache::Serving, Response>> {
    let generation = state.cache.generation();
    let (resolved, guard, transport) = state.cache.resolve(&state.db, target).await?;
    let (deploy_id, permalink) = match resolved {
        Resolved::Deploy { deploy_id, immutable } => (deploy_id, immutable),
        Resolved::NoSite => return Ok(Err(plain(StatusCode::NOT_FOUND, "no such site\n"))),
        Resolved::NothingPublished => {
            return Ok(Err(plain(
                StatusCode::NOT_FOUND,
                "this site has no published deploy yet; its first successful build publishes one\n",
            )));
        }
        Resolved::NoAlias => {
            return Ok(Err(plain(
                StatusCode::NOT_FOUND,
                "no deploy of this preview or branch\n",
            )));
        }
        Resolved::NoDeploy => return Ok(Err(plain(StatusCode::NOT_FOUND, "no such deploy\n"))),
    };
    let Some(index) = state.cache.index(&state.db, &deploy_id).await? else {
        // Removed between reading the pointer and the index.
        return Ok(Err(plain(StatusCode::NOT_FOUND, "no such deploy\n")));
    };
    state.cache.attach_index(target, &index, generation);
    Ok(Ok(cache::Serving {
        index,
        immutable: permalink,
        guard,
        transport,
    }))
}

/// The deploy's header rules: they replace the server's value of a header
/// (`Cache-Control`, `Content-Type`), except `Vary`, which they extend.
fn add_rule_headers(headers: &mut HeaderMap, extra: &[(header::HeaderName, HeaderValue)]) {
    for (name, value) in extra {
        if *name == header::VARY {
            headers.append(name.clone(), value.clone());
        } else {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// What a deploy would answer for a path, described rather than served:
/// the dashboard's "what would this path serve" check.
#[derive(Debug, Clone)]
pub enum Description {
    /// The edge refuses the path itself (`..`, control characters, ...).
    BadPath,
    Answer(Described),
}

#[derive(Debug, Clone)]
pub struct Described {
    pub status: StatusCode,
    /// What answers: a file, a redirect, or a plain answer.
    pub route: Route,
    pub file_size: Option<u64>,
    /// The redirect rule that decided, if one did.
    pub rule: Option<rules::MatchedRule>,
    /// The header rules that add headers.
    pub header_rules: Vec<rules::MatchedRule>,
    /// The headers the edge would send, in order.
    pub headers: Vec<(String, String)>,
}

/// How deploy `deploy_id` would answer a `GET` of `path_and_query` on
/// `host` (a permalink's host when `permalink`), without reading any file:
/// the edge's own path is taken with `HEAD`, so the status, the redirect
/// and header rules and the headers are exactly those it serves.
pub async fn describe(
    state: &Edge,
    deploy_id: &str,
    permalink: bool,
    host: &str,
    path_and_query: &str,
) -> anyhow::Result<Description> {
    let Ok(request) = axum::http::Request::builder()
        .method(Method::HEAD)
        .uri(path_and_query)
        .header(header::HOST, host)
        .body(())
    else {
        return Ok(Description::BadPath);
    };
    let (request, ()) = request.into_parts();
    let Some(decoded) = path::decode(request.uri.path()) else {
        return Ok(Description::BadPath);
    };
    let answer = answer(state, deploy_id, permalink, &decoded, &request).await?;
    // Only the description names the header rules; serving needs just
    // their headers.
    let header_rules = match state.cache.index(&state.db, deploy_id).await? {
        Some(index) => index.rules.matching_header_rules(&format!("/{decoded}")),
        None => Vec::new(),
    };
    let headers = answer
        .response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Description::Answer(Described {
        status: answer.response.status(),
        route: answer.route,
        file_size: answer.file_size,
        rule: answer.rule,
        header_rules,
        headers,
    }))
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, REVALIDATE),
        ],
        message,
    )
        .into_response()
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
}
