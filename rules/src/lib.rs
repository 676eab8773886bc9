//! Redirect and header rules: Netlify's `_redirects` and `_headers` files,
//! the same rules from `jamstack.toml`, and matching them against requests.
//!
//! A deploy's rules are read and checked once, when it is finalized
//! ([`parse_redirects_file`], [`parse_headers_file`], [`from_config`],
//! [`RuleSet::compile`]); a mistake fails the deploy with the file, the line
//! and the reason. The checked [`RuleSet`] is stored with the deploy and
//! compiled into [`Rules`] when the edge loads the deploy.
//!
//! Matching follows Netlify:
//! - Redirect rules are tried top to bottom (`_redirects` before
//!   `jamstack.toml`); the first that applies wins.
//! - A rule does not apply where a file would be served at the path
//!   ("shadowing"), unless it is forced with `!` (`force = true`).
//! - `:name` matches one path segment; a final `*` matches the rest of the
//!   path (also nothing), available as `:splat` in the target. Paths are
//!   matched case-sensitively, after percent-decoding, and a trailing slash
//!   does not matter (`/blog` and `/blog/` match the same rules).
//! - `301`, `302`, `303`, `307`, `308` redirect; the request's query string
//!   is passed on unless the rule matched on query parameters. `200`
//!   serves the target's file under the requested URL (a rewrite; `/*
//!   /index.html 200` is the SPA fallback); `404`, `410`, `451` serve the
//!   target's file with that status. A `200` (or `200!`) rule to an
//!   `http(s)://` URL proxies: the edge forwards the request to the URL
//!   (placeholders and `:splat` substituted, the request's query string
//!   passed on) with the rule's `headers` added ([`Action::Proxy`]).
//! - Header rules all apply, in order; a header set by several matching
//!   rules (or several times in one) gets their values joined with `, `,
//!   except that a header set again for the same path (twice in
//!   `_headers`, or in `_headers` and `jamstack.toml`) keeps only the later
//!   value. Header paths match regardless of case, a trailing slash and
//!   doubled slashes.
//! - As Netlify's parsers do: `/admin/* 200` (no target) serves the path
//!   itself; rules for `/.netlify` paths and malformed URLs are refused; in
//!   `_headers` a path without headers and a line without `:` are ignored
//!   with a [`RuleWarning`]; `jamstack.toml`'s paths are trimmed and given
//!   a leading `/`, and multi-line header values made one line.
//! - `Basic-Auth: user:pass user2:pass2` is not a header sent: it asks the
//!   visitor of the matching paths for one of those user names and
//!   passwords ([`Rules::basic_auth_for`]); the edge checks them.
//!
//! - `Country=us,ca` applies when the visitor's country (an ISO 3166 code,
//!   any case) is listed, `Role=admin,editor` when the visitor's verified
//!   token names one of the roles; the server works both out
//!   ([`Request::country`], [`Request::roles`]) and refuses a deploy using
//!   them when it cannot ([`RuleSet::first_rule_needing`]). A proxy rule
//!   with `signed = "NAME"` asks for its request to be signed with the
//!   site's variable `NAME` ([`Action::Proxy`]).
//!
//! Not supported, and refused with a reason rather than ignored: `404`,
//! `410` and `451` to another site, headers the server must own
//! (`Content-Length`, `Content-Encoding`, `ETag`, ...) and headers that
//! reach beyond the site (`Set-Cookie`).
//!
//! Rules are written by whoever can push (a fork's pull request too), so:
//! matching is linear in the path and the rule (header paths with `*` are
//! regular expressions of the `regex` crate, compiled once per deploy);
//! the number and length of rules are bounded ([`MAX_REDIRECT_RULES`] and
//! friends); and a value taken from the request never makes a `Location`
//! leave the site (a leading `/` or any `\` in it is percent-encoded, so
//! `/:to` with `to=/evil.com` is `/%2Fevil.com`, not `//evil.com`).

use http::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// Statuses a redirect rule may have.
pub const STATUSES: [u16; 9] = [200, 301, 302, 303, 307, 308, 404, 410, 451];

/// Headers the server sets itself; a rule may not.
const RESERVED_HEADERS: [&str; 16] = [
    "accept-ranges",
    "age",
    "allow",
    "alt-svc",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "date",
    "etag",
    "keep-alive",
    "location",
    "server",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a rule may not set, with why. A site's hostname is a subdomain
/// of the controller's domain, so a `Set-Cookie` with `Domain=` the parent
/// would plant cookies on every other site and on the dashboard (a fork's
/// pull request could overwrite the sign-in form's CSRF cookie); hop-by-hop
/// headers speak for the connection, which the server owns.
const REFUSED_HEADERS: [(&str, &str); 5] = [
    ("set-cookie", COOKIES_REACH_OTHER_SITES),
    ("set-cookie2", COOKIES_REACH_OTHER_SITES),
    ("proxy-authenticate", HOP_BY_HOP),
    ("proxy-connection", HOP_BY_HOP),
    ("te", HOP_BY_HOP),
];
const COOKIES_REACH_OTHER_SITES: &str = "a cookie set by the server would reach beyond this site's own pages \
     (cookies are shared with the other sites under the same domain); set cookies from the page's script instead";
const HOP_BY_HOP: &str = "it speaks for the connection, which the server owns";

/// A deploy's rules, checked, in the form they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuleSet {
    pub redirects: Vec<RedirectSpec>,
    pub headers: Vec<HeaderSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectSpec {
    /// Where the rule was written: `_redirects:3`, `jamstack.toml:12`.
    pub origin: String,
    pub from: String,
    pub to: String,
    pub status: u16,
    pub force: bool,
    /// Query parameters the request must carry: `(name, ":placeholder")`
    /// binds the value, `(name, "literal")` requires it.
    pub query: Vec<(String, String)>,
    /// `Language=`: the request's `Accept-Language` must name one.
    pub language: Vec<String>,
    /// `Cookie=`: the request must carry one of these cookies.
    pub cookie: Vec<String>,
    /// `Country=`: the visitor's country must be one of these ISO codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub country: Vec<String>,
    /// `Role=`: the visitor's verified token must name one of these roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<String>,
    /// `signed = "NAME"`: a proxied request carries an `X-Nf-Sign` token
    /// signed with the site's variable `NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
    /// Headers added to the request a proxy rule forwards (`headers = {..}`
    /// in `jamstack.toml`); empty for every other rule.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderSpec {
    pub origin: String,
    pub for_path: String,
    pub values: Vec<(String, String)>,
}

/// A mistake in a rule, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct RuleError {
    pub origin: String,
    pub message: String,
}

