//! `jamstack.toml`: the per-repository build configuration.
//!
//! A repository may carry a `jamstack.toml` at its root telling the runner how
//! to build and deploy the site. Every key is optional and an empty (or
//! missing) file is valid: it deploys the repository root as it is, without a
//! build command. `jamstack.toml.example` at the workspace root documents every
//! key with its default.
//!
//! ```toml
//! [build]
//! base = "site"          # directory the command runs in, relative to the repository root
//! command = "hugo"       # run with `sh -c` inside `image`
//! publish = "public"     # directory to deploy, relative to `base`
//! watch = ["site/**", "shared/**"]  # changes that build the site (monorepos)
//!
//! [build.environment]
//! HUGO_ENV = "production"
//!
//! [context.deploy-preview]
//! command = "hugo --buildDrafts"
//!
//! [context."feature/new-theme"]
//! image = "jamstack/hugo:2"
//!
//! [[redirects]]
//! from = "/old"
//! to = "/new"
//!
//! [[headers]]
//! for = "/*"
//! [headers.values]
//! X-Frame-Options = "DENY"
//! ```
//!
//! # Precedence
//!
//! The settings of one build are resolved by [`SiteConfig::resolve`] from up
//! to three layers, each key taken from the last layer that sets it:
//!
//! 1. `[build]`;
//! 2. `[context.<context>]` for the build's [`BuildContext`]
//!    (`production`, `deploy-preview` or `branch-deploy`);
//! 3. `[context."<branch>"]` for the branch being built, in any context.
//!
//! So a branch override beats a context override, which beats `[build]`.
//! `environment` tables are merged key by key with the same precedence rather
//! than replaced as a whole. `publish` is always relative to the *resolved*
//! `base`, so a layer that changes only `base` moves the publish directory
//! with it.
//!
//! Any name under `[context]` other than the three context names is a branch
//! name. Names that differ from a context name only in case or `_`/`-`
//! (`deploy_preview`, `Production`) are refused as probable typos, and so are
//! names git would not accept as a branch (`feature/*` included: branch
//! overrides match one exact branch, not a pattern).
//!
//! # Errors
//!
//! Unknown keys are errors, never ignored, and every error ([`ConfigError`])
//! names the file, the 1-based line and column of the offending key or value,
//! what was wrong and what was expected:
//!
//! ```text
//! jamstack.toml:3:1: unknown field `comand`, expected one of `base`, `command`, `publish`, `image`, `ignore`, `watch`, `environment`
//! ```
//!
//! Besides the TOML types, [`parse`] checks that `base` and `publish` stay
//! inside the repository, that environment variable names are valid, and
//! that `command`, `ignore` and `image` are not blank, and that every
//! `watch` glob is a glob relative to the repository root. The `[[redirects]]`
//! and `[[headers]]` rules are checked by `jamstack-rules`, the same check
//! the controller makes when it publishes them (paths, statuses,
//! placeholders, header names and values, limits), so a mistake fails the
//! build before its command runs. When there are several problems the one
//! nearest the top of the file is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use jamstack_proto::BuildContext;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// The name the runner looks for at the repository root.
pub const FILE_NAME: &str = "jamstack.toml";

/// The `status` of a redirect rule that does not give one.
pub const DEFAULT_REDIRECT_STATUS: u16 = 301;

const CONTEXTS: [BuildContext; 3] = [
    BuildContext::Production,
    BuildContext::DeployPreview,
    BuildContext::BranchDeploy,
];

/// A `jamstack.toml` that could not be used.
///
/// Displays as `<file>:<line>:<column>: <message>`, or `<file>: <message>`
/// when the problem has no position in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", position(*.line, *.column))]
pub struct ConfigError {
    /// The file name given to [`parse`].
    pub file: String,
    /// 1-based line of the offending key or value; 0 when unknown.
    pub line: usize,
    /// 1-based column, counted in characters; 0 when unknown.
    pub column: usize,
    /// What was wrong and what was expected, on one line.
    pub message: String,
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

impl ConfigError {
    fn new(text: &str, file: &str, span: Option<Range<usize>>, message: &str) -> Self {
        let (line, column) = span.map_or((0, 0), |span| line_column(text, span.start));
        let message = message
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        ConfigError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}

/// 1-based line and character column of the byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let mut current = before.get(line_start..).unwrap_or_default();
    if line == 1 {
        current = current.trim_start_matches('\u{feff}');
    }
    (line, current.chars().count() + 1)
}

/// A parsed and validated `jamstack.toml`.
///
/// [`SiteConfig::default()`] is the configuration of an empty file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteConfig {
    build: Layer,
    production: Layer,
    deploy_preview: Layer,
    branch_deploy: Layer,
    branches: BTreeMap<String, Layer>,
    redirects: Vec<RedirectRule>,
    headers: Vec<HeaderRule>,
}

/// One of `[build]`, `[context.<context>]` or `[context."<branch>"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Layer {
    base: Option<String>,
    command: Option<String>,
    publish: Option<String>,
    image: Option<String>,
    ignore: Option<String>,
    watch: Option<Vec<String>>,
    environment: BTreeMap<String, String>,
}

/// The settings of one build, with every override applied.
///
/// [`BuildSettings::default()`] is what an empty `jamstack.toml` resolves to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSettings {
    /// Directory the command runs in, relative to the repository root:
    /// normalized, `/`-separated, no trailing slash, `""` for the root.
    pub base: String,
    /// Shell command to run with `sh -c` in `base`; `None` deploys `publish`
    /// as it is in the repository.
    pub command: Option<String>,
    /// Directory to deploy, relative to the repository root (`base` joined
    /// with the configured `publish`): normalized, `/`-separated, no trailing
    /// slash, `""` for the root. Never outside the repository.
    pub publish: String,
    /// Docker image to run the command in; `None` means the runner's default.
    pub image: Option<String>,
    /// Shell command run with `sh -c` in `base` before building; exit status
    /// 0 means nothing relevant changed and the build is skipped.
    pub ignore: Option<String>,
    /// Globs relative to the repository root of the files whose changes
    /// build the site (see [`crate::watch`]); `None` when no layer sets
    /// `watch`.
    pub watch: Option<Vec<String>>,
    /// Environment variables from the file, merged across the layers.
    pub environment: BTreeMap<String, String>,
}

/// One `[[redirects]]` rule, in file order (the first matching rule wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRule {
    /// The 1-based line of the rule's `from` in the file.
    pub line: usize,
    /// The path (starting with `/`) or full `http(s)://` URL the rule matches;
    /// may contain `*` and `:placeholder` segments.
    pub from: String,
    /// Where the request goes: a path starting with `/` or an `http(s)://`
    /// URL; may use `:splat` and the placeholders of `from`.
    pub to: String,
    /// One of `jamstack_rules::STATUSES`; [`DEFAULT_REDIRECT_STATUS`] if not given.
    pub status: u16,
    /// Apply the rule even when a file exists at `from`.
    pub force: bool,
    /// Query parameters the request must carry, mapped to the placeholder
    /// each value is bound to (`id = ":id"`); empty when not given.
    pub query: BTreeMap<String, String>,
    /// Further conditions on the request; all empty when not given.
    pub conditions: RedirectConditions,
    /// Headers sent upstream when the rule proxies; empty when not given.
    pub headers: BTreeMap<String, String>,
    /// The site variable a proxied request is signed with (`X-Nf-Sign`).
    pub signed: Option<String>,
}

