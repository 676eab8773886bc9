//! Where the controller and the sites it serves are reached, for links in
//! pages, reports to GitHub and notifications.

use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Urls {
    /// The base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub base_url: Arc<str>,
    /// The controller's address as the world reaches it (links sent to
    /// GitHub, registered webhooks): `Config::public_url`, else `base_url`.
    pub public_url: Arc<str>,
    /// Sites are served at `<label>.<domain>`.
    pub domain: Arc<str>,
}

impl Urls {
    /// `http://<host>.<domain>:<port>/`: where a hostname label is served.
    pub fn site_url(&self, label: &str) -> String {
        let port = self
            .base_url
            .rsplit_once(':')
            .map(|(_, port)| port.trim_end_matches('/'))
            .unwrap_or("80");
        format!("http://{label}.{}:{port}/", self.domain)
    }
}
