//! Protected hostnames: a site may ask a password of the visitors of its
//! production hostname, its deploy previews, its branch deploys or its
//! permalinks (`db::protection`).
//!
//! A visitor who knows the password signs in on a small page of the
//! hostname itself and gets a cookie for that exact hostname (no `Domain`,
//! so no other site under the same domain ever sees it). The cookie holds
//! no session: it is an HMAC, under a key derived from the controller's
//! secret key, over the site, the kind of hostname, the password's
//! generation and an expiry, so any controller sharing the key checks it
//! without a database read, and a new password (a new generation) signs
//! everyone out. A share link carries the same signed value in its query.
//!
//! The guard is resolved with the hostname's deploy and kept beside it in
//! the edge's memory, so a public hostname pays nothing more, and a
//! protected one checks one HMAC before its usual in-memory answer (and
//! only its claims, for a minute after that HMAC was found right once). Every
//! protected answer is `Cache-Control: private` and `Vary: Cookie`, so no
//! shared cache keeps it.

use super::respond::{IMMUTABLE, PRIVATE_IMMUTABLE, PRIVATE_REVALIDATE, REVALIDATE};
use super::{Edge, Target};
use crate::auth::SignInThrottle;
use crate::auth::sign_in::FAILURE_PAUSE;
use crate::db::{Access, SiteProtection};
use crate::edge::rules::BasicCredential;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the sign-in form of a protected hostname posts to. Reserved on
/// every site hostname: a deploy's own file at this path is never served
/// a `POST`.
pub const SIGN_IN_PATH: &str = "/.jamstack/sign-in";

/// The cookie that lets a visitor in.
pub const ACCESS_COOKIE: &str = "jamstack_site_access";

/// The query parameter of a share link.
pub const SHARE_PARAMETER: &str = "jamstack_share";

/// How long a sign-in lasts.
pub const SIGN_IN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest a share link may last.
pub const MAX_SHARE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The cookie that ties a sign-in form to the browser it was shown to: a
/// random nonce.
pub const SIGN_IN_NONCE_COOKIE: &str = "jamstack_sign_in_nonce";

/// The form field carrying the sign-in form's token (see
/// [`SiteAccess::form_token`]).
pub const FORM_TOKEN_FIELD: &str = "form_token";

/// How long a sign-in form may be left open before it is posted.
pub const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// The largest sign-in form read: a password and a path.
pub const MAX_SIGN_IN_FORM: usize = 8 * 1024;

/// The kinds of hostname a site has, each protected on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextKind {
    Production,
    Previews,
    BranchDeploys,
    Permalinks,
}

impl ContextKind {
    pub fn of(target: &Target) -> Self {
        match target {
            Target::Published { .. } => ContextKind::Production,
            Target::Permalink { .. } => ContextKind::Permalinks,
            Target::Alias { alias, .. } if is_preview_alias(alias) => ContextKind::Previews,
            Target::Alias { .. } => ContextKind::BranchDeploys,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Production => "production",
            ContextKind::Previews => "previews",
            ContextKind::BranchDeploys => "branch_deploys",
            ContextKind::Permalinks => "permalinks",
        }
    }

    fn access_in(self, protection: &SiteProtection) -> Access {
        let access = &protection.access;
        match self {
            ContextKind::Production => access.production,
            ContextKind::Previews => access.previews,
            ContextKind::BranchDeploys => access.branch_deploys,
            ContextKind::Permalinks => access.permalinks,
        }
    }
}