/// The `conditions` of a redirect rule. An empty list is no condition; a
/// non-empty list matches when the request matches any of its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedirectConditions {
    /// `Language`: language tags from `Accept-Language` (`"en"`, `"de-CH"`).
    pub language: Vec<String>,
    /// `Country`: ISO 3166 country codes of the client (`"US"`).
    pub country: Vec<String>,
    /// `Cookie`: names of cookies, one of which the request must carry.
    pub cookie: Vec<String>,
    /// `Role`: roles of the visitor's verified `nf_jwt` token.
    pub role: Vec<String>,
}

/// One `[[headers]]` rule, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// The 1-based line of the rule's `for` in the file.
    pub line: usize,
    /// The `for` key: the path (starting with `/`) or full `http(s)://` URL
    /// the headers apply to; may contain `*` and `:placeholder` segments.
    pub for_path: String,
    /// Header names and values to add to matching responses.
    pub values: BTreeMap<String, String>,
}

/// Parses and validates the text of a `jamstack.toml`.
///
/// `file_name` is used only in error messages.
pub fn parse(text: &str, file_name: &str) -> Result<SiteConfig, ConfigError> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|error| ConfigError::new(text, file_name, error.span(), error.message()))?;
    let mut problems = Problems::default();
    let mut config = SiteConfig::from_raw(&raw, &mut problems);
    // Rules keep their line so later checks (the controller's) can point at it.
    for (rule, raw) in config.redirects.iter_mut().zip(&raw.redirects) {
        rule.line = line_column(text, raw.from.span().start).0;
    }
    for (rule, raw) in config.headers.iter_mut().zip(&raw.headers) {
        rule.line = line_column(text, raw.for_path.span().start).0;
    }
    check_rules(&config, &raw, &mut problems);
    match problems.first() {
        Some(problem) => Err(ConfigError::new(
            text,
            file_name,
            Some(problem.span.clone()),
            &problem.message,
        )),
        None => Ok(config),
    }
}

impl SiteConfig {
    /// The settings of a build of `branch` in `context`:
    /// `[build]` < `[context.<context>]` < `[context."<branch>"]`.
    pub fn resolve(&self, context: BuildContext, branch: &str) -> BuildSettings {
        self.resolve_in("", context, branch)
    }

    /// Like [`SiteConfig::resolve`], for a site that lives in the folder
    /// `site_base` of its repository: `base` is that folder unless a layer
    /// sets another.
    pub fn resolve_in(&self, site_base: &str, context: BuildContext, branch: &str) -> BuildSettings {
        let layers: Vec<&Layer> = [
            Some(&self.build),
            Some(self.context_layer(context)),
            self.branches.get(branch),
        ]
        .into_iter()
        .flatten()
        .collect();
        let last = |pick: fn(&Layer) -> Option<&String>| -> Option<String> {
            layers.iter().rev().find_map(|layer| pick(layer)).cloned()
        };
        let base = last(|layer| layer.base.as_ref()).unwrap_or_else(|| site_base.to_owned());
        let publish = last(|layer| layer.publish.as_ref()).unwrap_or_default();
        let mut environment = BTreeMap::new();
        for layer in &layers {
            environment.extend(layer.environment.clone());
        }
        BuildSettings {
            publish: normalize(&join(&base, &publish)).path,
            base: normalize(&base).path,
            command: last(|layer| layer.command.as_ref()),
            image: last(|layer| layer.image.as_ref()),
            ignore: last(|layer| layer.ignore.as_ref()),
            watch: layers.iter().rev().find_map(|layer| layer.watch.clone()),
            environment,
        }
    }

    /// The `[[redirects]]` rules, in file order.
    pub fn redirects(&self) -> &[RedirectRule] {
        &self.redirects
    }

    /// The `[[headers]]` rules, in file order.
    pub fn headers(&self) -> &[HeaderRule] {
        &self.headers
    }

    /// The redirect and header rules as the protocol carries them to the
    /// controller, which serves them.
    pub fn wire_rules(&self) -> (Vec<jamstack_proto::RedirectRule>, Vec<jamstack_proto::HeaderRule>) {
        (
            self.redirects.iter().map(RedirectRule::to_wire).collect(),
            self.headers.iter().map(HeaderRule::to_wire).collect(),
        )
    }

    fn context_layer(&self, context: BuildContext) -> &Layer {
        match context {
            BuildContext::Production => &self.production,
            BuildContext::DeployPreview => &self.deploy_preview,
            BuildContext::BranchDeploy => &self.branch_deploy,
        }
    }

    fn from_raw(raw: &RawFile, problems: &mut Problems) -> SiteConfig {
        let mut config = SiteConfig {
            build: Layer::from_raw(&raw.build, problems),
            ..SiteConfig::default()
        };
        let mut context_raw: [Option<&RawSettings>; 3] = [None; 3];
        let mut branch_raw = Vec::new();
        for (name, settings) in &raw.context {
            let layer = Layer::from_raw(settings, problems);
            if let Some(index) = CONTEXTS
                .iter()
                .position(|context| context.as_str() == name.get_ref())
            {
                context_raw[index] = Some(settings);
                match CONTEXTS[index] {
                    BuildContext::Production => config.production = layer,
                    BuildContext::DeployPreview => config.deploy_preview = layer,
                    BuildContext::BranchDeploy => config.branch_deploy = layer,
                }
            } else {
                check_branch_name(name, problems);
                branch_raw.push(settings);
                config.branches.insert(name.get_ref().clone(), layer);
            }
        }
        check_publish_stays_inside(&raw.build, &context_raw, &branch_raw, problems);
        config.redirects = raw
            .redirects
            .iter()
            .map(|redirect| RedirectRule::from_raw(redirect, problems))
            .collect();
        config.headers = raw
            .headers
            .iter()
            .map(|header| HeaderRule::from_raw(header, problems))
            .collect();
        config
    }
}

impl Layer {
    fn from_raw(raw: &RawSettings, problems: &mut Problems) -> Layer {
        if let Some(base) = &raw.base {
            check_directory(base, "base", "the repository root", problems);
            if normalize(base.get_ref()).escaped {
                problems.add(
                    base.span(),
                    format!("base `{}` points outside the repository", base.get_ref()),
                );
            }
        }
        if let Some(publish) = &raw.publish {
            check_directory(publish, "publish", "base", problems);
        }
        for (key, value) in [
            ("command", &raw.command),
            ("ignore", &raw.ignore),
            ("image", &raw.image),
        ] {
            if let Some(value) = value {
                check_not_blank(key, value, problems);
            }
        }
        for glob in raw.watch.iter().flatten() {
            if let Some(problem) = crate::watch::check_glob(glob.get_ref()) {
                problems.add(glob.span(), problem);
            }
        }
        if let Some(image) = &raw.image
            && image.get_ref().chars().any(char::is_whitespace)
        {
            problems.add(
                image.span(),
                format!(
                    "image `{}` contains whitespace; expected a Docker image reference \
                     like `jamstack/hugo:1`",
                    image.get_ref()
                ),
            );
        }
        Layer {
            base: raw.base.as_ref().map(|value| value.get_ref().clone()),
            command: raw.command.as_ref().map(|value| value.get_ref().clone()),
            publish: raw.publish.as_ref().map(|value| value.get_ref().clone()),
            image: raw.image.as_ref().map(|value| value.get_ref().clone()),
            ignore: raw.ignore.as_ref().map(|value| value.get_ref().clone()),
            watch: raw.watch.as_deref().map(strings_of),
            environment: string_table(&raw.environment, TableKind::Environment, problems),
        }
    }
}

