//! The end every sign-in through someone else shares (GitHub, an OpenID
//! Connect provider): the provider has proved who the person is; here that
//! becomes a user of ours, made on first sign-in, with the team memberships
//! the teams' automatic rules give. Opening the session is the caller's.

use crate::db::{Database, ExternalIdentity};

/// What a provider proved about the person signing in.
#[derive(Debug, Clone)]
pub struct ProvenPerson {
    pub identity: ExternalIdentity,
    /// The automatic-membership sources the provider showed the person
    /// belongs to, spelled as the rules are (`github-org:acme`,
    /// `github-team:acme/web`, `oidc-group:web`).
    pub sources: Vec<String>,
    /// The source kinds this provider can show (`github-`, `oidc-group:`);
    /// memberships made from other kinds are not ended by this sign-in.
    pub source_prefixes: &'static [&'static str],
}

/// The user `person` signs in as: the one their identity is linked to, or
/// a new one (no password) named after their login or e-mail, made unique
/// with a number when taken. Their automatic memberships are brought in
/// line with what the provider showed.
pub async fn user_for(db: &Database, person: &ProvenPerson) -> anyhow::Result<i64> {
    let identity = &person.identity;
    let user = match db.user_of_identity(&identity.provider, &identity.subject).await? {
        Some(user) => user,
        None => {
            let base = login_wanted(identity);
            let mut made = None;
            for attempt in 1..=100 {
                let login = if attempt == 1 {
                    base.clone()
                } else {
                    format!("{base}-{attempt}")
                };
                if let Some(user) = db.insert_user(&login, None).await? {
                    made = Some(user.id);
                    break;
                }
            }
            made.ok_or_else(|| anyhow::anyhow!("no free login near `{base}`"))?
        }
    };
    db.link_identity(user, identity).await?;
    db.claim_invitations_for(user, identity.github_login(), identity.email.as_deref())
        .await?;
    db.sync_auto_memberships(user, person.source_prefixes, &person.sources)
        .await?;
    Ok(user)
}

/// A login in the shape local logins take (1–64 of letters, digits, `-`,
/// `_`, `.`, `@`) from what the provider said, falling back to the
/// provider's subject.
fn login_wanted(identity: &ExternalIdentity) -> String {
    let said = identity
        .login
        .as_deref()
        .or(identity.email.as_deref())
        .unwrap_or(&identity.subject);
    let mut login: String = said
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '-'
            }
        })
        .take(56)
        .collect();
    if login.trim_matches('-').is_empty() {
        login = format!("user-{}", &identity.subject.chars().take(40).collect::<String>());
    }
    login
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(login: Option<&str>, email: Option<&str>) -> ExternalIdentity {
        ExternalIdentity {
            provider: "github".into(),
            subject: "583231".into(),
            login: login.map(str::to_owned),
            email: email.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_person_is_named_after_their_login_then_their_email() {
        assert_eq!(
            login_wanted(&identity(Some("octocat"), Some("o@x.dev"))),
            "octocat"
        );
        assert_eq!(login_wanted(&identity(None, Some("o@x.dev"))), "o@x.dev");
        assert_eq!(login_wanted(&identity(Some("Jane Doe"), None)), "Jane-Doe");
        assert_eq!(login_wanted(&identity(Some("日本"), None)), "user-583231");
    }
}