fn error(origin: &str, message: impl Into<String>) -> RuleError {
    RuleError {
        origin: origin.to_owned(),
        message: message.into(),
    }
}

/// An `http(s)://` URL with a host.
fn is_url(text: &str) -> bool {
    text.strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty())
}

fn is_path_or_url(text: &str) -> bool {
    text.starts_with('/') || is_url(text)
}

/// An `http(s)://` rule path or target must be a URL a browser would take
/// (Netlify's parsers refuse what `new URL()` refuses).
fn check_url(origin: &str, what: &str, text: &str) -> Result<(), RuleError> {
    if !is_url(text) {
        return Ok(());
    }
    match url::Url::parse(text) {
        Ok(parsed) if parsed.host_str().is_some_and(|host| !host.is_empty()) => Ok(()),
        Ok(_) => Err(error(
            origin,
            format!("the {what} `{text}` is a URL without a host"),
        )),
        Err(e) => Err(error(
            origin,
            format!("the {what} `{text}` is not a valid URL ({e}); write it as `https://host/path`"),
        )),
    }
}

/// `/.netlify` and what is under it, which Netlify keeps for itself.
fn is_reserved_path(path: &str) -> bool {
    path == "/.netlify" || path.starts_with("/.netlify/")
}

/// Parses a `_redirects` file: one rule per line,
/// `from [param=value ...] to [status[!]] [Language=.. Cookie=..]`;
/// `#` starts a comment.
pub fn parse_redirects_file(text: &str) -> Result<Vec<RedirectSpec>, RuleError> {
    let mut rules = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let origin = format!("_redirects:{}", number + 1);
        let tokens: Vec<&str> = line
            .split_whitespace()
            .take_while(|token| !token.starts_with('#'))
            .collect();
        if tokens.is_empty() {
            continue;
        }
        let from = tokens[0];
        if !is_path_or_url(from) {
            return Err(error(
                &origin,
                format!(
                    "`{from}` is not a path (starting with `/`) or an http(s):// URL; a rule reads `/from /to [status]`"
                ),
            ));
        }
        let mut rest = tokens[1..].iter().peekable();
        let mut query = Vec::new();
        while let Some(token) = rest.next_if(|t| t.contains('=') && !is_path_or_url(t)) {
            let (name, value) = token.split_once('=').unwrap_or((token, ""));
            if name.is_empty() {
                return Err(error(
                    &origin,
                    format!("`{token}` is a query parameter without a name"),
                ));
            }
            query.push((name.to_owned(), value.to_owned()));
        }
        let is_status = |token: &&&str| {
            let digits = token.trim_end_matches('!');
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        };
        // Netlify reads `/admin/* 200` (a splat and a rewrite status, no
        // target) as `/admin/* /admin/:splat 200`: the path is served as
        // it is, once the rule's conditions hold.
        let forwarded = rest
            .peek()
            .filter(|token| is_status(token) && parse_status(token).is_some_and(|(s, _)| s == 200))
            .and_then(|_| from.strip_suffix("/*"))
            .filter(|_| from.starts_with('/'))
            .map(|path| format!("{path}/:splat"));
        let to = match forwarded {
            Some(to) => to,
            None => {
                let Some(to) = rest.next() else {
                    return Err(error(
                        &origin,
                        format!("the rule for `{from}` has no target; a rule reads `/from /to [status]`"),
                    ));
                };
                if !is_path_or_url(to) {
                    let hint = if is_status(&to) {
                        "; only a rule for a path ending in `/*` with status 200 may leave out its target"
                    } else {
                        ""
                    };
                    return Err(error(
                        &origin,
                        format!(
                            "the target `{to}` is not a path (starting with `/`) or an http(s):// URL{hint}"
                        ),
                    ));
                }
                (*to).to_owned()
            }
        };
        let mut status = 301;
        let mut force = false;
        if let Some(token) = rest.next_if(is_status) {
            (status, force) = parse_status(token)
                .ok_or_else(|| error(&origin, unsupported_status(token.trim_end_matches('!'))))?;
        }
        let mut language = Vec::new();
        let mut cookie = Vec::new();
        let mut country = Vec::new();
        let mut role = Vec::new();
        for token in rest {
            let Some((key, values)) = token.split_once('=') else {
                return Err(error(
                    &origin,
                    format!(
                        "unexpected `{token}` after the status; expected conditions like `Language=en,de` or `Cookie=name`"
                    ),
                ));
            };
            let values = values.split(',').filter(|v| !v.is_empty()).map(str::to_owned);
            match key.to_ascii_lowercase().as_str() {
                "language" => language.extend(values),
                "cookie" => cookie.extend(values),
                "country" => country.extend(values),
                "role" => role.extend(values),
                _ => {
                    return Err(error(
                        &origin,
                        format!(
                            "unknown condition `{key}`; expected `Language`, `Country`, `Role` or `Cookie`"
                        ),
                    ));
                }
            }
        }
        rules.push(RedirectSpec {
            origin,
            from: from.to_owned(),
            to,
            status,
            force,
            query,
            language,
            cookie,
            country,
            role,
            signed: None,
            headers: Vec::new(),
        });
    }
    Ok(rules)
}