impl RedirectRule {
    fn from_raw(raw: &RawRedirect, problems: &mut Problems) -> RedirectRule {
        let conditions = &raw.conditions;
        RedirectRule {
            line: 0,
            from: raw.from.get_ref().clone(),
            to: raw.to.get_ref().clone(),
            status: raw
                .status
                .as_ref()
                .map_or(DEFAULT_REDIRECT_STATUS, |status| status.get_ref().0),
            force: raw.force || raw.status.as_ref().is_some_and(|status| status.get_ref().1),
            query: string_table(&raw.query, TableKind::Query, problems),
            conditions: RedirectConditions {
                language: strings_of(&conditions.language),
                country: strings_of(&conditions.country),
                cookie: strings_of(&conditions.cookie),
                role: strings_of(&conditions.role),
            },
            headers: string_table(&raw.headers, TableKind::Headers, problems),
            signed: raw.signed.as_ref().map(|name| name.get_ref().clone()),
        }
    }

    fn to_wire(&self) -> jamstack_proto::RedirectRule {
        jamstack_proto::RedirectRule {
            line: u32::try_from(self.line).unwrap_or(0),
            from: self.from.clone(),
            to: self.to.clone(),
            status: self.status,
            force: self.force,
            query: self.query.clone(),
            conditions: jamstack_proto::RedirectConditions {
                language: self.conditions.language.clone(),
                country: self.conditions.country.clone(),
                cookie: self.conditions.cookie.clone(),
                role: self.conditions.role.clone(),
            },
            headers: self.headers.clone(),
            signed: self.signed.clone(),
        }
    }
}

impl HeaderRule {
    fn from_raw(raw: &RawHeader, problems: &mut Problems) -> HeaderRule {
        HeaderRule {
            line: 0,
            for_path: raw.for_path.get_ref().clone(),
            values: string_table(&raw.values, TableKind::Headers, problems),
        }
    }

    fn to_wire(&self) -> jamstack_proto::HeaderRule {
        jamstack_proto::HeaderRule {
            line: u32::try_from(self.line).unwrap_or(0),
            for_path: self.for_path.clone(),
            values: self.values.clone(),
        }
    }
}

/// Checks the rules as the controller will when it publishes them, one
/// rule at a time so each mistake points at its rule, then all together
/// for the limits on how many there may be.
fn check_rules(config: &SiteConfig, raw: &RawFile, problems: &mut Problems) {
    let mut spans = Vec::new();
    for (rule, raw) in config.redirects.iter().zip(&raw.redirects) {
        let wire = [rule.to_wire()];
        spans.push((wire[0].line, raw.from.span()));
        if let Err(error) = jamstack_rules::from_config(&wire, &[]).and_then(|set| set.compile()) {
            problems.add(raw.from.span(), error.message);
        }
    }
    for (rule, raw) in config.headers.iter().zip(&raw.headers) {
        let wire = [rule.to_wire()];
        spans.push((wire[0].line, raw.for_path.span()));
        if let Err(error) = jamstack_rules::from_config(&[], &wire).and_then(|set| set.compile()) {
            problems.add(raw.for_path.span(), error.message);
        }
    }
    if problems.first().is_some() {
        return;
    }
    let (redirects, headers) = config.wire_rules();
    if let Err(error) = jamstack_rules::from_config(&redirects, &headers).and_then(|set| set.compile()) {
        // The error names the rule it is about as `jamstack.toml:<line>`.
        let line = error
            .origin
            .rsplit_once(':')
            .and_then(|(_, line)| line.parse::<u32>().ok());
        let span = spans
            .iter()
            .find(|(rule_line, _)| Some(*rule_line) == line)
            .map_or(0..0, |(_, span)| span.clone());
        problems.add(span, error.message);
    }
}

// ---------------------------------------------------------------------------
// What the file deserializes into, with spans for semantic errors.

type RawTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a jamstack.toml document")]
struct RawFile {
    #[serde(default)]
    build: RawSettings,
    #[serde(default, deserialize_with = "contexts")]
    context: BTreeMap<Spanned<String>, RawSettings>,
    #[serde(default, deserialize_with = "redirects")]
    redirects: Vec<RawRedirect>,
    #[serde(default, deserialize_with = "headers")]
    headers: Vec<RawHeader>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of build settings (base, command, publish, image, ignore, watch, environment)"
)]
struct RawSettings {
    base: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    publish: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
    ignore: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "globs")]
    watch: Option<Vec<Spanned<String>>>,
    #[serde(default, deserialize_with = "string_pairs")]
    environment: RawTable,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a redirect rule (from, to, status, force, query, conditions, headers, signed)"
)]
struct RawRedirect {
    from: Spanned<String>,
    to: Spanned<String>,
    status: Option<Spanned<Status>>,
    #[serde(default)]
    force: bool,
    #[serde(default, deserialize_with = "string_pairs")]
    query: RawTable,
    #[serde(default)]
    conditions: RawConditions,
    #[serde(default, deserialize_with = "string_pairs")]
    headers: RawTable,
    signed: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of conditions (Language, Country, Role, Cookie), each an array of strings"
)]
struct RawConditions {
    #[serde(rename = "Language", default, deserialize_with = "strings")]
    language: Vec<Spanned<String>>,
    #[serde(rename = "Country", default, deserialize_with = "strings")]
    country: Vec<Spanned<String>>,
    #[serde(rename = "Cookie", default, deserialize_with = "strings")]
    cookie: Vec<Spanned<String>>,
    #[serde(rename = "Role", default, deserialize_with = "strings")]
    role: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a header rule (for, values)")]
struct RawHeader {
    #[serde(rename = "for")]
    for_path: Spanned<String>,
    #[serde(deserialize_with = "string_pairs")]
    values: RawTable,
}

// Serde's own messages for these say "a sequence" and "a map"; TOML users
// write arrays of tables and tables, so say that instead.

fn redirects<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RawRedirect>, D::Error> {
    deserializer.deserialize_seq(ArrayVisitor {
        expecting: "an array of tables, written [[redirects]]",
        marker: PhantomData,
    })
}

fn headers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RawHeader>, D::Error> {
    deserializer.deserialize_seq(ArrayVisitor {
        expecting: "an array of tables, written [[headers]]",
        marker: PhantomData,
    })
}

fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Spanned<String>>, D::Error> {
    deserializer.deserialize_seq(ArrayVisitor {
        expecting: "an array of strings, like [\"US\", \"CA\"]",
        marker: PhantomData,
    })
}

fn globs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<Spanned<String>>>, D::Error> {
    deserializer
        .deserialize_seq(ArrayVisitor {
            expecting: "an array of globs, like [\"sites/blog/**\", \"shared/**\"]",
            marker: PhantomData,
        })
        .map(Some)
}

/// A redirect `status` that fits in a `u16`, and whether it was forced
/// (`"200!"`: Netlify takes a status written as a string too); whether it
/// is supported is checked after parsing, by `jamstack-rules`.
#[derive(Clone, Copy)]
struct Status(u16, bool);

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
        deserializer.deserialize_any(StatusVisitor)
    }
}