/// `deploy-preview-<n>`: the hostname of a pull request's preview.
pub fn is_preview_alias(alias: &str) -> bool {
    alias
        .strip_prefix("deploy-preview-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What a visitor of a protected hostname must show: access signed for this
/// site, this kind of hostname and this password generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub site_id: i64,
    pub kind: ContextKind,
    pub generation: i64,
}

impl Guard {
    /// The guard of `target`'s hostname, `None` when it is public.
    pub fn of(site_id: i64, target: &Target, protection: &SiteProtection) -> Option<Guard> {
        let kind = ContextKind::of(target);
        (kind.access_in(protection) == Access::Password).then_some(Guard {
            site_id,
            kind,
            generation: protection.password_generation,
        })
    }
}

/// Signs and checks access to protected hostnames, and paces the guesses
/// of their passwords.
pub struct SiteAccess {
    /// HMAC-SHA256 already keyed: each signature clones it instead of
    /// hashing the key again.
    keyed: Hmac<Sha256>,
    /// Apart from the dashboard's: guessing a site's password does not
    /// slow the dashboard's sign-in, nor the other way round.
    throttle: SignInThrottle,
    /// Signatures checked lately, so a signed-in visitor's every request
    /// does not compute the HMAC again.
    verified: VerifiedSignatures,
}

/// How long a checked signature is taken on trust before it is checked
/// again. Its claims (site, kind, generation, expiry) are read on every
/// request whatever this says: a new password or an expired cookie shuts
/// the door at once.
const VERIFIED_LIFETIME: Duration = Duration::from_secs(60);

/// The most signatures [`VerifiedSignatures`] keeps: about 150 bytes each.
const MAX_VERIFIED: usize = 16 * 1024;

/// A signature found right, when, and what its claims say: read once,
/// so a signed-in visitor's next requests do not parse them again.
struct Verified {
    mac: Box<str>,
    /// When, in seconds since the epoch: the caller's clock reading,
    /// which spares reading the clock again.
    checked: u64,
    claims: Claims,
}

/// What an access token's claims say.
#[derive(Debug, Clone, Copy)]
struct Claims {
    site_id: i64,
    kind: &'static str,
    generation: i64,
    expires: u64,
}

impl Claims {
    /// `<site>.<kind>.<generation>.<expires>`, or `None` when malformed.
    fn parse(claims: &str) -> Option<Claims> {
        let mut parts = claims.split('.');
        let site_id: i64 = parts.next()?.parse().ok()?;
        let kind = parts.next()?;
        let kind = [
            ContextKind::Production,
            ContextKind::Previews,
            ContextKind::BranchDeploys,
            ContextKind::Permalinks,
        ]
        .into_iter()
        .map(ContextKind::as_str)
        .find(|known| *known == kind)?;
        let generation: i64 = parts.next()?.parse().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Claims {
            site_id,
            kind,
            generation,
            expires,
        })
    }

    /// The expiry, when these claims open `guard` at `now`.
    fn open(&self, guard: &Guard, now: u64) -> Option<u64> {
        let fits = self.site_id == guard.site_id
            && self.kind == guard.kind.as_str()
            && self.generation == guard.generation
            && self.expires > now;
        fits.then_some(self.expires)
    }
}

/// Whether a signature checked at `checked` is still taken on trust at
/// `now` (seconds since the epoch); a clock set back trusts it no longer.
fn still_trusted(checked: u64, now: u64) -> bool {
    now >= checked && now - checked < VERIFIED_LIFETIME.as_secs()
}

/// The signatures of access tokens found right lately, by their claims
/// (`<site>.<kind>.<generation>.<expires>`). A claim has exactly one right
/// signature under the key, so remembering it changes no answer; it spares
/// the HMAC, the bulk of a protected answer's extra cost. Looked up by the
/// claims, which are no secret, and compared in constant time, so a
/// visitor's guesses learn nothing from the lookup's timing. Only a
/// signature that verified gets in, so a visitor cannot fill it with
/// made-up ones; it is bounded all the same.
#[derive(Default)]
struct VerifiedSignatures {
    /// Keyed by claims a visitor sends: foldhash's per-process random
    /// seed keeps them from choosing colliding keys, and it hashes a
    /// 30-byte key several times faster than SipHash.
    entries: std::sync::RwLock<std::collections::HashMap<Box<str>, Verified, foldhash::fast::RandomState>>,
}

impl VerifiedSignatures {
    /// The claims `mac` signs, when it is the signature of `claims`
    /// checked within [`VERIFIED_LIFETIME`].
    fn vouches_for(&self, claims: &str, mac: &str, now: u64) -> Option<Claims> {
        use subtle::ConstantTimeEq as _;
        let entries = self
            .entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = entries.get(claims)?;
        (still_trusted(known.checked, now) && bool::from(known.mac.as_bytes().ct_eq(mac.as_bytes())))
            .then_some(known.claims)
    }

    fn remember(&self, claims: &str, mac: &str, parsed: Claims, now: u64) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_VERIFIED {
            entries.retain(|_, known| still_trusted(known.checked, now));
            if entries.len() >= MAX_VERIFIED {
                entries.clear();
            }
        }
        entries.insert(
            claims.into(),
            Verified {
                mac: mac.into(),
                checked: now,
                claims: parsed,
            },
        );
    }
}