/// Reads a rule's status as Netlify writes it, in `_redirects` and in
/// `jamstack.toml` alike: `301`, or `200!` for a forced rule. `None` when
/// it is not one of [`STATUSES`].
pub fn parse_status(text: &str) -> Option<(u16, bool)> {
    let text = text.trim();
    let (digits, force) = match text.strip_suffix('!') {
        Some(digits) => (digits.trim_end(), true),
        None => (text, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let status = digits.parse().ok().filter(|s| STATUSES.contains(s))?;
    Some((status, force))
}

fn unsupported_status(status: &str) -> String {
    format!(
        "status {status} is not supported; expected 200 (rewrite), 301, 302, 303, 307 or 308 (redirect), \
         or 404, 410 or 451 (serve the target with that status)"
    )
}

/// Something in a rule file that Netlify ignores, and so do we, but that
/// its author most likely did not mean: said in the build log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleWarning {
    /// Where: `_headers:3`.
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// A `_headers` file's rules, and the lines Netlify ignores in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersFile {
    pub rules: Vec<HeaderSpec>,
    pub warnings: Vec<RuleWarning>,
}

/// Parses a `_headers` file: a path line, then the `Name: value` lines
/// for it (indented or not); `#` starts a comment line. What Netlify
/// ignores is ignored (see [`parse_headers_file_with_warnings`]).
pub fn parse_headers_file(text: &str) -> Result<Vec<HeaderSpec>, RuleError> {
    parse_headers_file_with_warnings(text).map(|file| file.rules)
}

/// [`parse_headers_file`], with what was ignored. As Netlify's
/// `netlify-headers-parser` does, a path with no headers under it and a
/// line that is neither a path nor has a `:` are ignored (each with a
/// warning); a header without a name or a value is a mistake. A header
/// named twice under one path gets both values, joined with `, `.
pub fn parse_headers_file_with_warnings(text: &str) -> Result<HeadersFile, RuleError> {
    let mut file = HeadersFile::default();
    let mut rules: Vec<HeaderSpec> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let origin = format!("_headers:{}", number + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if is_path_or_url(line) {
            if line.split_whitespace().count() > 1 {
                return Err(error(
                    &origin,
                    format!("`{line}`: a path line holds one path and nothing else"),
                ));
            }
            rules.push(HeaderSpec {
                origin,
                for_path: line.to_owned(),
                values: Vec::new(),
            });
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            file.warnings.push(RuleWarning {
                origin,
                message: format!(
                    "`{line}` is neither a path (starting with `/`) nor a header (`Name: value`); it is ignored"
                ),
            });
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return Err(error(
                &origin,
                format!("`{line}` has no header name before the `:`; write `Name: value`"),
            ));
        }
        if value.is_empty() {
            return Err(error(
                &origin,
                format!("the header `{name}` has no value; write `{name}: value` or remove the line"),
            ));
        }
        let Some(rule) = rules.last_mut() else {
            return Err(error(
                &origin,
                format!("the header `{name}` comes before any path"),
            ));
        };
        rule.values.push((name.to_owned(), value.to_owned()));
    }
    for rule in rules {
        if rule.values.is_empty() {
            file.warnings.push(RuleWarning {
                message: format!(
                    "the path `{}` has no headers under it; it is ignored",
                    rule.for_path
                ),
                origin: rule.origin,
            });
        } else {
            file.rules.push(rule);
        }
    }
    Ok(file)
}

/// The `[[redirects]]` and `[[headers]]` rules of `jamstack.toml`, as the
/// runner sent them.
pub fn from_config(
    redirects: &[jamstack_proto::RedirectRule],
    headers: &[jamstack_proto::HeaderRule],
) -> Result<RuleSet, RuleError> {
    let origin = |kind: &str, line: u32, index: usize| {
        if line > 0 {
            format!("jamstack.toml:{line}")
        } else {
            format!("jamstack.toml [[{kind}]] #{}", index + 1)
        }
    };
    let mut set = RuleSet::default();
    for (index, rule) in redirects.iter().enumerate() {
        let origin = origin("redirects", rule.line, index);
        set.redirects.push(RedirectSpec {
            origin,
            from: config_path(&rule.from),
            to: rule.to.trim().to_owned(),
            status: rule.status,
            force: rule.force,
            query: rule.query.clone().into_iter().collect(),
            language: rule.conditions.language.clone(),
            cookie: rule.conditions.cookie.clone(),
            country: rule.conditions.country.clone(),
            role: rule.conditions.role.clone(),
            signed: rule.signed.clone(),
            headers: rule.headers.clone().into_iter().collect(),
        });
    }
    for (index, rule) in headers.iter().enumerate() {
        set.headers.push(HeaderSpec {
            origin: origin("headers", rule.line, index),
            for_path: config_path(&rule.for_path),
            values: rule
                .values
                .iter()
                .map(|(name, value)| (name.trim().to_owned(), config_header_value(value)))
                .collect(),
        });
    }
    Ok(set)
}

/// A `from` or `for` of `jamstack.toml` as Netlify reads it: trimmed, and
/// a path without its leading `/` given one (`blog/*` is `/blog/*`).
fn config_path(written: &str) -> String {
    let path = written.trim();
    if path.is_empty() || is_path_or_url(path) || path.contains("://") {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// A header value of `jamstack.toml` as Netlify reads it: a multi-line
/// string is one value over several lines, and the values it lists are
/// separated by `, ` (`max-age=0,\n  no-cache` is `max-age=0, no-cache`).
fn config_header_value(written: &str) -> String {
    let one_line = written
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    one_line
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(", ")
        .trim()
        .to_owned()
}

impl RuleSet {
    /// `self`'s rules followed by `later`'s.
    pub fn then(mut self, later: RuleSet) -> RuleSet {
        self.redirects.extend(later.redirects);
        self.headers.extend(later.headers);
        self
    }

    /// The first redirect rule with a condition of `kind`, which the server
    /// must be set up for: a deploy using one is refused where it is not.
    pub fn first_rule_needing(&self, kind: Needs) -> Option<&RedirectSpec> {
        self.redirects.iter().find(|rule| match kind {
            Needs::Country => !rule.country.is_empty(),
            Needs::Role => !rule.role.is_empty(),
        })
    }

    /// Checks every rule and makes the matcher.
    pub fn compile(&self) -> Result<Rules, RuleError> {
        self.check_limits()?;
        let redirects = self
            .redirects
            .iter()
            .map(Redirect::compile)
            .collect::<Result<_, _>>()?;
        let mut headers: Vec<HeaderRule> = self
            .headers
            .iter()
            .map(HeaderRule::compile)
            .collect::<Result<_, _>>()?;
        later_values_win(&mut headers);
        let basic_auth = headers.iter().any(|rule| !rule.basic_auth.is_empty());
        let proxies = self
            .redirects
            .iter()
            .any(|rule| rule.status == 200 && is_url(&rule.to));
        Ok(Rules {
            redirects,
            headers,
            basic_auth,
            proxies,
            uses_country: self.first_rule_needing(Needs::Country).is_some(),
            uses_roles: self.first_rule_needing(Needs::Role).is_some(),
        })
    }

    /// Every request is matched against the rules, so a deploy's author
    /// could make every visit slow with enough of them, or long enough
    /// ones: how many and how long is bounded, and the first rule past a
    /// bound is named.
    fn check_limits(&self) -> Result<(), RuleError> {
        let too_many = |kind: &str, count: usize, limit: usize, origin: &str| {
            error(
                origin,
                format!(
                    "this deploy has {count} {kind} rules, more than the limit of {limit}; say the same in \
                     fewer rules with splats (`/blog/*`) and placeholders (`/:year/:slug`)"
                ),
            )
        };
        if let Some(first_over) = self.redirects.get(MAX_REDIRECT_RULES) {
            return Err(too_many(
                "redirect",
                self.redirects.len(),
                MAX_REDIRECT_RULES,
                &first_over.origin,
            ));
        }
        if let Some(first_over) = self.headers.get(MAX_HEADER_RULES) {
            return Err(too_many(
                "header",
                self.headers.len(),
                MAX_HEADER_RULES,
                &first_over.origin,
            ));
        }
        let too_long = |origin: &str, what: &str, text: &str, limit: usize| {
            let start: String = text.chars().take(40).collect();
            error(
                origin,
                format!(
                    "the {what} `{start}…` is {} bytes long, more than the limit of {limit}; shorten it",
                    text.len()
                ),
            )
        };
        for rule in &self.redirects {
            for (what, text) in [("path", &rule.from), ("target", &rule.to)] {
                if text.len() > MAX_RULE_PATH {
                    return Err(too_long(&rule.origin, what, text, MAX_RULE_PATH));
                }
            }
            let conditions = rule.query.iter().flat_map(|(name, value)| [name, value]);
            let values = (rule.language.iter().chain(&rule.cookie))
                .chain(&rule.country)
                .chain(&rule.role)
                .chain(&rule.signed);
            for text in conditions.chain(values) {
                if text.len() > MAX_RULE_PATH {
                    return Err(too_long(&rule.origin, "condition", text, MAX_RULE_PATH));
                }
            }
            if rule.headers.len() > MAX_HEADERS_PER_RULE {
                return Err(error(
                    &rule.origin,
                    format!(
                        "the rule for `{}` adds {} headers, more than the limit of {MAX_HEADERS_PER_RULE}",
                        rule.from,
                        rule.headers.len()
                    ),
                ));
            }
            for (name, value) in &rule.headers {
                if name.len() + value.len() > MAX_HEADER_TEXT {
                    return Err(too_long(
                        &rule.origin,
                        "header",
                        &format!("{name}: {value}"),
                        MAX_HEADER_TEXT,
                    ));
                }
            }
        }
        for rule in &self.headers {
            if rule.for_path.len() > MAX_RULE_PATH {
                return Err(too_long(&rule.origin, "path", &rule.for_path, MAX_RULE_PATH));
            }
            if let Some(first_over) = rule.values.get(MAX_HEADERS_PER_RULE) {
                return Err(error(
                    &rule.origin,
                    format!(
                        "the path `{}` has {} headers, more than the limit of {MAX_HEADERS_PER_RULE} \
                         (the first over it is `{}`)",
                        rule.for_path,
                        rule.values.len(),
                        first_over.0
                    ),
                ));
            }
            for (name, value) in &rule.values {
                if name.len() + value.len() > MAX_HEADER_TEXT {
                    return Err(too_long(
                        &rule.origin,
                        "header",
                        &format!("{name}: {value}"),
                        MAX_HEADER_TEXT,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A header set for the same path by several rules (twice in `_headers`,
/// or in `_headers` and `jamstack.toml`) is sent once, with the value of
/// the last rule, as Netlify does; the values one rule gives a header
/// (`_headers` lines naming it twice) are all sent, joined.
fn later_values_win(rules: &mut [HeaderRule]) {
    // Which rule last sets each header for each path: one pass, so a
    // deploy with the most rules and headers allowed is still quick.
    type Key = (Option<String>, String, HeaderName);
    let mut last: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    for (index, rule) in rules.iter().enumerate() {
        for (name, _) in &rule.values {
            last.insert((rule.host.clone(), rule.path_key.clone(), name.clone()), index);
        }
    }
    for (index, rule) in rules.iter_mut().enumerate() {
        let (host, path) = (rule.host.clone(), rule.path_key.clone());
        rule.values
            .retain(|(name, _)| last.get(&(host.clone(), path.clone(), name.clone())) == Some(&index));
    }
}

/// The most redirect rules a deploy may have (`_redirects` and
/// `jamstack.toml` together); Netlify advises staying under this too.
pub const MAX_REDIRECT_RULES: usize = 10_000;
/// The most header rules (paths) a deploy may have.
pub const MAX_HEADER_RULES: usize = 1_000;
/// The longest path, target or condition of a rule, in bytes.
pub const MAX_RULE_PATH: usize = 2_048;
/// The most headers one header rule may set.
pub const MAX_HEADERS_PER_RULE: usize = 100;
/// The longest `Name: value` a header rule may set, in bytes.
pub const MAX_HEADER_TEXT: usize = 8_192;

// ---------------------------------------------------------------------------
// Compiled rules and matching.

/// A request as the rules see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The percent-decoded path, starting with `/`.
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The `Host` header's name, without the port.
    pub host: &'a str,
    pub accept_language: Option<&'a str>,
    pub cookie: Option<&'a str>,
    /// The visitor's country (ISO 3166 code, any case), if known; looked
    /// up only for rules that ask ([`Rules::uses_country`]).
    pub country: Option<&'a str>,
    /// The roles of the visitor's verified token; empty without one.
    /// Worked out only for rules that ask ([`Rules::uses_roles`]).
    pub roles: &'a [String],
}

/// A condition the server must be able to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// `Country=`: where the visitor is.
    Country,
    /// `Role=`: who the visitor is.
    Role,
}

/// What a matching redirect rule says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer `status` with `Location: location`.
    Redirect { status: u16, location: String },
    /// Serve the file at `path` (percent-decoded, starting with `/`) with
    /// `status`, under the requested URL.
    Rewrite { status: u16, path: String },
    /// Forward the request to `url` (an `http(s)://` URL, the request's
    /// query string included) with `headers` added, and answer with what
    /// comes back.
    Proxy {
        url: String,
        headers: Vec<(HeaderName, HeaderValue)>,
        /// `signed = "NAME"`: sign the request with the site's variable.
        signed: Option<String>,
    },
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    redirects: Vec<Redirect>,
    headers: Vec<HeaderRule>,
    /// Some header rule asks for `Basic-Auth`: a deploy without one pays
    /// nothing to find out.
    basic_auth: bool,
    /// Some rule proxies: the edge looks for one before anything else.
    proxies: bool,
    /// Some rule has a `Country` condition.
    uses_country: bool,
    /// Some rule has a `Role` condition.
    uses_roles: bool,
}

/// A user name and password a `Basic-Auth` rule accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredential {
    pub user: String,
    pub password: String,
}

/// The prefix Netlify's `_headers` uses for password-protected paths.
pub const BASIC_AUTH: &str = "basic-auth";

/// A rule that applied to a request, as its author wrote it: where
/// (`_redirects:3`, `jamstack.toml:12`) and what (`/old /new 301`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedRule {
    pub origin: String,
    pub rule: String,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.redirects.is_empty() && self.headers.is_empty()
    }

    /// Whether some redirect rule proxies (a `200` to an `http(s)://` URL).
    pub fn proxies(&self) -> bool {
        self.proxies
    }

    /// Whether some rule has a `Country` condition: only then is the
    /// visitor's country looked up.
    pub fn uses_country(&self) -> bool {
        self.uses_country
    }

    /// Whether some rule has a `Role` condition: only then is the visitor's
    /// token verified.
    pub fn uses_roles(&self) -> bool {
        self.uses_roles
    }

    /// The action of the first redirect rule that applies to `request`.
    /// `file_exists` says whether a file would be served at the path: only
    /// forced rules apply then.
    pub fn redirect_for(&self, request: &Request<'_>, file_exists: bool) -> Option<Action> {
        self.matching_redirect(request, file_exists)
            .map(|(action, _)| action)
    }

    /// Like [`Rules::redirect_for`], with the rule that decided.
    pub fn matching_redirect(
        &self,
        request: &Request<'_>,
        file_exists: bool,
    ) -> Option<(Action, MatchedRule)> {
        self.redirects
            .iter()
            .filter(|rule| rule.force || !file_exists)
            .find_map(|rule| Some((rule.apply(request)?, rule.written.clone())))
    }

    /// Whether any path of the deploy asks for `Basic-Auth`.
    pub fn has_basic_auth(&self) -> bool {
        self.basic_auth
    }

    /// The credentials `path` (decoded, starting with `/`) accepts, from
    /// every matching rule with `Basic-Auth`; `None` when no such rule
    /// matches and the path is open.
    pub fn basic_auth_for(&self, path: &str) -> Option<Vec<&BasicCredential>> {
        if !self.basic_auth {
            return None;
        }
        let path = normalize(path);
        let accepted: Vec<&BasicCredential> = self
            .headers
            .iter()
            .filter(|rule| !rule.basic_auth.is_empty() && rule.matches(&path))
            .flat_map(|rule| &rule.basic_auth)
            .collect();
        (!accepted.is_empty()).then_some(accepted)
    }

    /// The header rules that apply to `path` (decoded, starting with `/`),
    /// in the order [`Rules::headers_for`] applies them.
    pub fn matching_header_rules(&self, path: &str) -> Vec<MatchedRule> {
        let path = normalize(path);
        self.headers
            .iter()
            .filter(|rule| rule.matches(&path))
            .map(|rule| rule.written.clone())
            .collect()
    }

    /// The headers every matching header rule adds for `path` (decoded,
    /// starting with `/`), values of a repeated name joined with `, `.
    pub fn headers_for(&self, path: &str) -> Vec<(HeaderName, HeaderValue)> {
        let path = normalize(path);
        let mut out: Vec<(HeaderName, String)> = Vec::new();
        for rule in self.headers.iter().filter(|rule| rule.matches(&path)) {
            for (name, value) in &rule.values {
                match out.iter_mut().find(|(n, _)| n == name) {
                    Some((_, joined)) => {
                        joined.push_str(", ");
                        joined.push_str(value);
                    }
                    None => out.push((name.clone(), value.clone())),
                }
            }
        }
        out.into_iter()
            .filter_map(|(name, value)| Some((name, HeaderValue::from_str(&value).ok()?)))
            .collect()
    }
}

/// `path` with every run of `/` made one.
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Header paths match regardless of case, as Netlify's do.
fn same_path(pattern: &str, path: &str) -> bool {
    pattern.eq_ignore_ascii_case(path)
        || (!pattern.is_ascii() && pattern.to_lowercase() == path.to_lowercase())
}

/// A path without a trailing slash (but `/` for the root).
fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(String),
}

/// A `from` path: segments, and whether a final `*` takes the rest.
#[derive(Debug, Clone)]
struct PathPattern {
    segments: Vec<Segment>,
    splat: bool,
}

fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits `http(s)://host/path` into the lowercase host and the path.
fn split_url(text: &str) -> (Option<String>, &str) {
    match text.split_once("://") {
        Some((_, rest)) if is_url(text) => {
            let (host, path) = rest
                .find('/')
                .map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
            let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
            (Some(host.to_ascii_lowercase()), path)
        }
        _ => (None, text),
    }
}

fn decode(origin: &str, what: &str, text: &str) -> Result<String, RuleError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| {
            error(
                origin,
                format!("the {what} `{text}` is not valid percent-encoded UTF-8"),
            )
        })
}

impl PathPattern {
    fn compile(origin: &str, path: &str) -> Result<PathPattern, RuleError> {
        if path.contains('?') {
            return Err(error(
                origin,
                format!("`{path}`: match query parameters with `name=:value` after the path, not with `?`"),
            ));
        }
        let decoded = decode(origin, "path", path)?;
        let parts: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::new();
        let mut splat = false;
        for (index, part) in parts.iter().enumerate() {
            if *part == "*" && index == parts.len() - 1 {
                splat = true;
            } else if part.contains('*') {
                return Err(error(
                    origin,
                    format!("`{path}`: `*` may only be a whole last segment, as in `/blog/*`"),
                ));
            } else if let Some(name) = part.strip_prefix(':') {
                if !is_placeholder_name(name) {
                    return Err(error(
                        origin,
                        format!(
                            "`{path}`: `{part}` is not a placeholder; use letters, digits and `_`, as in `:slug`"
                        ),
                    ));
                }
                segments.push(Segment::Placeholder(name.to_owned()));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(PathPattern { segments, splat })
    }

    /// The placeholders and splat `path` binds, if it matches.
    fn matches(&self, path: &str) -> Option<Bindings> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let fits = if self.splat {
            parts.len() >= self.segments.len()
        } else {
            parts.len() == self.segments.len()
        };
        if !fits {
            return None;
        }
        let mut bindings = Bindings::default();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Literal(_) => return None,
                Segment::Placeholder(name) => bindings.values.push((name.clone(), (*part).to_owned())),
            }
        }
        if self.splat {
            bindings.splat = Some(parts[self.segments.len()..].join("/"));
        }
        Some(bindings)
    }
}

#[derive(Debug, Default)]
struct Bindings {
    values: Vec<(String, String)>,
    splat: Option<String>,
}

impl Bindings {
    fn get(&self, name: &str) -> Option<&str> {
        if name == "splat" {
            return self.splat.as_deref();
        }
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `target` with every `:name` it binds replaced; `encode` percent-
    /// encodes the values (for a `Location` header).
    fn substitute(&self, target: &str, encode: bool) -> String {
        let mut out = String::with_capacity(target.len());
        let mut rest = target;
        while let Some(at) = rest.find(':') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let name_len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            match self.get(&after[..name_len]).filter(|_| name_len > 0) {
                Some(value) if encode => out.push_str(&location_part(value)),
                Some(value) => out.push_str(value),
                None => {
                    out.push(':');
                    out.push_str(&after[..name_len]);
                }
            }
            rest = &after[name_len..];
        }
        out.push_str(rest);
        out
    }
}

/// A value bound from the request (a path segment, the splat, a query
/// parameter), encoded for a `Location` header. Browsers read `//host` and
/// `/\host` as another site, so a value must not start a path with a
/// second `/`, and a `\` is never left as it is: a leading `/` and every
/// `\` are percent-encoded, so the `Location` stays on the rule's own site.
fn location_part(value: &str) -> String {
    let encoded = encode_path(value).replace('\\', "%5C");
    match encoded.strip_prefix('/') {
        Some(rest) => format!("%2F{rest}"),
        None => encoded,
    }
}

#[derive(Debug, Clone)]
enum QueryMatch {
    Bind(String),
    Equals(String),
}

#[derive(Debug, Clone)]
struct Redirect {
    written: MatchedRule,
    host: Option<String>,
    from: PathPattern,
    query: Vec<(String, QueryMatch)>,
    to: String,
    status: u16,
    force: bool,
    language: Vec<String>,
    cookie: Vec<String>,
    /// Lowercase ISO codes.
    country: Vec<String>,
    role: Vec<String>,
    /// Added to a proxied request.
    headers: Vec<(HeaderName, HeaderValue)>,
    signed: Option<String>,
}

impl Redirect {
    fn compile(spec: &RedirectSpec) -> Result<Redirect, RuleError> {
        let origin = spec.origin.as_str();
        if !is_path_or_url(&spec.from) {
            return Err(error(
                origin,
                format!(
                    "`{}` is not a path (starting with `/`) or an http(s):// URL",
                    spec.from
                ),
            ));
        }
        if !is_path_or_url(&spec.to) {
            return Err(error(
                origin,
                format!(
                    "the target `{}` is not a path (starting with `/`) or an http(s):// URL",
                    spec.to
                ),
            ));
        }
        if !STATUSES.contains(&spec.status) {
            return Err(error(origin, unsupported_status(&spec.status.to_string())));
        }
        for (what, text) in [("path", &spec.from), ("target", &spec.to)] {
            check_url(origin, what, text)?;
        }
        let (host, path) = split_url(&spec.from);
        if is_reserved_path(path) {
            return Err(error(
                origin,
                format!(
                    "`{}`: paths under `/.netlify` are reserved (Netlify refuses rules for them too); \
                     choose another path",
                    spec.from
                ),
            ));
        }
        let redirects = (300..400).contains(&spec.status);
        let proxies = spec.status == 200 && is_url(&spec.to);
        if !redirects && !proxies && is_url(&spec.to) {
            return Err(error(
                origin,
                format!(
                    "status {} to `{}` would serve another site's page with that status, which this server \
                     does not do; proxy it with 200 or redirect with 301 or 302",
                    spec.status, spec.to
                ),
            ));
        }
        if !redirects && !proxies {
            decode(origin, "target", &spec.to)?;
        }
        if !proxies && spec.signed.is_some() {
            return Err(error(
                origin,
                "`signed` signs a proxied request, and this rule does not proxy \
                 (a proxy rule has status 200 and an http(s):// target); remove it",
            ));
        }
        if let Some(name) = &spec.signed
            && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(error(
                origin,
                format!("`signed = {name:?}` must name a site variable (letters, digits and `_`)"),
            ));
        }
        if !proxies && !spec.headers.is_empty() {
            return Err(error(
                origin,
                "`headers` on a redirect are sent with a proxied request, and this rule does not proxy \
                 (a proxy rule has status 200 and an http(s):// target); remove them",
            ));
        }
        let mut headers = Vec::new();
        for (name, value) in &spec.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error(origin, format!("`{name}` is not a valid header name")))?;
            if header == http::header::HOST || RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(error(
                    origin,
                    format!("`{name}` is set by the proxy itself and cannot be set by a rule; remove it"),
                ));
            }
            let value = HeaderValue::from_str(value).map_err(|_| {
                error(
                    origin,
                    format!("the value of `{name}` has characters a header cannot carry"),
                )
            })?;
            headers.push((header, value));
        }
        let from = PathPattern::compile(origin, path)?;
        let query = spec
            .query
            .iter()
            .map(|(name, value)| match value.strip_prefix(':') {
                Some(bound) if is_placeholder_name(bound) => {
                    Ok((name.clone(), QueryMatch::Bind(bound.to_owned())))
                }
                Some(_) => Err(error(
                    origin,
                    format!("`{name}={value}`: `{value}` is not a placeholder"),
                )),
                None => Ok((name.clone(), QueryMatch::Equals(value.clone()))),
            })
            .collect::<Result<_, _>>()?;
        let conditions: String = spec
            .query
            .iter()
            .map(|(name, value)| format!(" {name}={value}"))
            .collect();
        if spec.query.iter().any(|(name, _)| name.is_empty()) {
            return Err(error(origin, "a query parameter name is empty"));
        }
        let written_conditions = [
            ("Language", &spec.language),
            ("Country", &spec.country),
            ("Role", &spec.role),
            ("Cookie", &spec.cookie),
        ];
        for (key, values) in written_conditions {
            if let Some(bad) = values
                .iter()
                .find(|value| value.is_empty() || value.chars().any(char::is_whitespace))
            {
                return Err(error(
                    origin,
                    format!("the {key} condition value {bad:?} is empty or contains whitespace"),
                ));
            }
        }
        let mut trailing = String::new();
        for (key, values) in written_conditions {
            if !values.is_empty() {
                trailing.push_str(&format!(" {key}={}", values.join(",")));
            }
        }
        let force = if spec.force { "!" } else { "" };
        Ok(Redirect {
            written: MatchedRule {
                origin: spec.origin.clone(),
                rule: format!(
                    "{}{conditions} {} {}{force}{trailing}",
                    spec.from, spec.to, spec.status
                ),
            },
            host,
            from,
            query,
            to: spec.to.clone(),
            status: spec.status,
            force: spec.force,
            language: spec.language.iter().map(|l| l.to_ascii_lowercase()).collect(),
            cookie: spec.cookie.clone(),
            country: spec.country.iter().map(|c| c.to_ascii_lowercase()).collect(),
            role: spec.role.clone(),
            headers,
            signed: spec.signed.clone(),
        })
    }

    fn apply(&self, request: &Request<'_>) -> Option<Action> {
        if self
            .host
            .as_deref()
            .is_some_and(|host| !host.eq_ignore_ascii_case(request.host))
        {
            return None;
        }
        let mut bindings = self.from.matches(request.path)?;
        if !self.query.is_empty() {
            let pairs: Vec<(String, String)> =
                url::form_urlencoded::parse(request.query.unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            for (name, wanted) in &self.query {
                let value = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v)?;
                match wanted {
                    QueryMatch::Bind(placeholder) => {
                        bindings.values.push((placeholder.clone(), value.clone()))
                    }
                    QueryMatch::Equals(literal) if literal == value => {}
                    QueryMatch::Equals(_) => return None,
                }
            }
        }
        if !self.language.is_empty() && !accepts_language(request.accept_language, &self.language) {
            return None;
        }
        if !self.cookie.is_empty() && !has_cookie(request.cookie, &self.cookie) {
            return None;
        }
        if !self.country.is_empty()
            && !request
                .country
                .is_some_and(|country| self.country.iter().any(|c| c.eq_ignore_ascii_case(country)))
        {
            return None;
        }
        // Netlify skips a `Role` rule for a visitor without a valid token
        // (sites put a `401` rule after it).
        if !self.role.is_empty() && !self.role.iter().any(|role| request.roles.contains(role)) {
            return None;
        }
        if (300..400).contains(&self.status) {
            let mut location = bindings.substitute(&self.to, true);
            if let Some(query) = request.query.filter(|q| !q.is_empty() && self.query.is_empty()) {
                location.push(if location.contains('?') { '&' } else { '?' });
                location.push_str(query);
            }
            Some(Action::Redirect {
                status: self.status,
                location,
            })
        } else if is_url(&self.to) {
            let mut url = bindings.substitute(&self.to, true);
            if let Some(query) = request.query.filter(|q| !q.is_empty() && self.query.is_empty()) {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(query);
            }
            Some(Action::Proxy {
                url,
                headers: self.headers.clone(),
                signed: self.signed.clone(),
            })
        } else {
            let target = bindings.substitute(&self.to, false);
            let path = target.split(['?', '#']).next().unwrap_or("/");
            Some(Action::Rewrite {
                status: self.status,
                path: percent_encoding::percent_decode_str(path)
                    .decode_utf8_lossy()
                    .into_owned(),
            })
        }
    }
}