struct StatusVisitor;

impl Visitor<'_> for StatusVisitor {
    type Value = Status;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an HTTP status code like 301 or \"200!\"")
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Status, E> {
        u16::try_from(value)
            .map(|status| Status(status, false))
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Status, E> {
        u16::try_from(value)
            .map(|status| Status(status, false))
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Status, E> {
        let text = value.trim();
        let (digits, force) = text
            .strip_suffix('!')
            .map_or((text, false), |digits| (digits.trim_end(), true));
        digits
            .parse::<u16>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .map(|status| Status(status, force))
            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(value), &self))
    }
}

fn contexts<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<Spanned<String>, RawSettings>, D::Error> {
    deserializer.deserialize_map(TableVisitor {
        expecting: "a table of contexts and branches, written [context.production]",
        marker: PhantomData,
    })
}

fn string_pairs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<RawTable, D::Error> {
    deserializer.deserialize_map(TableVisitor {
        expecting: "a table of `NAME = \"value\"` pairs",
        marker: PhantomData,
    })
}

struct ArrayVisitor<T> {
    expecting: &'static str,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ArrayVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

struct TableVisitor<V> {
    expecting: &'static str,
    marker: PhantomData<V>,
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for TableVisitor<V> {
    type Value = BTreeMap<Spanned<String>, V>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, value)) = map.next_entry()? {
            entries.insert(key, value);
        }
        Ok(entries)
    }
}

// ---------------------------------------------------------------------------
// Semantic checks.

struct Problem {
    span: Range<usize>,
    message: String,
}

/// Semantic problems found so far; the one nearest the top of the file is
/// reported, whatever order the checks ran in.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, span: Range<usize>, message: String) {
        self.0.push(Problem { span, message });
    }

    fn first(&self) -> Option<&Problem> {
        self.0.iter().min_by_key(|problem| problem.span.start)
    }
}

/// `base` or `publish` on its own: relative, `/`-separated, printable.
fn check_directory(value: &Spanned<String>, key: &str, relative_to: &str, problems: &mut Problems) {
    let path = value.get_ref();
    if path.contains('\\') {
        problems.add(
            value.span(),
            format!("{key} `{path}` contains a backslash; separate directories with `/`"),
        );
    } else if path.starts_with('/') {
        let relative = match path.trim_start_matches('/') {
            "" => ".",
            relative => relative,
        };
        problems.add(
            value.span(),
            format!(
                "{key} `{path}` is an absolute path; expected a directory relative to \
                 {relative_to}, like `{relative}`"
            ),
        );
    } else if path.chars().any(char::is_control) {
        problems.add(
            value.span(),
            format!("{key} {path:?} contains a control character"),
        );
    }
}

/// `publish` is relative to the resolved `base`, so whether it leaves the
/// repository depends on which layers apply. Try every combination a build
/// can resolve to: each context, with no branch override or with each one.
fn check_publish_stays_inside(
    build: &RawSettings,
    contexts: &[Option<&RawSettings>; 3],
    branches: &[&RawSettings],
    problems: &mut Problems,
) {
    let branch_choices: Vec<Option<&RawSettings>> = std::iter::once(None)
        .chain(branches.iter().copied().map(Some))
        .collect();
    let mut reported = BTreeSet::new();
    for context in contexts {
        for branch in &branch_choices {
            let layers = [Some(build), *context, *branch];
            let last = |pick: fn(&RawSettings) -> Option<&Spanned<String>>| {
                layers.iter().rev().flatten().find_map(|layer| pick(layer))
            };
            let Some(publish) = last(|layer| layer.publish.as_ref()) else {
                continue;
            };
            let base = last(|layer| layer.base.as_ref()).map_or("", |base| base.get_ref());
            if normalize(base).escaped || !normalize(&join(base, publish.get_ref())).escaped {
                continue;
            }
            if !reported.insert(publish.span().start) {
                continue;
            }
            let message = if normalize(base).path.is_empty() {
                format!("publish `{}` points outside the repository", publish.get_ref())
            } else {
                format!(
                    "publish `{}` points outside the repository (publish is relative to base `{base}`)",
                    publish.get_ref()
                )
            };
            problems.add(publish.span(), message);
        }
    }
}

fn check_not_blank(key: &str, value: &Spanned<String>, problems: &mut Problems) {
    if value.get_ref().trim().is_empty() {
        let hint = match key {
            "command" => "remove the key to deploy the publish directory without building",
            "ignore" => "remove the key to build every commit",
            _ => "remove the key to use the runner's default image",
        };
        problems.add(value.span(), format!("{key} is empty; {hint}"));
    }
}

/// A context name that is not a context is a branch name: refuse likely
/// typos of context names and names git would refuse as a branch.
fn check_branch_name(name: &Spanned<String>, problems: &mut Problems) {
    let text = name.get_ref();
    let folded = text.to_ascii_lowercase().replace('_', "-");
    if let Some(context) = CONTEXTS.iter().find(|context| context.as_str() == folded) {
        problems.add(
            name.span(),
            format!(
                "`{text}` is not a context; did you mean `{}`? Expected `production`, \
                 `deploy-preview`, `branch-deploy` or a branch name",
                context.as_str()
            ),
        );
        return;
    }
    let reason = if text.is_empty() {
        Some("it is empty")
    } else if text.contains(['*', '?', '[']) {
        Some("branch overrides match one exact branch name, not a pattern")
    } else if text.chars().any(|c| c.is_control() || c == ' ') {
        Some("it contains a space or control character")
    } else if text.contains(['~', '^', ':', '\\']) {
        Some("it contains one of `~`, `^`, `:`, `\\`")
    } else if text.contains("..") || text.contains("@{") || text == "@" {
        Some("it contains `..` or `@{`, or is `@`")
    } else if text
        .split('/')
        .any(|part| part.is_empty() || part.starts_with('.') || part.ends_with(".lock"))
        || text.ends_with('.')
    {
        Some("a `/`-separated part is empty, starts with `.` or ends with `.lock`, or the name ends with `.`")
    } else {
        None
    };
    if let Some(reason) = reason {
        problems.add(
            name.span(),
            format!("`{text}` is not a valid branch name: {reason}"),
        );
    }
}