impl std::fmt::Debug for SiteAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteAccess(***)")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SiteAccess {
    /// `key` is derived from the controller's secret key for this purpose
    /// alone (`SecretBox::derive_key`).
    pub fn new(key: [u8; 32]) -> Self {
        SiteAccess {
            keyed: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length"),
            throttle: SignInThrottle::default(),
            verified: VerifiedSignatures::default(),
        }
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(message.as_bytes());
        mac
    }

    /// Access past `guard` until `expires` (seconds since the epoch), as
    /// `<site>.<kind>.<generation>.<expires>.<mac>`, the MAC being the
    /// first 128 bits of the HMAC-SHA256 of the claims in unpadded
    /// base64url. Truncated to half, as RFC 2104 allows: a forger still
    /// has one chance in 2^128 per guess, and every visitor's every
    /// request carries 42 bytes fewer than with the whole MAC in hex.
    pub fn sign(&self, guard: &Guard, expires: u64) -> String {
        use base64::Engine as _;
        let claims = format!(
            "{}.{}.{}.{expires}",
            guard.site_id,
            guard.kind.as_str(),
            guard.generation
        );
        let full = self.mac(&claims).finalize().into_bytes();
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&full[..SHORT_MAC_BYTES]);
        format!("{claims}.{mac}")
    }

    /// Access past `guard` for `lifetime` from now.
    pub fn sign_for(&self, guard: &Guard, lifetime: Duration) -> (String, u64) {
        let expires = unix_now() + lifetime.as_secs();
        (self.sign(guard, expires), expires)
    }

    /// The expiry of `token` when it lets in past `guard` at `now`.
    /// Tokens signed before the MAC was shortened (the whole HMAC in
    /// lower-case hex) still open until they expire: share links already
    /// sent and visitors already signed in keep working.
    pub fn verify_at(&self, token: &str, guard: &Guard, now: u64) -> Option<u64> {
        let (claims, mac) = token.rsplit_once('.')?;
        let parsed = match self.verified.vouches_for(claims, mac, now) {
            Some(parsed) => parsed,
            None => {
                let expected = self.mac(claims).finalize().into_bytes();
                if !mac_spells(mac, &expected) {
                    return None;
                }
                let parsed = Claims::parse(claims)?;
                self.verified.remember(claims, mac, parsed, now);
                parsed
            }
        };
        parsed.open(guard, now)
    }

    fn verify(&self, token: &str, guard: &Guard) -> Option<u64> {
        self.verify_at(token, guard, unix_now())
    }

    /// The token a sign-in form shown on `host` to the browser holding
    /// `nonce` (its [`SIGN_IN_NONCE_COOKIE`]) must post back before
    /// `expires`: `<expires>.<hmac>`. A page elsewhere cannot post the
    /// form for a visitor (cross-site request forgery): it can neither
    /// read this token from the visitor's page nor make one for the
    /// visitor's nonce.
    pub fn form_token(&self, host: &str, nonce: &str, expires: u64) -> String {
        let mac = self.mac(&format!(
            "sign-in-form\n{}\n{nonce}\n{expires}",
            host.to_ascii_lowercase()
        ));
        format!("{expires}.{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `token` is [`SiteAccess::form_token`]'s for `host` and
    /// `nonce`, unexpired at `now`.
    pub fn form_token_fits(&self, token: &str, host: &str, nonce: &str, now: u64) -> bool {
        let Some((expires, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<u64>() else {
            return false;
        };
        if expires <= now || !mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return false;
        }
        let Ok(mac) = hex::decode(mac) else {
            return false;
        };
        self.mac(&format!(
            "sign-in-form\n{}\n{nonce}\n{expires}",
            host.to_ascii_lowercase()
        ))
        .verify_slice(&mac)
        .is_ok()
    }
}

/// The bytes of the HMAC an access token carries: 128 bits.
const SHORT_MAC_BYTES: usize = 16;

/// Whether `mac` is `expected` written as [`SiteAccess::sign`] writes it
/// (its first 128 bits in unpadded base64url), or as it was written before
/// (all of it in lower-case hex). One value, one spelling per form: any
/// other spelling of the same bytes is refused. Compared in constant time.
fn mac_spells(mac: &str, expected: &[u8]) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    let (given, wanted) = if mac.len() == 2 * expected.len() {
        if !mac.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return false;
        }
        (hex::decode(mac).ok(), expected)
    } else {
        // Decoding refuses non-zero trailing bits, so each 128-bit value
        // has exactly one 22-character spelling.
        (
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac).ok(),
            &expected[..SHORT_MAC_BYTES],
        )
    };
    given.is_some_and(|given| given.len() == wanted.len() && bool::from(given.ct_eq(wanted)))
}