/// Whether `Accept-Language` names one of `languages` (lowercase), or a
/// regional form of one (`en-GB` for `en`).
fn accepts_language(header: Option<&str>, languages: &[String]) -> bool {
    header.unwrap_or("").split(',').any(|item| {
        let tag = item.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        languages.iter().any(|lang| {
            tag == *lang
                || tag
                    .strip_prefix(lang.as_str())
                    .is_some_and(|r| r.starts_with('-'))
        })
    })
}

fn has_cookie(header: Option<&str>, names: &[String]) -> bool {
    header.unwrap_or("").split(';').any(|pair| {
        let name = pair.split('=').next().unwrap_or("").trim();
        names.iter().any(|wanted| wanted == name)
    })
}

/// A header rule's path, made into a matcher once, when the deploy's rules
/// are compiled. Matching takes time linear in the path: a pattern with
/// `*` or placeholders becomes an anchored regular expression, and the
/// `regex` crate never backtracks (a pattern such as `/*a*a*a*a*a*a*a*b`,
/// matched by trying every split of the path, took seconds of an async
/// thread per request).
#[derive(Debug, Clone)]
enum PathGlob {
    /// No `*` and no placeholder: the path itself.
    Exact(String),
    /// Text, then a final `*`: any path starting with the text.
    Prefix(String),
    /// Anything else: `*` takes anything, `/` included; `:name` takes one
    /// non-empty segment.
    Pattern(regex::Regex),
}

