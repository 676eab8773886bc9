//! "Sign in with GitHub": GitHub's web application flow, OAuth 2.0 with
//! PKCE, and what the person's user access token shows about them.
//!
//! The flow: the browser is sent to [`OAuthClient::authorize_url`]; GitHub
//! asks the person to approve and sends them back with a one-time `code`;
//! [`OAuthClient::exchange_code`] trades it (with the client secret and the
//! PKCE verifier) for a user access token; [`person_of`] asks the REST API,
//! through octocrab and as that person, who they are and which
//! organizations and teams they belong to. The token is then dropped: it is
//! never stored, logged or shown.

use super::client::{CallError, GitHub, Method, call};
use crate::config::{GitHubOAuth, RetryPolicy};
use octocrab::Octocrab;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What the dashboard asks GitHub for: the person's organizations and
/// teams, private memberships included, and nothing to write with.
pub const SCOPE: &str = "read:org";

/// Pages of organizations and of teams read at most (100 a page): a
/// person's memberships past them are not seen.
pub const MAX_PAGES: u32 = 10;
const PER_PAGE: usize = 100;

/// The largest answer to the code exchange read (GitHub's is ~100 bytes).
const MAX_EXCHANGE_ANSWER: usize = 64 * 1024;

/// The OAuth client on GitHub's web side (`/login/oauth/...`).
pub struct OAuthClient {
    /// `https://github.com`, or a GitHub Enterprise Server's address.
    web_url: url::Url,
    client_id: String,
    client_secret: SecretString,
    http: reqwest::Client,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("web_url", &self.web_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in code bought no token.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// GitHub answered, and refused: the code was used, expired or not
    /// ours, the PKCE verifier did not match, or the client secret is wrong.
    #[error("GitHub refused the sign-in code ({error}: {description})")]
    Refused { error: String, description: String },
    #[error(transparent)]
    Call(#[from] CallError),
}

impl OAuthClient {
    pub fn new(web_url: &str, oauth: &GitHubOAuth) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(web_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http") && url.host().is_some())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--github-web-url `{web_url}` is not an http(s) URL; give https://github.com, \
                     or https://HOST for GitHub Enterprise Server"
                )
            })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("jamstack-controller/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(OAuthClient {
            web_url: parsed,
            client_id: oauth.client_id.clone(),
            client_secret: oauth.client_secret.clone(),
            http,
        })
    }

    fn web(&self, path: &str) -> url::Url {
        let mut url = self.web_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }

    /// Where to send the browser: GitHub's approval page for this client,
    /// coming back to `redirect_uri` with `state`, the code bound to the
    /// verifier whose S256 challenge is `code_challenge`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        let mut url = self.web("/login/oauth/authorize");
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("scope", SCOPE)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// Trades the one-time `code` for the person's user access token.
    /// Not retried: a code is good once, and a second try after a lost
    /// answer would be refused anyway.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<SecretString, ExchangeError> {
        const WHAT: &str = "the sign-in code exchange";
        let unreachable = |e: reqwest::Error| CallError::Unreachable {
            what: WHAT.to_owned(),
            detail: e.without_url().to_string(),
        };
        let mut response = self
            .http
            .post(self.web("/login/oauth/access_token"))
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_EXCHANGE_ANSWER {
                return Err(CallError::Unexpected {
                    what: WHAT.to_owned(),
                    detail: format!("the answer is longer than {MAX_EXCHANGE_ANSWER} bytes"),
                }
                .into());
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(Deserialize)]
        struct Answer {
            access_token: Option<String>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        if !(200..300).contains(&status) {
            let message = answer
                .as_ref()
                .and_then(|a| a.error_description.clone().or(a.error.clone()))
                .unwrap_or_else(|| super::client::truncate(String::from_utf8_lossy(&body).trim(), 200));
            return Err(CallError::Refused {
                what: WHAT.to_owned(),
                status,
                message,
                retry_after: None,
            }
            .into());
        }
        let Some(answer) = answer else {
            return Err(CallError::Unexpected {
                what: WHAT.to_owned(),
                detail: "the answer is not JSON".to_owned(),
            }
            .into());
        };
        match (answer.access_token, answer.error) {
            (Some(token), None) if !token.is_empty() => Ok(SecretString::from(token)),
            (_, error) => Err(ExchangeError::Refused {
                error: short(error.as_deref().unwrap_or("no access token")),
                description: short(answer.error_description.as_deref().unwrap_or("")),
            }),
        }
    }
}

/// Text from outside cut to a length fit for a page or a log line.
fn short(text: &str) -> String {
    super::client::truncate(text.trim(), 200)
}