/// The browser's sign-in nonce, when it sent a well-formed one.
fn sign_in_nonce(headers: &HeaderMap) -> Option<String> {
    cookie_values(headers, SIGN_IN_NONCE_COOKIE)
        .find(|value| value.len() == 32 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .map(str::to_owned)
}

/// The request's `Host`, as the visitor wrote it.
fn host_of(request: &Parts) -> String {
    request
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether the browser says the form was posted from a page of another
/// origin (`Origin` differs from this hostname): refused whatever the
/// token says.
fn posted_from_elsewhere(request: &Parts) -> bool {
    let Some(origin) = request.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    !authority.eq_ignore_ascii_case(&host_of(request))
}

/// Whether a request may pass `guard`: `None` lets it through; otherwise
/// the answer it gets instead (the sign-in page, or a share link turned
/// into a cookie).
pub fn check(state: &Edge, guard: &Guard, request: &Parts) -> Option<Response> {
    let shared = share_token(request.uri.query());
    if let Some(token) = &shared
        && let Some(expires) = state.access.verify(token, guard)
    {
        let location = without_share_parameter(request.uri.path(), request.uri.query());
        let max_age = expires.saturating_sub(unix_now());
        return Some(signed_in(state, request, token, max_age, &location));
    }
    let signed = cookie_values(&request.headers, ACCESS_COOKIE)
        .any(|value| state.access.verify(value, guard).is_some());
    if signed {
        // Signed in already: a stale link in the address changes nothing.
        return None;
    }
    let why = shared.is_some().then_some(
        "This share link has expired or was revoked by a new password. Ask for a new link, or sign in.",
    );
    Some(sign_in_page(
        &state.access,
        request,
        StatusCode::UNAUTHORIZED,
        why,
    ))
}

/// The values of the cookies named `name` in `headers`, read as bytes: a
/// protected hostname runs this on every request, and checking the whole
/// header's text first cost more than the rest of the scan. The pairs are
/// found with `memchr`, which steps over a long cookie header many bytes
/// at a time.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all(header::COOKIE).iter().flat_map(move |header| {
        let bytes = header.as_bytes();
        let mut start = 0;
        memchr::memchr_iter(b';', bytes)
            .chain(std::iter::once(bytes.len()))
            .filter_map(move |end| {
                let pair = &bytes[start..end];
                start = end + 1;
                let value = pair
                    .trim_ascii()
                    .strip_prefix(name.as_bytes())?
                    .strip_prefix(b"=")?;
                std::str::from_utf8(value).ok()
            })
    })
}

/// Whether the request's `Authorization: Basic` names one of `accepted`
/// (compared in constant time, so a guess learns nothing from timing).
pub fn basic_auth_allows(accepted: &[&BasicCredential], headers: &HeaderMap) -> bool {
    use base64::Engine as _;
    use subtle::ConstantTimeEq as _;
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    // Every credential is compared, whichever matches.
    accepted.iter().fold(false, |found, credential| {
        let same = credential.user.as_bytes().ct_eq(user) & credential.password.as_bytes().ct_eq(password);
        found | bool::from(same)
    })
}

/// The answer to a request without the `Basic-Auth` credentials a path
/// asks for: the browser's own sign-in prompt, nothing of the site.
pub fn basic_auth_refusal() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                "Basic realm=\"site\", charset=\"UTF-8\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "this page asks for a user name and password\n",
    )
        .into_response()
}

/// The private forms of the edge's own `Cache-Control` values: nearly
/// every protected answer carries one of these, and needs neither parsing
/// nor an allocation.
const PRIVATE_FORMS: [(&str, &str); 2] = [(REVALIDATE, PRIVATE_REVALIDATE), (IMMUTABLE, PRIVATE_IMMUTABLE)];

/// Makes a protected answer one only the visitor's own browser keeps:
/// `public` and shared-cache directives give way to `private`, and the
/// answer varies by cookie.
pub fn make_private(headers: &mut HeaderMap) {
    use axum::http::header::Entry;
    // One lookup per header, through its entry: this runs on every
    // protected answer.
    match headers.entry(header::CACHE_CONTROL) {
        Entry::Occupied(mut entry) => {
            let known = match entry.iter().nth(1) {
                None => PRIVATE_FORMS
                    .iter()
                    .find(|(public, _)| entry.get() == public)
                    .map(|(_, private)| HeaderValue::from_static(private)),
                Some(_) => None,
            };
            let value = known.unwrap_or_else(|| {
                HeaderValue::from_str(&private_form(entry.iter()))
                    .unwrap_or_else(|_| HeaderValue::from_static("private, no-cache"))
            });
            entry.insert(value);
        }
        Entry::Vacant(entry) => {
            entry.insert(HeaderValue::from_static("private"));
        }
    }
    // The edge's own `Vary` gains `Cookie` in place: appending a second
    // value costs the header map an allocation on every answer.
    match headers.entry(header::VARY) {
        Entry::Occupied(mut entry) => {
            if entry.iter().nth(1).is_none() && entry.get() == "Accept-Encoding" {
                entry.insert(HeaderValue::from_static("Accept-Encoding, Cookie"));
            } else if !varies_by_cookie(entry.iter()) {
                entry.append(HeaderValue::from_static("Cookie"));
            }
        }
        Entry::Vacant(entry) => {
            entry.insert(HeaderValue::from_static("Cookie"));
        }
    }
}