fn strings_of(values: &[Spanned<String>]) -> Vec<String> {
    values.iter().map(|value| value.get_ref().clone()).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TableKind {
    Environment,
    Headers,
    Query,
}

/// Checks a table of string pairs and returns it without spans.
fn string_table(raw: &RawTable, kind: TableKind, problems: &mut Problems) -> BTreeMap<String, String> {
    let noun = match kind {
        TableKind::Environment => "environment variable",
        TableKind::Headers => "header",
        TableKind::Query => "query parameter",
    };
    let mut table = BTreeMap::new();
    let mut seen_headers = BTreeSet::new();
    for (key, value) in raw {
        let name = key.get_ref();
        let name_problem = match kind {
            TableKind::Environment if !is_env_name(name) => Some(format!(
                "`{name}` is not a valid environment variable name; expected letters, digits \
                 and `_`, not starting with a digit"
            )),
            TableKind::Headers if !seen_headers.insert(name.to_ascii_lowercase()) => Some(format!(
                "header `{name}` is set twice (header names are case-insensitive)"
            )),
            _ => None,
        };
        if let Some(message) = name_problem {
            problems.add(key.span(), message);
        }
        match value.get_ref() {
            toml::Value::String(text) => {
                // Header names and values are the rules crate's to check.
                if kind == TableKind::Environment && text.contains('\0') {
                    problems.add(
                        value.span(),
                        format!("{noun} `{name}` has a value with a control character"),
                    );
                }
                table.insert(name.clone(), text.clone());
            }
            // Netlify joins a header given as an array of values with `, `.
            toml::Value::Array(items)
                if kind == TableKind::Headers && items.iter().all(toml::Value::is_str) =>
            {
                let values: Vec<&str> = items
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .map(str::trim)
                    .collect();
                table.insert(name.clone(), values.join(", "));
            }
            other => {
                let hint = match other {
                    toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                        format!("; quote it: {name} = \"{other}\"")
                    }
                    _ => String::new(),
                };
                problems.add(
                    value.span(),
                    format!(
                        "{noun} `{name}` must be a string, found {} {}{hint}",
                        article(other.type_str()),
                        other.type_str()
                    ),
                );
            }
        }
    }
    table
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------------------
// Paths.

struct Normalized {
    /// `/`-separated, without `.`, empty parts or a trailing slash; `""` for
    /// the root.
    path: String,
    /// A `..` went above the root (and was dropped from `path`).
    escaped: bool,
}

fn normalize(path: &str) -> Normalized {
    let mut parts: Vec<&str> = Vec::new();
    let mut escaped = false;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => escaped |= parts.pop().is_none(),
            part => parts.push(part),
        }
    }
    Normalized {
        path: parts.join("/"),
        escaped,
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{base}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> ConfigError {
        match parse(text, FILE_NAME) {
            Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
            Err(error) => error,
        }
    }

    fn settings(text: &str, context: BuildContext, branch: &str) -> BuildSettings {
        parse(text, FILE_NAME).unwrap().resolve(context, branch)
    }

    #[test]
    fn empty_file_means_defaults() {
        let config = parse("", FILE_NAME).unwrap();
        assert_eq!(config, SiteConfig::default());
        for context in CONTEXTS {
            let settings = config.resolve(context, "main");
            assert_eq!(settings, BuildSettings::default());
            assert_eq!(settings.base, "");
            assert_eq!(settings.publish, "");
            assert_eq!(settings.command, None);
        }
        assert!(config.redirects().is_empty());
        assert!(config.headers().is_empty());
    }

    #[test]
    fn a_file_of_comments_and_empty_tables_means_defaults() {
        let text = "# nothing yet\n[build]\n[build.environment]\n[context.production]\n";
        assert_eq!(parse(text, FILE_NAME).unwrap(), SiteConfig::default());
    }

    #[test]
    fn a_typo_in_a_key_names_the_line_and_column() {
        let error = refused("[build]\nbase = \"site\"\n  comand = \"hugo\"\n");
        assert_eq!((error.line, error.column), (3, 3));
        assert_eq!(error.file, "jamstack.toml");
        assert!(
            error
                .message
                .starts_with("unknown field `comand`, expected one of `base`, `command`, `publish`"),
            "{}",
            error.message
        );
        assert!(
            error
                .to_string()
                .starts_with("jamstack.toml:3:3: unknown field `comand`"),
            "{error}"
        );
    }

    #[test]
    fn a_typo_in_a_context_key_names_the_line() {
        let error = refused("[context.production]\npublsh = \"dist\"\n");
        assert_eq!((error.line, error.column), (2, 1));
        assert!(error.message.contains("unknown field `publsh`"));
    }

    #[test]
    fn an_unknown_top_level_table_is_refused() {
        let error = refused("[plugins]\nname = \"x\"\n");
        assert_eq!(error.line, 1);
        assert!(error.message.contains("unknown field `plugins`"), "{error}");
        assert!(
            error
                .message
                .contains("`build`, `context`, `redirects`, `headers`")
        );
    }

    #[test]
    fn wrong_type_says_what_was_expected() {
        let error = refused("[build]\ncommand = 42\n");
        assert_eq!((error.line, error.column), (2, 11));
        assert_eq!(error.message, "invalid type: integer `42`, expected a string");
    }

    #[test]
    fn a_status_written_as_a_string_is_read_as_netlify_reads_it() {
        let config = parse(
            "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = \"302\"\n\
             [[redirects]]\nfrom = \"/c/*\"\nto = \"/d\"\nstatus = \" 200! \"\n",
            "jamstack.toml",
        )
        .unwrap();
        let read: Vec<(u16, bool)> = config.redirects().iter().map(|r| (r.status, r.force)).collect();
        assert_eq!(read, [(302, false), (200, true)]);
        let error = refused("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = \"moved\"\n");
        assert_eq!((error.line, error.column), (4, 10));
        assert_eq!(
            error.message,
            "invalid value: string \"moved\", expected an HTTP status code like 301 or \"200!\""
        );
    }

    #[test]
    fn header_values_given_as_an_array_are_joined_as_netlify_joins_them() {
        let config = parse(
            "[[headers]]\nfor = \"/*\"\n[headers.values]\nCache-Control = [\"max-age=0\", \" no-cache \"]\n",
            "jamstack.toml",
        )
        .unwrap();
        assert_eq!(config.headers()[0].values["Cache-Control"], "max-age=0, no-cache");
        let error = refused("[[headers]]\nfor = \"/*\"\n[headers.values]\nX-A = [1, 2]\n");
        assert!(error.message.contains("header `X-A` must be a string"), "{error}");
    }

    #[test]
    fn a_single_bracket_redirects_table_says_to_use_double_brackets() {
        let error = refused("[redirects]\nfrom = \"/a\"\nto = \"/b\"\n");
        assert!(error.message.contains("[[redirects]]"), "{error}");
        assert_eq!(error.line, 1);
    }

    #[test]
    fn a_redirect_without_to_is_refused() {
        let error = refused("[[redirects]]\nfrom = \"/a\"\n");
        assert!(error.message.contains("missing field `to`"), "{error}");
        assert_ne!(error.line, 0);
    }

    #[test]
    fn a_toml_syntax_error_is_on_one_line_with_a_position() {
        let error = refused("[build]\ncommand = \"hugo\n");
        assert_eq!(error.line, 2);
        assert!(!error.message.contains('\n'));
        assert!(!error.to_string().contains('\n'));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "[build]\ncommand = \"make\"\nenvironment = { NOTE = \"grüße\", \"bad name\" = \"y\" }\n";
        let error = refused(text);
        assert_eq!((error.line, error.column), (3, 33), "{error}");
        assert_eq!(line_column("ää\nää x", "ää\nää ".len()), (2, 4));
        assert_eq!(line_column("\u{feff}x", 3), (1, 1));
    }

    #[test]
    fn an_error_without_a_position_shows_only_the_file() {
        let error = ConfigError {
            file: "jamstack.toml".to_owned(),
            line: 0,
            column: 0,
            message: "something".to_owned(),
        };
        assert_eq!(error.to_string(), "jamstack.toml: something");
    }

    #[test]
    fn build_settings_apply_in_every_context() {
        let text = r#"
            [build]
            base = "site"
            command = "hugo --minify"
            publish = "public"
            image = "jamstack/hugo:1"
            ignore = "git diff --quiet HEAD^ HEAD -- site/"
            [build.environment]
            HUGO_ENV = "production"
        "#;
        for context in CONTEXTS {
            let settings = settings(text, context, "main");
            assert_eq!(settings.base, "site");
            assert_eq!(settings.publish, "site/public");
            assert_eq!(settings.command.as_deref(), Some("hugo --minify"));
            assert_eq!(settings.image.as_deref(), Some("jamstack/hugo:1"));
            assert_eq!(
                settings.ignore.as_deref(),
                Some("git diff --quiet HEAD^ HEAD -- site/")
            );
            assert_eq!(settings.environment["HUGO_ENV"], "production");
        }
    }

    #[test]
    fn context_override_beats_build() {
        let text = r#"
            [build]
            command = "make"
            [context.deploy-preview]
            command = "make preview"
        "#;
        let preview = settings(text, BuildContext::DeployPreview, "pr-1");
        assert_eq!(preview.command.as_deref(), Some("make preview"));
        let production = settings(text, BuildContext::Production, "main");
        assert_eq!(production.command.as_deref(), Some("make"));
    }

    #[test]
    fn branch_override_beats_context_override() {
        let text = r#"
            [build]
            image = "a"
            [context.branch-deploy]
            image = "b"
            command = "from-context"
            [context."feature/x"]
            image = "c"
        "#;
        let settings = settings(text, BuildContext::BranchDeploy, "feature/x");
        assert_eq!(settings.image.as_deref(), Some("c"));
        assert_eq!(settings.command.as_deref(), Some("from-context"));
    }

    #[test]
    fn branch_override_applies_in_any_context() {
        let text = "[context.staging]\ncommand = \"make staging\"\n";
        for context in CONTEXTS {
            assert_eq!(
                settings(text, context, "staging").command.as_deref(),
                Some("make staging")
            );
            assert_eq!(settings(text, context, "main").command, None);
        }
    }

    #[test]
    fn environment_tables_merge_key_by_key() {
        let text = r#"
            [build.environment]
            A = "build"
            B = "build"
            C = "build"
            [context.production.environment]
            B = "production"
            C = "production"
            [context.main.environment]
            C = "main"
        "#;
        let settings = settings(text, BuildContext::Production, "main");
        let expected: BTreeMap<String, String> = [("A", "build"), ("B", "production"), ("C", "main")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(settings.environment, expected);
    }

    #[test]
    fn publish_is_relative_to_the_resolved_base() {
        let text = r#"
            [build]
            base = "site"
            publish = "./dist/"
            [context.deploy-preview]
            base = "docs//"
        "#;
        assert_eq!(
            settings(text, BuildContext::Production, "main").publish,
            "site/dist"
        );
        let preview = settings(text, BuildContext::DeployPreview, "pr");
        assert_eq!(preview.base, "docs");
        assert_eq!(preview.publish, "docs/dist");
    }

    #[test]
    fn watch_globs_are_kept_and_a_context_may_replace_them() {
        let text = "[build]\nwatch = [\"sites/blog/**\", \"shared/**\"]\n[context.deploy-preview]\nwatch = [\"sites/blog/content/**\"]\n";
        let config = parse(text, FILE_NAME).unwrap();
        assert_eq!(
            config.resolve(BuildContext::Production, "main").watch,
            Some(vec!["sites/blog/**".to_owned(), "shared/**".to_owned()])
        );
        assert_eq!(
            config.resolve(BuildContext::DeployPreview, "x").watch,
            Some(vec!["sites/blog/content/**".to_owned()])
        );
        assert_eq!(settings("", BuildContext::Production, "x").watch, None);
    }

    #[test]
    fn a_watch_glob_outside_the_repository_or_not_a_list_is_refused() {
        let error = refused("[build]\nwatch = [\"ok/**\", \"../x/**\"]\n");
        assert_eq!((error.line, error.column), (2, 19));
        assert!(error.message.contains("`..`"), "{error}");
        let error = refused("[build]\nwatch = \"sites/**\"\n");
        assert!(error.message.contains("an array of globs"), "{error}");
    }

    #[test]
    fn the_sites_base_is_the_default_base_and_publish_follows_it() {
        let config = parse("[build]\npublish = \"public\"\n", FILE_NAME).unwrap();
        let settings = config.resolve_in("sites/blog", BuildContext::Production, "main");
        assert_eq!(settings.base, "sites/blog");
        assert_eq!(settings.publish, "sites/blog/public");
        let config = parse("[build]\nbase = \"other\"\n", FILE_NAME).unwrap();
        assert_eq!(
            config
                .resolve_in("sites/blog", BuildContext::Production, "main")
                .base,
            "other"
        );
    }

    #[test]
    fn publish_defaults_to_the_base_directory() {
        let settings = settings("[build]\nbase = \"site/\"\n", BuildContext::Production, "x");
        assert_eq!(settings.base, "site");
        assert_eq!(settings.publish, "site");
    }

    #[test]
    fn publish_may_climb_out_of_base_but_not_out_of_the_repository() {
        let text = "[build]\nbase = \"site\"\npublish = \"../dist\"\n";
        assert_eq!(settings(text, BuildContext::Production, "x").publish, "dist");
    }

    #[test]
    fn publish_outside_the_repository_is_refused() {
        let error = refused("[build]\nbase = \"site\"\npublish = \"../../out\"\n");
        assert_eq!((error.line, error.column), (3, 11));
        assert_eq!(
            error.message,
            "publish `../../out` points outside the repository (publish is relative to base `site`)"
        );
    }

    #[test]
    fn publish_that_escapes_only_with_a_context_base_is_refused() {
        // Fine with base "a/b"; outside the repository once a preview sets base "".
        let text = r#"
[build]
base = "a/b"
publish = "../../x"
[context.deploy-preview]
base = ""
"#;
        let error = refused(text);
        assert_eq!((error.line, error.column), (4, 11));
        assert!(error.message.contains("outside the repository"));
    }

    #[test]
    fn base_outside_the_repository_is_refused() {
        let error = refused("[build]\nbase = \"site/../..\"\n");
        assert_eq!((error.line, error.column), (2, 8));
        assert!(error.message.contains("outside the repository"), "{error}");
    }

    #[test]
    fn absolute_base_is_refused() {
        let error = refused("[build]\nbase = \"/site\"\n");
        assert_eq!((error.line, error.column), (2, 8));
        assert!(error.message.contains("absolute path"), "{error}");
        assert!(error.message.contains("like `site`"), "{error}");
    }

    #[test]
    fn absolute_publish_in_a_context_is_refused() {
        let error = refused("[context.production]\npublish = \"/public\"\n");
        assert_eq!((error.line, error.column), (2, 11));
        assert!(error.message.contains("relative to base"), "{error}");
    }

    #[test]
    fn backslashes_in_paths_are_refused() {
        let error = refused("[build]\npublish = 'site\\public'\n");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("backslash"), "{error}");
    }

    #[test]
    fn an_empty_command_is_refused() {
        let error = refused("[build]\ncommand = \"   \"\n");
        assert_eq!((error.line, error.column), (2, 11));
        assert!(error.message.starts_with("command is empty"), "{error}");
    }

    #[test]
    fn an_empty_ignore_or_image_is_refused() {
        assert!(
            refused("[build]\nignore = \"\"\n")
                .message
                .starts_with("ignore is empty")
        );
        assert!(
            refused("[build]\nimage = \"\"\n")
                .message
                .starts_with("image is empty")
        );
        assert!(
            refused("[build]\nimage = \"node 20\"\n")
                .message
                .contains("whitespace")
        );
    }

    #[test]
    fn a_non_string_environment_value_names_the_key() {
        let error = refused("[build.environment]\nPORT = 8080\n");
        assert_eq!((error.line, error.column), (2, 8));
        assert_eq!(
            error.message,
            "environment variable `PORT` must be a string, found an integer; quote it: PORT = \"8080\""
        );
        let error = refused("[build.environment]\nLIST = [\"a\"]\n");
        assert!(
            error.message.contains("`LIST` must be a string, found an array"),
            "{error}"
        );
    }

    #[test]
    fn an_invalid_environment_variable_name_is_refused() {
        let error = refused("[build]\n[build.environment]\nNODE-ENV = \"x\"\n");
        assert_eq!((error.line, error.column), (3, 1));
        assert!(
            error
                .message
                .contains("`NODE-ENV` is not a valid environment variable name")
        );
        assert!(
            refused("[build.environment]\n1ST = \"x\"\n")
                .message
                .contains("`1ST`")
        );
        assert!(parse("[build.environment]\n_A1 = \"x\"\n", FILE_NAME).is_ok());
    }

    #[test]
    fn environment_written_as_a_string_says_a_table_was_expected() {
        let error = refused("[build]\nenvironment = \"A=1\"\n");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("expected a table"), "{error}");
    }

    #[test]
    fn a_misspelt_context_name_is_refused() {
        let error = refused("[context.deploy_preview]\ncommand = \"x\"\n");
        assert_eq!((error.line, error.column), (1, 10));
        assert!(
            error.message.contains("did you mean `deploy-preview`?"),
            "{error}"
        );
    }

    #[test]
    fn a_branch_pattern_is_refused() {
        let error = refused("[context.\"feature/*\"]\ncommand = \"x\"\n");
        assert_eq!(error.line, 1);
        assert!(error.message.contains("not a pattern"), "{error}");
        assert!(
            refused("[context.\"a b\"]\n")
                .message
                .contains("not a valid branch name")
        );
        assert!(
            refused("[context.\"a..b\"]\n")
                .message
                .contains("not a valid branch name")
        );
    }

    #[test]
    fn redirects_get_defaults_and_keep_file_order() {
        let text = r#"
            [[redirects]]
            from = "/old"
            to = "/new"

            [[redirects]]
            from = "/app/*"
            to = "/app/index.html"
            status = 200
            force = true
            query = { id = ":id" }
            conditions = { Language = ["en"], Cookie = ["beta"] }
        "#;
        let config = parse(text, FILE_NAME).unwrap();
        let [first, second] = config.redirects() else {
            panic!("{:?}", config.redirects());
        };
        assert_eq!(
            *first,
            RedirectRule {
                line: 3,
                from: "/old".to_owned(),
                to: "/new".to_owned(),
                status: 301,
                force: false,
                query: BTreeMap::new(),
                conditions: RedirectConditions::default(),
                headers: BTreeMap::new(),
                signed: None,
            }
        );
        assert_eq!(second.status, 200);
        assert!(second.force);
        assert_eq!(second.query["id"], ":id");
        assert_eq!(second.conditions.language, ["en"]);
        assert_eq!(second.conditions.cookie, ["beta"]);
    }

    #[test]
    fn a_proxy_rule_with_headers_for_the_upstream_is_accepted() {
        let text = "[[redirects]]\nfrom = \"/api/*\"\nto = \"https://api.example.com/:splat\"\nstatus = 200\n\
                    headers = { X-From = \"Netlify\" }\n";
        let config = parse(text, FILE_NAME).unwrap();
        assert_eq!(config.redirects[0].headers["X-From"], "Netlify");
        let signed = format!("{text}signed = \"API_SECRET\"\n");
        let config = parse(&signed, FILE_NAME).unwrap();
        assert_eq!(config.redirects[0].signed.as_deref(), Some("API_SECRET"));
        let not_a_proxy = "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nsigned = \"API_SECRET\"\n";
        assert!(refused(not_a_proxy).message.contains("does not proxy"));
    }

    /// The controller would refuse these when publishing; the runner says
    /// so before the build runs, at the rule's line.
    #[test]
    fn rules_the_server_cannot_serve_fail_before_the_build() {
        let elsewhere = "[build]\ncommand = \"make\"\n[[redirects]]\nfrom = \"/api/*\"\nto = \"https://api.example.com/:splat\"\nstatus = 404\n";
        let error = refused(elsewhere);
        assert_eq!((error.line, error.column), (4, 8));
        assert!(error.message.contains("another site's page"), "{error}");
        let upstream_headers =
            "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nheaders = { X-From = \"jamstack\" }\n";
        assert!(refused(upstream_headers).message.contains("does not proxy"));
        let placeholder = "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nquery = { id = \":\" }\n";
        assert!(refused(placeholder).message.contains("not a placeholder"));
        let reserved = "[[headers]]\nfor = \"/*\"\nvalues = { Set-Cookie = \"a=b\" }\n";
        let error = refused(reserved);
        assert_eq!((error.line, error.column), (2, 7));
        assert!(
            error.message.contains("`Set-Cookie` cannot be set by a rule"),
            "{error}"
        );
        let blank_language =
            "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nconditions = { Language = [\"\"] }\n";
        assert!(refused(blank_language).message.contains("Language condition"));
    }

    #[test]
    fn too_many_rules_are_refused_at_the_first_one_over_the_limit() {
        let mut text = String::new();
        for index in 0..=jamstack_rules::MAX_HEADER_RULES {
            text.push_str(&format!(
                "[[headers]]\nfor = \"/p{index}\"\nvalues = {{ X-A = \"1\" }}\n"
            ));
        }
        let error = refused(&text);
        assert_eq!(error.line, 3 * jamstack_rules::MAX_HEADER_RULES + 2);
        assert!(error.message.contains("more than the limit"), "{error}");
    }

    #[test]
    fn an_unsupported_redirect_status_is_refused() {
        let error = refused("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 305\n");
        assert_eq!((error.line, error.column), (2, 8));
        assert!(
            error.message.starts_with("status 305 is not supported"),
            "{error}"
        );
        for status in jamstack_rules::STATUSES {
            let text = format!("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = {status}\n");
            assert_eq!(parse(&text, FILE_NAME).unwrap().redirects()[0].status, status);
        }
    }

    #[test]
    fn a_redirect_from_without_a_leading_slash_is_given_one_as_netlify_does() {
        let config = parse("[[redirects]]\nfrom = \" old \"\nto = \"/new\"\n", FILE_NAME).unwrap();
        let (redirects, _) = config.wire_rules();
        let set = jamstack_rules::from_config(&redirects, &[]).unwrap();
        assert_eq!(set.redirects[0].from, "/old");
        let error = refused("[[redirects]]\nfrom = \"/a\"\nto = \"https://\"\n");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("the target `https://`"), "{error}");
        assert!(
            parse(
                "[[redirects]]\nfrom = \"https://old.example.com/*\"\nto = \"https://example.com/:splat\"\n",
                FILE_NAME
            )
            .is_ok()
        );
    }

    #[test]
    fn a_condition_written_as_a_string_says_an_array_was_expected() {
        let error = refused("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nconditions = { Country = \"US\" }\n");
        assert_eq!((error.line, error.column), (4, 26));
        assert_eq!(
            error.message,
            "invalid type: string \"US\", expected an array of strings, like [\"US\", \"CA\"]"
        );
    }

    #[test]
    fn a_status_out_of_range_says_a_status_code_was_expected() {
        for status in ["-1", "70000"] {
            let text = format!("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = {status}\n");
            let error = refused(&text);
            assert_eq!((error.line, error.column), (4, 10));
            assert_eq!(
                error.message,
                format!(
                    "invalid value: integer `{status}`, expected an HTTP status code like 301 or \"200!\""
                )
            );
        }
    }

    /// Whether the controller can tell a visitor's country or role depends
    /// on its settings, which the runner does not know: it passes them on
    /// and the controller decides when publishing.
    #[test]
    fn country_and_role_conditions_are_passed_on_to_the_controller() {
        let text = "[[redirects]]\nfrom = \"/*\"\nto = \"/de/:splat\"\nconditions = { Country = [\"DE\"], Role = [\"admin\"] }\n";
        let config = parse(text, FILE_NAME).unwrap();
        let wire = config.redirects[0].to_wire();
        assert_eq!(wire.conditions.country, ["DE"]);
        assert_eq!(wire.conditions.role, ["admin"]);
    }

    #[test]
    fn header_rules_keep_their_values() {
        let text = "[[headers]]\nfor = \"/*\"\n[headers.values]\nX-Frame-Options = \"DENY\"\n";
        let config = parse(text, FILE_NAME).unwrap();
        assert_eq!(config.headers().len(), 1);
        assert_eq!(config.headers()[0].for_path, "/*");
        assert_eq!(config.headers()[0].values["X-Frame-Options"], "DENY");
    }

    #[test]
    fn a_header_rule_for_a_relative_path_is_given_a_leading_slash_as_netlify_does() {
        let config = parse(
            "[[headers]]\nfor = \"*.css\"\nvalues = { X-A = \"b\" }\n",
            FILE_NAME,
        )
        .unwrap();
        let (_, headers) = config.wire_rules();
        let set = jamstack_rules::from_config(&[], &headers).unwrap();
        assert_eq!(set.headers[0].for_path, "/*.css");
        let error = refused("[[headers]]\nfor = \"https://exa mple.com/*\"\nvalues = { X-A = \"b\" }\n");
        assert_eq!((error.line, error.column), (2, 7));
        assert!(error.message.contains("not a valid URL"), "{error}");
    }

    #[test]
    fn bad_header_names_and_values_are_refused() {
        let error = refused("[[headers]]\nfor = \"/*\"\nvalues = { \"X Frame\" = \"DENY\" }\n");
        assert!(error.message.contains("not a valid header name"), "{error}");
        let error = refused("[[headers]]\nfor = \"/*\"\nvalues = { X-A = \"a\\u0001b\" }\n");
        assert!(
            error.message.contains("characters a header cannot carry"),
            "{error}"
        );
        // A multi-line TOML string is one value over several lines, as the
        // controller serves it.
        let config = parse(
            "[[headers]]\nfor = \"/*\"\nvalues = { X-A = \"\"\"\na\nb\"\"\" }\n",
            FILE_NAME,
        )
        .unwrap();
        assert_eq!(config.headers()[0].values["X-A"], "a\nb");
        let error = refused("[[headers]]\nfor = \"/*\"\nvalues = { X-A = \"a\", x-a = \"b\" }\n");
        assert!(error.message.contains("set twice"), "{error}");
        let error = refused("[[headers]]\nfor = \"/*\"\nvalues = { X-Max = 3 }\n");
        assert!(
            error.message.contains("header `X-Max` must be a string"),
            "{error}"
        );
    }

    #[test]
    fn the_first_problem_in_the_file_is_reported() {
        let text = "[[redirects]]\nfrom = \"/.netlify/a\"\nto = \"/b\"\n[build]\nbase = \"/x\"\n";
        assert_eq!(refused(text).line, 2);
    }

    #[test]
    fn the_file_name_given_is_the_one_reported() {
        let error = parse("[build]\nx = 1\n", "site/jamstack.toml").unwrap_err();
        assert!(
            error.to_string().starts_with("site/jamstack.toml:2:1: "),
            "{error}"
        );
    }

    #[test]
    fn the_example_file_parses() {
        let config = parse(
            include_str!("../../jamstack.toml.example"),
            "jamstack.toml.example",
        )
        .unwrap();
        let production = config.resolve(BuildContext::Production, "main");
        assert_eq!(production.base, "site");
        assert_eq!(production.publish, "site/public");
        assert_eq!(
            production.watch,
            Some(vec!["site/**".to_owned(), "shared/**".to_owned()])
        );
        assert_eq!(production.command.as_deref(), Some("hugo --minify"));
        assert_eq!(production.environment["HUGO_ENV"], "production");
        let preview = config.resolve(BuildContext::DeployPreview, "fix-typo");
        assert_eq!(preview.command.as_deref(), Some("hugo --minify --buildDrafts"));
        let branch = config.resolve(BuildContext::BranchDeploy, "feature/new-theme");
        assert_eq!(branch.image.as_deref(), Some("jamstack/hugo:2"));
        assert_eq!(branch.environment["THEME"], "new");
        assert_eq!(branch.environment["HUGO_ENV"], "production");
        assert_eq!(preview.environment["HUGO_ENV"], "preview");
        assert_eq!(preview.environment["NODE_VERSION"], "20");
        let last = config.redirects().last().unwrap();
        assert_eq!((last.from.as_str(), last.to.as_str()), ("/*", "/404.html"));
        assert_eq!(last.status, 404);
        assert_eq!(config.redirects()[0].status, DEFAULT_REDIRECT_STATUS);
        assert_eq!(config.headers()[0].for_path, "/*");
    }
}
