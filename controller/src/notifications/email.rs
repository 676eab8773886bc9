//! E-mail notifications through the operator's SMTP server
//! (`--smtp-url`). The only user of lettre.
//!
//! The SMTP server is configured by the operator, so it is trusted: unlike
//! a hook's URL it is not held to public addresses. What a site's admin
//! chooses is only the recipients, bounded in number and checked as
//! addresses when the hook is made.

use crate::config::{SmtpSettings, SmtpTls};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// The most addresses one hook writes to.
pub const MAX_RECIPIENTS: usize = 20;
/// The longest address taken (RFC 5321's path limit less its brackets).
const MAX_ADDRESS_LENGTH: usize = 254;

/// The SMTP connection settings and the sender: cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the SMTP password: only the sender is shown.
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the settings and prepares connections; nothing is sent and no
    /// connection is made until the first e-mail. `timeout` bounds each
    /// exchange with the server.
    pub fn new(settings: &SmtpSettings, timeout: Duration) -> anyhow::Result<Self> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            anyhow::anyhow!(
                "--smtp-from `{}` is not an e-mail address ({e}); write e.g. deploys@example.com or \
                 \"Deploys <deploys@example.com>\"",
                settings.from
            )
        })?;
        let mut builder = match settings.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host),
            SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &settings.host,
            )),
        }
        .map_err(|e| {
            anyhow::anyhow!(
                "--smtp-url's host `{}` cannot be used for TLS: {e}",
                settings.host
            )
        })?;
        if let Some(port) = settings.port {
            builder = builder.port(port);
        }
        if let Some(username) = &settings.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                settings.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Mailer {
            transport: builder.timeout(Some(timeout)).build(),
            from,
        })
    }

    /// Sends one message to every address in `to`, with a plain-text body
    /// and its HTML alternative. Answers the server's reply code, or why
    /// there was none.
    pub async fn send(
        &self,
        to: &[String],
        subject: &str,
        text: String,
        html: String,
    ) -> Result<i64, String> {
        if to.is_empty() {
            return Err("the hook names no address".to_owned());
        }
        let mut message = Message::builder().from(self.from.clone()).subject(subject);
        for address in to {
            let address: Address = address
                .parse()
                .map_err(|e| format!("`{address}` is not an e-mail address: {e}"))?;
            message = message.to(Mailbox::new(None, address));
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("the e-mail could not be made: {e}"))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| format!("the SMTP server did not take the e-mail: {e}"))?;
        Ok(response.code().to_string().parse().unwrap_or(250))
    }
}

/// The addresses a hook writes to, checked and without repeats: at least
/// one, at most [`MAX_RECIPIENTS`]. The error says what to fix.
pub fn recipients(emails: &[String]) -> Result<Vec<String>, String> {
    let mut checked: Vec<String> = Vec::with_capacity(emails.len());
    for email in emails {
        let email = email.trim();
        if email.len() > MAX_ADDRESS_LENGTH {
            return Err(format!(
                "`emails`: an address is longer than {MAX_ADDRESS_LENGTH} characters"
            ));
        }
        // Stored comma-separated, and each is one mailbox: no lists, names or spaces.
        let valid = !email.contains([',', ' ', '<', '>']) && email.parse::<Address>().is_ok();
        if !valid {
            return Err(format!(
                "`emails`: `{email}` is not an e-mail address; write each as name@example.com"
            ));
        }
        if !checked.iter().any(|seen| seen.eq_ignore_ascii_case(email)) {
            checked.push(email.to_owned());
        }
    }
    if checked.is_empty() {
        return Err("`emails` is empty; a hook of kind `email` needs at least one address".to_owned());
    }
    if checked.len() > MAX_RECIPIENTS {
        return Err(format!(
            "`emails` names {} addresses; one hook writes to at most {MAX_RECIPIENTS} (a mailing list \
             address reaches more)",
            checked.len()
        ));
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn recipients_are_checked_bounded_and_kept_once() {
        assert_eq!(
            recipients(&owned(&[
                " ops@example.com",
                "dev@example.com",
                "OPS@example.com"
            ]))
            .unwrap(),
            owned(&["ops@example.com", "dev@example.com"])
        );
        for bad in [
            "not an address",
            "a@b.c, d@e.f",
            "Ops <ops@example.com>",
            "@example.com",
            "",
        ] {
            let error = recipients(&owned(&[bad])).unwrap_err();
            assert!(error.contains("is not an e-mail address"), "{bad}: {error}");
        }
        assert!(recipients(&[]).unwrap_err().contains("at least one"));
        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@example.com"))
            .collect();
        assert!(recipients(&many).unwrap_err().contains("at most 20"));
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(recipients(&[long]).unwrap_err().contains("longer than"));
    }

    #[test]
    fn a_sender_that_is_not_an_address_is_refused_at_start() {
        let settings = SmtpSettings::from_url("smtp://127.0.0.1:2525", SmtpTls::None, "nobody").unwrap();
        let error = Mailer::new(&settings, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(error.contains("--smtp-from `nobody`"), "{error}");
        let settings = SmtpSettings::from_url(
            "smtp://127.0.0.1:2525",
            SmtpTls::None,
            "Deploys <deploys@example.com>",
        )
        .unwrap();
        assert!(Mailer::new(&settings, Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn the_smtp_url_gives_host_port_tls_and_credentials_and_errors_never_repeat_it() {
        let settings = SmtpSettings::from_url(
            "smtp://mailer%40example.com:p%40ss@mail.example.com:2587",
            SmtpTls::Starttls,
            "deploys@example.com",
        )
        .unwrap();
        assert_eq!(settings.host, "mail.example.com");
        assert_eq!(settings.port, Some(2587));
        assert_eq!(settings.tls, SmtpTls::Starttls);
        assert_eq!(settings.username.as_deref(), Some("mailer@example.com"));
        assert_eq!(settings.password.as_deref(), Some("p@ss"));
        assert!(!format!("{settings:?}").contains("p@ss"), "{settings:?}");

        let smtps = SmtpSettings::from_url("smtps://mail.example.com", SmtpTls::Starttls, "a@b.cd").unwrap();
        assert_eq!((smtps.tls, smtps.port), (SmtpTls::Tls, None));

        let error = SmtpSettings::from_url(
            "http://user:hunter2@mail.example.com",
            SmtpTls::Starttls,
            "a@b.cd",
        )
        .unwrap_err();
        assert!(
            error.contains("scheme `http`") && !error.contains("hunter2"),
            "{error}"
        );
        let error = SmtpSettings::from_url("smtp://:hunter2@mail.example.com", SmtpTls::Starttls, "a@b.cd")
            .unwrap_err();
        assert!(error.contains("no user") && !error.contains("hunter2"), "{error}");
    }
}