/// Who a user access token belongs to, as GitHub says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubPerson {
    /// GitHub's numeric user id, which a rename does not change.
    pub id: u64,
    pub login: String,
    /// The primary e-mail address, when it is verified and the token may
    /// read it (`read:org` alone may not).
    pub email: Option<String>,
    /// The logins of the organizations they belong to.
    pub organizations: Vec<String>,
    /// The teams they belong to: (organization login, team slug).
    pub teams: Vec<(String, String)>,
}

/// Asks GitHub, as the person `token` belongs to, who they are and where
/// they belong. A refusal to list organizations or teams fails the whole:
/// memberships seen partly would end ones the person still holds.
pub async fn person_of(github: &GitHub, token: &SecretString) -> Result<GitHubPerson, CallError> {
    #[derive(Deserialize)]
    struct User {
        id: u64,
        login: String,
    }
    #[derive(Deserialize)]
    struct Email {
        email: String,
        primary: bool,
        verified: bool,
    }
    #[derive(Deserialize)]
    struct Organization {
        login: String,
    }
    #[derive(Deserialize)]
    struct Team {
        slug: String,
        organization: Organization,
    }
    let (crab, retry) = github.as_user(token)?;
    let user: User = call(&crab, retry, "your GitHub account", Method::Get, "/user", None).await?;
    let email = match call::<Vec<Email>>(
        &crab,
        retry,
        "your e-mail addresses",
        Method::Get,
        "/user/emails",
        None,
    )
    .await
    {
        Ok(emails) => emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email.trim().to_lowercase())
            .filter(|e| !e.is_empty() && e.len() <= 254),
        // Without `user:email` (or the App's e-mail permission) GitHub
        // refuses: the person simply has no e-mail here.
        Err(CallError::Refused {
            status: 401 | 403 | 404,
            ..
        }) => None,
        Err(e) => return Err(e),
    };
    let organizations: Vec<Organization> =
        all_pages(&crab, retry, "your organizations", "/user/orgs").await?;
    let teams: Vec<Team> = all_pages(&crab, retry, "your teams", "/user/teams").await?;
    Ok(GitHubPerson {
        id: user.id,
        login: user.login,
        email,
        organizations: organizations.into_iter().map(|o| o.login).collect(),
        teams: teams
            .into_iter()
            .map(|t| (t.organization.login, t.slug))
            .collect(),
    })
}

/// Every item of a listing, page by page, up to [`MAX_PAGES`] pages.
async fn all_pages<T: DeserializeOwned>(
    crab: &Octocrab,
    retry: RetryPolicy,
    what: &str,
    path: &str,
) -> Result<Vec<T>, CallError> {
    let mut all = Vec::new();
    for page in 1..=MAX_PAGES {
        let items: Vec<T> = call(
            crab,
            retry,
            what,
            Method::Get,
            &format!("{path}?per_page={PER_PAGE}&page={page}"),
            None,
        )
        .await?;
        let more = items.len() >= PER_PAGE;
        all.extend(items);
        if !more {
            return Ok(all);
        }
    }
    tracing::warn!(
        what,
        pages = MAX_PAGES,
        "GitHub listed more pages than are read; memberships past them are not seen"
    );
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(web: &str) -> OAuthClient {
        OAuthClient::new(
            web,
            &GitHubOAuth {
                client_id: "Iv1.abc".into(),
                client_secret: "s3cret".to_owned().into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn the_approval_page_is_asked_for_read_org_with_a_s256_challenge() {
        let url = client("https://ghe.example.com/").authorize_url(
            "https://deploy.example.com/login/github/callback",
            "st&te",
            "challenge",
        );
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/login/oauth/authorize");
        assert_eq!(parsed.host_str(), Some("ghe.example.com"));
        let query: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "Iv1.abc");
        assert_eq!(
            query["redirect_uri"],
            "https://deploy.example.com/login/github/callback"
        );
        assert_eq!(query["state"], "st&te");
        assert_eq!(query["scope"], "read:org");
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(!url.contains("s3cret"));
    }

    #[test]
    fn a_web_url_that_is_not_http_is_refused_naming_the_flag() {
        let oauth = GitHubOAuth {
            client_id: "x".into(),
            client_secret: "y".to_owned().into(),
        };
        let err = OAuthClient::new("github.com", &oauth).unwrap_err().to_string();
        assert!(err.contains("--github-web-url"), "{err}");
        assert!(format!("{:?}", client("https://github.com")).contains("Iv1.abc"));
        assert!(!format!("{:?}", client("https://github.com")).contains("s3cret"));
    }
}