/// Whether a `Vary` already names `Cookie` (a file answer made private as
/// it was built, then given a deploy's own `Cache-Control`).
fn varies_by_cookie<'a>(mut values: impl Iterator<Item = &'a HeaderValue>) -> bool {
    values.any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("cookie"))
    })
}

/// `headers`' `Cache-Control` with `private` for `public` and without the
/// directives meant for shared caches.
fn private_form<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> String {
    let mut value = String::from("private");
    for directive in values.filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')) {
        let directive = directive.trim();
        let name = directive.split('=').next().unwrap_or("").trim();
        let shared = ["public", "private", "s-maxage", "proxy-revalidate"]
            .iter()
            .any(|dropped| name.eq_ignore_ascii_case(dropped));
        if !directive.is_empty() && !shared {
            value.push_str(", ");
            value.push_str(directive);
        }
    }
    value
}

fn share_token(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find(|(name, _)| name == SHARE_PARAMETER)
        .map(|(_, value)| value)
}

/// `path?query` with the share parameter taken out.
fn without_share_parameter(path: &str, query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(SHARE_PARAMETER))
        .collect();
    if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

/// Whether the visitor reached the edge over TLS (directly or behind a
/// proxy that says so), so the cookie gets `Secure`.
fn over_tls(state: &Edge, request: &Parts) -> bool {
    request.extensions.get::<crate::http_server::OverTls>().is_some()
        || request.uri.scheme_str() == Some("https")
        || state
            .config
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
        || request
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// A redirect to `location` that leaves `token` as the hostname's cookie.
fn signed_in(state: &Edge, request: &Parts, token: &str, max_age: u64, location: &str) -> Response {
    let secure = if over_tls(state, request) { "; Secure" } else { "" };
    let cookie =
        format!("{ACCESS_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let (Ok(cookie), Ok(location)) = (HeaderValue::from_str(&cookie), HeaderValue::from_str(location)) {
        headers.insert(header::SET_COOKIE, cookie);
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A path on this hostname to go back to after signing in: only a path
/// (no scheme, no other host, no `//host`), else the home page.
fn same_host_path(return_to: &str) -> &str {
    let bytes = return_to.as_bytes();
    let is_path = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !return_to.chars().any(|c| c.is_control() || c == '\\')
        // The form's own address is no page to go back to.
        && !return_to.starts_with(SIGN_IN_PATH);
    if is_path { return_to } else { "/" }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The sign-in page for a visitor of `request`: a password field and
/// nothing of the site.
fn sign_in_page(access: &SiteAccess, request: &Parts, status: StatusCode, error: Option<&str>) -> Response {
    let return_to = without_share_parameter(request.uri.path(), request.uri.query());
    sign_in_page_returning_to(access, request, &return_to, status, error)
}

/// The sign-in page, whose form goes back to `return_to` (attribute values
/// are written in double quotes, which [`escape_html`] escapes). The form
/// carries a token for this hostname and the browser's sign-in nonce,
/// which is set as a cookie when the browser has none.
fn sign_in_page_returning_to(
    access: &SiteAccess,
    request: &Parts,
    return_to: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (nonce, new_nonce) = match sign_in_nonce(&request.headers) {
        Some(nonce) => (nonce, false),
        None => {
            use rand::RngCore as _;
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes);
            (hex::encode(bytes), true)
        }
    };
    let token = access.form_token(
        &host_of(request),
        &nonce,
        unix_now() + SIGN_IN_FORM_LIFETIME.as_secs(),
    );
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape_html(e))
    });
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>Sign in to see this site</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:15vh auto;padding:0 1rem}}\
         input,button{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}}\
         .error{{color:#b00020}}</style></head><body>\
         <h1>This site is protected</h1><p>Enter the site's password to see it.</p>{error}\
         <form method=\"post\" action=\"{SIGN_IN_PATH}\">\
         <input type=\"hidden\" name=\"{FORM_TOKEN_FIELD}\" value=\"{token}\">\
         <input type=\"hidden\" name=\"return_to\" value=\"{}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form></body></html>\n",
        escape_html(same_host_path(return_to))
    );
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response();
    if new_nonce {
        // For the whole hostname, so every sign-in page shown to this
        // browser (a page and its favicon both get one) reuses it rather
        // than replacing the one an open form was made for; `Strict`, so
        // no other site's page posting the form sends it along.
        let cookie = format!(
            "{SIGN_IN_NONCE_COOKIE}={nonce}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
            SIGN_IN_FORM_LIFETIME.as_secs()
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

#[derive(serde::Deserialize)]
struct SignInForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
    #[serde(default)]
    form_token: String,
}

/// A `POST` of the sign-in form to [`SIGN_IN_PATH`] on `target`'s hostname.
pub async fn sign_in(
    state: &Edge,
    target: &Target,
    request: &Parts,
    body: &[u8],
) -> anyhow::Result<Response> {
    let (_, guard, _) = state.cache.resolve(&state.db, target).await?;
    let Some(guard) = guard else {
        return Ok((
            StatusCode::NOT_FOUND,
            "this hostname is public; there is nothing to sign in to\n",
        )
            .into_response());
    };
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(body) else {
        return Ok(sign_in_page_returning_to(
            &state.access,
            request,
            "/",
            StatusCode::BAD_REQUEST,
            Some("The form could not be read; try again."),
        ));
    };
    // Before the password is looked at: a forged form learns nothing.
    let nonce = sign_in_nonce(&request.headers);
    let form_fits = nonce.as_deref().is_some_and(|nonce| {
        state
            .access
            .form_token_fits(&form.form_token, &host_of(request), nonce, unix_now())
    });
    if !form_fits || posted_from_elsewhere(request) {
        tracing::warn!(
            site_id = guard.site_id,
            nonce_cookie = nonce.is_some(),
            form_token = !form.form_token.is_empty(),
            origin = ?request.headers.get(header::ORIGIN),
            host = host_of(request),
            "site sign-in refused: the form did not come from this hostname's own page"
        );
        return Ok(sign_in_page_returning_to(
            &state.access,
            request,
            &form.return_to,
            StatusCode::FORBIDDEN,
            Some(
                "This sign-in did not come from this site's own sign-in page, or the page was open too long. \
                 Enter the password again here.",
            ),
        ));
    }
    let client = request
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let _admitted = match state.access.throttle.admit(client) {
        Ok(admitted) => admitted,
        Err(busy) => {
            tracing::warn!(site_id = guard.site_id, %client, ?busy, "site sign-in refused: too many attempts in flight");
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "2"), (header::CACHE_CONTROL, "no-store")],
                "too many sign-ins are waiting their turn; try again in a few seconds\n",
            )
                .into_response());
        }
    };
    // The turn is taken before anything is checked, so no answer comes
    // sooner than the failures ahead of it allow.
    let turn = state.access.throttle.turn.lock().await;
    let protection = state.db.site_protection(guard.site_id).await?;
    let matches = match &protection.password_hash {
        Some(hash) if !form.password.is_empty() => {
            SignInThrottle::password_matches(&form.password, hash).await?
        }
        _ => false,
    };
    if !matches {
        tracing::warn!(site_id = guard.site_id, %client, "site sign-in refused: wrong password");
        tokio::time::sleep(FAILURE_PAUSE).await;
        drop(turn);
        return Ok(sign_in_page_returning_to(
            &state.access,
            request,
            &form.return_to,
            StatusCode::UNAUTHORIZED,
            Some("That is not this site's password."),
        ));
    }
    drop(turn);
    // Signed for the generation just read: the password that matched.
    let guard = Guard {
        generation: protection.password_generation,
        ..guard
    };
    let (token, _) = state.access.sign_for(&guard, SIGN_IN_LIFETIME);
    let location = same_host_path(&form.return_to).to_owned();
    Ok(signed_in(
        state,
        request,
        &token,
        SIGN_IN_LIFETIME.as_secs(),
        &location,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            site_id: 7,
            kind: ContextKind::Production,
            generation: 2,
        }
    }

    #[test]
    fn access_signed_for_a_site_lets_in_until_it_expires() {
        let access = SiteAccess::new([1; 32]);
        let token = access.sign(&guard(), 1_000);
        assert_eq!(access.verify_at(&token, &guard(), 999), Some(1_000));
        assert_eq!(access.verify_at(&token, &guard(), 1_000), None, "expired");
    }

    #[test]
    fn access_does_not_open_another_site_kind_or_password_generation() {
        let access = SiteAccess::new([1; 32]);
        let token = access.sign(&guard(), 1_000);
        for other in [
            Guard {
                site_id: 8,
                ..guard()
            },
            Guard {
                kind: ContextKind::Previews,
                ..guard()
            },
            Guard {
                generation: 3,
                ..guard()
            },
        ] {
            assert_eq!(access.verify_at(&token, &other, 0), None, "{other:?}");
        }
    }

    #[test]
    fn access_checked_once_still_opens_only_its_own_guard_until_it_expires() {
        let access = SiteAccess::new([1; 32]);
        let token = access.sign(&guard(), 1_000);
        assert_eq!(access.verify_at(&token, &guard(), 0), Some(1_000));
        // Remembered now: its claims are still read every time.
        assert_eq!(access.verify_at(&token, &guard(), 0), Some(1_000));
        let newer_password = Guard {
            generation: 3,
            ..guard()
        };
        assert_eq!(access.verify_at(&token, &newer_password, 0), None);
        assert_eq!(access.verify_at(&token, &guard(), 1_000), None, "expired");
        // The same claims under another signature are no better for it.
        let (claims, mac) = token.rsplit_once('.').unwrap();
        let flipped = if mac.starts_with('0') { "1" } else { "0" };
        let forged = format!("{claims}.{flipped}{}", &mac[1..]);
        assert_eq!(access.verify_at(&forged, &guard(), 0), None);
    }

    #[test]
    fn altered_or_foreign_access_is_refused() {
        let access = SiteAccess::new([1; 32]);
        let token = access.sign(&guard(), 1_000);
        let later = token.replacen(".1000.", ".9999.", 1);
        assert_eq!(access.verify_at(&later, &guard(), 0), None, "expiry moved");
        let foreign = SiteAccess::new([2; 32]).sign(&guard(), 1_000);
        assert_eq!(access.verify_at(&foreign, &guard(), 0), None, "another key");
        let shouted = format!(
            "{}.{}",
            token.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().1.to_uppercase()
        );
        assert_eq!(access.verify_at(&shouted, &guard(), 0), None, "another spelling");
        for junk in ["", ".", "7.production.2.1000", "7.production.2.1000.zz"] {
            assert_eq!(access.verify_at(junk, &guard(), 0), None, "{junk}");
        }
    }

    #[test]
    fn access_is_short_and_access_signed_with_the_whole_mac_still_opens() {
        let access = SiteAccess::new([1; 32]);
        let token = access.sign(&guard(), 1_000);
        let (claims, mac) = token.rsplit_once('.').unwrap();
        assert_eq!(mac.len(), 22, "128 bits in base64url: {token}");
        // As tokens were written before: the whole HMAC in hex.
        let whole = hex::encode(access.mac(claims).finalize().into_bytes());
        let older = format!("{claims}.{whole}");
        assert_eq!(access.verify_at(&older, &guard(), 999), Some(1_000));
        assert_eq!(access.verify_at(&older, &guard(), 1_000), None, "expired");
        let fresh = SiteAccess::new([1; 32]);
        let shouted = format!("{claims}.{}", whole.to_uppercase());
        assert_eq!(fresh.verify_at(&shouted, &guard(), 0), None, "hex in upper case");
        let halved = format!("{claims}.{}", &whole[..32]);
        assert_eq!(fresh.verify_at(&halved, &guard(), 0), None, "half the MAC in hex");
        let padded = format!("{token}==");
        assert_eq!(fresh.verify_at(&padded, &guard(), 0), None, "padded base64");
    }

    #[test]
    fn sign_in_returns_only_to_a_path_on_the_same_hostname() {
        assert_eq!(same_host_path("/docs/?a=1"), "/docs/?a=1");
        for outside in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/.jamstack/sign-in",
        ] {
            assert_eq!(same_host_path(outside), "/", "{outside}");
        }
    }

    #[test]
    fn protected_answers_are_private_whatever_the_deploy_asked() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, s-maxage=600, immutable"),
        );
        make_private(&mut headers);
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "private, max-age=31536000, immutable"
        );
        assert_eq!(headers[header::VARY], "Cookie");
    }

    #[test]
    fn the_access_cookie_is_found_among_others_in_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; jamstack_site_access_old=x;jamstack_site_access=first "),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("  jamstack_site_access=second"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("jamstack_site_access"));
        let found: Vec<_> = cookie_values(&headers, ACCESS_COOKIE).collect();
        assert_eq!(found, ["first", "second"]);
    }

    #[test]
    fn protected_answers_vary_by_cookie_as_well_as_by_what_they_did() {
        let vary_after = |before: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in before {
                headers.append(header::VARY, HeaderValue::from_static(value));
            }
            make_private(&mut headers);
            let after: Vec<_> = headers
                .get_all(header::VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            after.join(", ")
        };
        assert_eq!(vary_after(&[]), "Cookie");
        assert_eq!(vary_after(&["Accept-Encoding"]), "Accept-Encoding, Cookie");
        assert_eq!(vary_after(&["Origin"]), "Origin, Cookie");
        assert_eq!(
            vary_after(&["Accept-Encoding", "Accept-Language"]),
            "Accept-Encoding, Accept-Language, Cookie"
        );
        // Built private already, then given a deploy's own `Vary`: `Cookie`
        // is said once.
        assert_eq!(
            vary_after(&["Accept-Encoding, Cookie", "Origin"]),
            "Accept-Encoding, Cookie, Origin"
        );
        assert_eq!(vary_after(&["Cookie", "Origin"]), "Cookie, Origin");
    }

    #[test]
    fn the_edges_own_cache_control_values_turn_private_as_any_other_would() {
        for (public, private) in PRIVATE_FORMS {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(public));
            assert_eq!(
                private_form(headers.get_all(header::CACHE_CONTROL).iter()),
                private,
                "the precomputed form of `{public}`"
            );
            make_private(&mut headers);
            assert_eq!(headers.get_all(header::CACHE_CONTROL).iter().count(), 1);
            assert_eq!(headers[header::CACHE_CONTROL], private);
        }
        // Two values, one of them the edge's own: read as a whole.
        let mut headers = HeaderMap::new();
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
        headers.append(
            header::CACHE_CONTROL,
            HeaderValue::from_static("s-maxage=60, no-transform"),
        );
        make_private(&mut headers);
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "private, max-age=0, must-revalidate, no-transform"
        );
    }

    #[test]
    fn hostnames_are_protected_by_their_kind() {
        let site = "blog".to_owned();
        let kind = |target| ContextKind::of(&target);
        assert_eq!(
            kind(Target::Published { site: site.clone() }),
            ContextKind::Production
        );
        assert_eq!(
            kind(Target::Alias {
                site: site.clone(),
                alias: "deploy-preview-3".into()
            }),
            ContextKind::Previews
        );
        assert_eq!(
            kind(Target::Alias {
                site: site.clone(),
                alias: "staging".into()
            }),
            ContextKind::BranchDeploys
        );
        assert_eq!(
            kind(Target::Permalink {
                site,
                deploy_id: "0".repeat(24)
            }),
            ContextKind::Permalinks
        );
    }

    #[test]
    fn basic_auth_lets_in_a_listed_user_with_its_own_password_only() {
        use base64::Engine as _;
        let alice = BasicCredential {
            user: "alice".into(),
            password: "wonder:land".into(),
        };
        let bob = BasicCredential {
            user: "bob".into(),
            password: "builder".into(),
        };
        let accepted = [&alice, &bob];
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            headers
        };
        let basic = |pair: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair));
        assert!(basic_auth_allows(&accepted, &with(&basic("alice:wonder:land"))));
        assert!(basic_auth_allows(&accepted, &with(&basic("bob:builder"))));
        for refused in [
            basic("alice:builder"),
            basic("bob:"),
            basic("carol:x"),
            "Basic !!".into(),
            "Bearer x".into(),
        ] {
            assert!(!basic_auth_allows(&accepted, &with(&refused)), "{refused}");
        }
        assert!(!basic_auth_allows(&accepted, &HeaderMap::new()));
    }

    #[test]
    fn a_sign_in_form_token_fits_its_hostname_and_nonce_until_it_expires() {
        let access = SiteAccess::new([1; 32]);
        let nonce = "0123456789abcdef0123456789abcdef";
        let token = access.form_token("vault.localhost:8080", nonce, 1_000);
        assert!(access.form_token_fits(&token, "VAULT.localhost:8080", nonce, 999));
        assert!(
            !access.form_token_fits(&token, "vault.localhost:8080", nonce, 1_000),
            "expired"
        );
        assert!(
            !access.form_token_fits(&token, "other.localhost:8080", nonce, 0),
            "another hostname"
        );
        let other_nonce = "f".repeat(32);
        assert!(
            !access.form_token_fits(&token, "vault.localhost:8080", &other_nonce, 0),
            "another browser"
        );
        let foreign = SiteAccess::new([2; 32]).form_token("vault.localhost:8080", nonce, 1_000);
        assert!(
            !access.form_token_fits(&foreign, "vault.localhost:8080", nonce, 0),
            "another key"
        );
        let later = token.replacen("1000.", "9999.", 1);
        assert!(
            !access.form_token_fits(&later, "vault.localhost:8080", nonce, 0),
            "expiry moved"
        );
        for junk in ["", ".", "1000", "1000.zz", "x.00"] {
            assert!(
                !access.form_token_fits(junk, "vault.localhost:8080", nonce, 0),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_share_parameter_is_taken_out_of_the_redirect() {
        assert_eq!(without_share_parameter("/a", Some("jamstack_share=x")), "/a");
        assert_eq!(
            without_share_parameter("/a", Some("q=1&jamstack_share=x&r=2")),
            "/a?q=1&r=2"
        );
    }
}