impl PathGlob {
    fn compile(origin: &str, written: &str, path: &str) -> Result<PathGlob, RuleError> {
        let mut expression = String::from("^(?s:");
        let mut literal_only = true;
        for (index, segment) in path.split('/').enumerate() {
            if index > 0 {
                expression.push('/');
            }
            if let Some(name) = segment.strip_prefix(':') {
                if !is_placeholder_name(name) {
                    return Err(error(
                        origin,
                        format!("`{written}`: `{segment}` is not a placeholder"),
                    ));
                }
                expression.push_str("[^/]+");
                literal_only = false;
                continue;
            }
            for (i, piece) in segment.split('*').enumerate() {
                if i > 0 {
                    expression.push_str(".*");
                    literal_only = false;
                }
                expression.push_str(&regex::escape(piece));
            }
        }
        expression.push_str(")$");
        if literal_only {
            return Ok(PathGlob::Exact(path.to_owned()));
        }
        if let Some(prefix) = path.strip_suffix('*')
            && prefix.is_ascii()
            && !prefix.contains('*')
            && !prefix.split('/').any(|segment| segment.starts_with(':'))
        {
            return Ok(PathGlob::Prefix(prefix.to_owned()));
        }
        regex::RegexBuilder::new(&expression)
            .case_insensitive(true)
            .build()
            .map(PathGlob::Pattern)
            .map_err(|e| {
                error(
                    origin,
                    format!("`{written}` cannot be matched ({e}); write it with fewer `*` and placeholders"),
                )
            })
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathGlob::Exact(exact) => same_path(exact, path),
            PathGlob::Prefix(prefix) => path
                .as_bytes()
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes())),
            PathGlob::Pattern(pattern) => pattern.is_match(path),
        }
    }
}

