//! The OpenAPI document of `/api/v1`, generated from the code: every route
//! is registered with `utoipa_axum::routes!` next to its handler's
//! `#[utoipa::path]` (path, parameters, body, answers, scope), so the
//! router and the document come from the same [`OpenApiRouter`] and cannot
//! drift apart.

use crate::state::ApiRouter;
use axum::Json;
use jamstack_proto::ErrorBody;
use std::sync::OnceLock;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "jamstack controller API",
        description = "Sites, builds, deploys and tokens of a self-hosted Git-driven build and deploy \
                       platform. Every operation but this document needs `Authorization: Bearer <token>`; \
                       the scope each needs is listed under `security` (`admin` implies every scope), \
                       and the permission it needs on the site, build or team its path names under \
                       `x-permission` (roles: owner, admin, developer, viewer). \
                       Lists are paged with `?page=&per_page=` and a `Link: rel=\"next\"` header. Errors \
                       are `{\"error\": \"...\"}`.",
    ),
    tags(
        (name = "sites", description = "Sites and their settings"),
        (name = "builds", description = "Builds, their logs and the queue"),
        (name = "deploys", description = "Deploys: direct deploys, diffs, publishing and rollback, locking"),
        (name = "notifications", description = "Signed webhooks, Slack-compatible chat messages and e-mails a site sends on build and deploy events, and their deliveries"),
        (name = "admin", description = "Tokens, runners, deliveries, installations, garbage collection"),
        (name = "teams", description = "Users, teams, members and their roles, team tokens"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document, as served at `GET /api/v1/openapi.json`.
#[utoipa::path(
    get,
    operation_id = "openapi_document",
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
    extensions(("x-permission" = json!("public"))),
)]
pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(document())
}

/// An empty router carrying the document's title, tags and description;
/// `api::routes` adds every route to it.
pub fn base() -> ApiRouter {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// The OpenAPI document, built once from the same routes the router serves,
/// with the bearer scheme and the error answers every operation shares.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let (_, mut doc) = super::routes().split_for_parts();
        complete(&mut doc);
        doc
    })
}

/// Adds what the handlers' annotations leave to one place: the bearer
/// token scheme, the error body schema, and 401/403 answers on every
/// operation that needs a token.
fn complete(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The admin token or an API token; the scopes listed per operation are those the \
                     token needs (any one of them).",
                ))
                .build(),
        ),
    );
    let name = <ErrorBody as utoipa::ToSchema>::name().to_string();
    components
        .schemas
        .entry(name.clone())
        .or_insert_with(<ErrorBody as utoipa::PartialSchema>::schema);
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name(&name)))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if operation.security.is_none() {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses
                .entry("401".into())
                .or_insert_with(|| error("No token, or an unknown or revoked one"));
            responses
                .entry("403".into())
                .or_insert_with(|| error("The token lacks the scope this operation needs (named)"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_needing_a_token_documents_one_scope_and_the_error_answers() {
        let doc = serde_json::to_value(document()).unwrap();
        let scopes: Vec<&str> = crate::auth::Scope::ALL.iter().map(|s| s.as_str()).collect();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                if path == "/api/v1/openapi.json" {
                    assert!(operation.get("security").is_none());
                    continue;
                }
                let scope = operation["security"][0]["token"][0]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} names its scope"));
                assert!(scopes.contains(&scope), "{method} {path}: {scope}");
                if method == "get" {
                    assert!(
                        matches!(scope, "read" | "admin"),
                        "reading {path} needs `read` (or `admin`), not `{scope}`"
                    );
                }
                for status in ["401", "403"] {
                    assert_eq!(
                        operation["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        assert!(operations > 40, "{operations}");
        assert_eq!(doc["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    }
}
