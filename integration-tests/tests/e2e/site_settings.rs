//! A site's build settings through the API: what is accepted, what is
//! refused (and how the refusal reads), and what is never shown again.

use crate::helpers::{SiteRepo, spawn_controller_only};
use serde_json::{Value, json};

#[tokio::test]
async fn site_settings_are_kept_refused_with_a_reason_and_secrets_never_shown_again() {
    let (app, _) = spawn_controller_only().await;
    let repo = SiteRepo::new();
    app.connect_site("settings", &repo, "octo/settings").await;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = app
            .http
            .request(method, app.api(&format!("/sites/settings{path}")))
            .bearer_auth(&app.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            )
        }
    };

    let (status, body) = call(reqwest::Method::GET, "/build-settings", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["memory_mib"].is_null(),
        "nothing set means the runner's defaults"
    );
    assert_eq!(body["cache"]["generation"], 0);

    let settings = app
        .set_build_settings(
            "settings",
            json!({ "timeout_seconds": 900, "memory_mib": 512, "cpus": 0.5, "pids": 100 }),
        )
        .await;
    assert_eq!(settings["cpus"], 0.5);
    assert_eq!(settings["timeout_seconds"], 900);

    for (bad, field) in [
        (json!({ "memory_mib": 1 }), "memory_mib"),
        (json!({ "timeout_seconds": 0 }), "timeout_seconds"),
        (json!({ "cpus": -1 }), "cpus"),
    ] {
        let (status, body) = call(reqwest::Method::PUT, "/build-settings", Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(field), "{body}");
    }
    let (status, body) = call(
        reqwest::Method::PUT,
        "/build-settings",
        Some(json!({ "memory": 5 })),
    )
    .await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");

    let (status, body) = call(reqwest::Method::POST, "/cache/clear", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cache"]["generation"], 1);
    assert_eq!(body["memory_mib"], 512, "clearing the cache keeps the limits");

    let (status, body) = call(
        reqwest::Method::PUT,
        "/env/2BAD-NAME",
        Some(json!({ "value": "x" })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a valid variable name"),
        "{body}"
    );

    let secret = app
        .set_env("settings", "DEPLOY_KEY", "very-secret-value", true)
        .await;
    assert!(secret["value"].is_null() && secret["secret"] == true, "{secret}");
    let (_, listed) = call(reqwest::Method::GET, "/env", None).await;
    assert!(!listed.to_string().contains("very-secret-value"), "{listed}");

    let (status, _) = call(reqwest::Method::DELETE, "/env/DEPLOY_KEY", None).await;
    assert_eq!(status, 204);
    let (status, body) = call(reqwest::Method::DELETE, "/env/DEPLOY_KEY", None).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("DEPLOY_KEY"), "{body}");
}