#[derive(Debug, Clone)]
struct HeaderRule {
    written: MatchedRule,
    host: Option<String>,
    pattern: PathGlob,
    /// The pattern ended in `/*`: it also matches the directory itself.
    directory: Option<String>,
    /// The path as written, normalized: rules with the same one are for
    /// the same path, and the later one's value of a header wins.
    path_key: String,
    values: Vec<(HeaderName, String)>,
    /// From `Basic-Auth`, which is checked, never sent.
    basic_auth: Vec<BasicCredential>,
}

/// Reads `user:pass user2:pass2`.
fn parse_basic_auth(origin: &str, value: &str) -> Result<Vec<BasicCredential>, RuleError> {
    value
        .split_whitespace()
        .map(|pair| match pair.split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(BasicCredential {
                user: user.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err(error(
                origin,
                "`Basic-Auth` takes `user:password` pairs separated by spaces, each with a user name and a password",
            )),
        })
        .collect()
}

impl HeaderRule {
    fn compile(spec: &HeaderSpec) -> Result<HeaderRule, RuleError> {
        let origin = spec.origin.as_str();
        if !is_path_or_url(&spec.for_path) {
            return Err(error(
                origin,
                format!(
                    "`{}` is not a path (starting with `/`) or an http(s):// URL",
                    spec.for_path
                ),
            ));
        }
        check_url(origin, "path", &spec.for_path)?;
        let (host, path) = split_url(&spec.for_path);
        // Netlify's header paths ignore empty segments (`//`), a trailing
        // slash and case.
        let decoded = normalize(&collapse_slashes(&decode(origin, "path", path)?));
        let pattern = PathGlob::compile(origin, &spec.for_path, &decoded)?;
        let directory = decoded.strip_suffix("/*").map(normalize);
        let path_key = decoded.to_lowercase();
        let mut values = Vec::new();
        let mut basic_auth = Vec::new();
        for (name, value) in &spec.values {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| error(origin, format!("`{name}` is not a valid header name")))?;
            if header.as_str() == BASIC_AUTH {
                let credentials = parse_basic_auth(origin, value)?;
                if credentials.is_empty() {
                    return Err(error(origin, "`Basic-Auth` names no `user:password`"));
                }
                basic_auth.extend(credentials);
                continue;
            }
            if RESERVED_HEADERS.contains(&header.as_str()) {
                return Err(error(
                    origin,
                    format!("`{name}` is set by the server itself and cannot be set by a rule; remove it"),
                ));
            }
            if let Some((_, why)) = REFUSED_HEADERS
                .iter()
                .find(|(refused, _)| *refused == header.as_str())
            {
                return Err(error(
                    origin,
                    format!("`{name}` cannot be set by a rule: {why}; remove it"),
                ));
            }
            if HeaderValue::from_str(value).is_err() {
                return Err(error(
                    origin,
                    format!("the value of `{name}` has characters a header cannot carry"),
                ));
            }
            values.push((header, value.clone()));
        }
        Ok(HeaderRule {
            written: MatchedRule {
                origin: spec.origin.clone(),
                rule: spec.for_path.clone(),
            },
            host,
            pattern,
            directory,
            path_key,
            values,
            basic_auth,
        })
    }

    fn matches(&self, path: &str) -> bool {
        // Header rules for another host never match: sites are served on
        // their own hostnames only.
        self.host.is_none()
            && (self.pattern.matches(path)
                || self
                    .directory
                    .as_deref()
                    .is_some_and(|directory| same_path(directory, path)))
    }
}

/// Characters percent-encoded in a deploy path written into a `Location`.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%');

/// Encodes a deploy path for a `Location` header.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH_SEGMENT).to_string()
}

#[cfg(test)]
mod tests;
