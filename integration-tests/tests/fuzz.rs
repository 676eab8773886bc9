//! Fuzz targets for every parser that reads outside input: `_redirects` and
//! `_headers` files, `jamstack.toml`, webhook bodies (GitHub's and the
//! generic one), request paths and `Range` headers. A repository, a fork's
//! pull request or any visitor writes these, so none may panic, and each
//! answer keeps its promises (a decoded path stays inside the deploy, a
//! range stays inside the file, resolved build paths stay inside the
//! checkout).
//!
//! They run in the normal test suite with proptest's default of 256 cases
//! each, from random bytes, from inputs built from the grammar's pieces,
//! and from real examples mutated (the shared GitHub fixtures,
//! `jamstack.toml.example`, Netlify's documented rule files).
//! `scripts/fuzz.sh [seconds]` runs each for longer with more cases; a
//! failure prints the smallest input proptest shrank it to, and is kept in
//! `fuzz.proptest-regressions` beside this file, to be tried first on every
//! later run.
//!
//! The parsers are called through their public entry points only.

use jamstack_controller::api::webhooks::read_generic_push;
use jamstack_controller::edge::path;
use jamstack_controller::edge::protection::{ContextKind, Guard, SiteAccess};
use jamstack_controller::edge::respond::{RangeRequest, parse_range};
use jamstack_controller::github::parse_event;
use jamstack_proto::BuildContext;
use jamstack_rules::{self as rules, Request, RuleSet};
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------
// Inputs

/// A seed changed by a few edits: bytes replaced, inserted or removed, a
/// piece of another seed spliced in, a span repeated.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let splice_sources = seeds.clone();
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Replace(at, byte)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Edit::Remove(at, len)),
        (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..64)
            .prop_map(|(at, seed, from, len)| Edit::Splice(at, seed, from, len)),
        (any::<usize>(), 1usize..32, 2usize..64).prop_map(|(at, len, times)| Edit::Repeat(at, len, times)),
    ];
    (select(seeds), proptest::collection::vec(edit, 0..6)).prop_map(move |(seed, edits)| {
        let mut bytes = seed;
        for edit in edits {
            edit.apply(&mut bytes, &splice_sources);
        }
        bytes
    })
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Splice(usize, usize, usize, usize),
    Repeat(usize, usize, usize),
}

impl Edit {
    fn apply(self, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match self {
            Edit::Replace(i, byte) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = byte;
                }
            }
            Edit::Insert(i, new) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, new);
            }
            Edit::Remove(i, len) => {
                let i = at(i, bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Edit::Splice(i, seed, from, len) => {
                let source = &seeds[seed % seeds.len()];
                let from = at(from, source.len());
                let piece = source[from..(from + len).min(source.len())].to_vec();
                let i = at(i, bytes.len());
                bytes.splice(i..i, piece);
            }
            Edit::Repeat(i, len, times) => {
                let i = at(i, bytes.len());
                let piece = bytes[i..(i + len).min(bytes.len())].to_vec();
                let repeated = piece.repeat(times);
                bytes.splice(i..i, repeated);
            }
        }
    }
}

/// Text made of the grammar's own pieces, so the parser gets past its
/// first checks and into the interesting branches.
fn from_pieces(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(select(pieces), 0..max).prop_map(|parts| parts.concat())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shared_fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/github-webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}; the shared fixtures must sit beside the repository"))
}

// ---------------------------------------------------------------------------
// `_redirects` and `_headers`

const REDIRECTS_EXAMPLE: &str = concat!(
    include_str!("../../rules/testdata/netlify-examples._redirects"),
    "/fr/*  /fr/:splat  200!  Language=fr,fr-ca
/beta/* /beta/:splat 200 Cookie=beta,preview
/*     /index.html  200
"
);

const HEADERS_EXAMPLE: &str = "# Netlify's documented examples
/*
  X-Frame-Options: DENY
  X-XSS-Protection: 1; mode=block
/templates/index.html
  # headers for that page
  X-Frame-Options: DENY
  Link: </style.css>; rel=preload; as=style
/assets/*
  Cache-Control: public, max-age=31536000, immutable
/blog/:year/:slug
  X-Robots-Tag: noindex
https://site.localhost/*
  Basic-Auth: someuser:somepassword
";

const RULE_PIECES: &[&str] = &[
    "/",
    "/*",
    "*",
    ":splat",
    ":id",
    ":a",
    "/:x",
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    "!",
    "200",
    "301",
    "302",
    "404",
    "410",
    "999",
    "0",
    "200!",
    "id=:id",
    "a=b",
    "=",
    "Language=fr",
    "Cookie=x",
    "Country=us",
    "https://",
    "http://a.b/",
    "//",
    "..",
    "/..",
    "%2e%2e",
    "%",
    "%zz",
    "é",
    "\u{0}",
    "X-Header: v",
    "Basic-Auth: ",
    "user:pass",
    ": ",
    "Cache-Control",
    "::",
    "**",
    "/a/*/b",
    "?",
    "&",
];

/// Parses both files, compiles them, and matches a request against them:
/// the whole path an untrusted repository's rule files take in the edge.
fn check_rules(redirects: &str, headers: &str, request_path: &str) {
    let redirects = rules::parse_redirects_file(redirects);
    let headers = rules::parse_headers_file(headers);
    let (Ok(redirects), Ok(headers)) = (redirects, headers) else {
        return;
    };
    let Ok(compiled) = (RuleSet { redirects, headers }).compile() else {
        return;
    };
    let (path, query) = request_path
        .split_once('?')
        .map_or((request_path, None), |(p, q)| (p, Some(q)));
    let roles = ["editor".to_owned()];
    let request = Request {
        path,
        query,
        host: "site.localhost",
        accept_language: Some("fr-CA, en;q=0.5"),
        cookie: Some("beta=1"),
        country: Some("CA"),
        roles: &roles,
    };
    for exists in [false, true] {
        let _ = compiled.matching_redirect(&request, exists);
    }
    let _ = compiled.matching_header_rules(path);
    let sent = compiled.headers_for(path);
    assert!(
        sent.iter().all(|(name, _)| name.as_str() != rules::BASIC_AUTH),
        "Basic-Auth credentials are never sent as a header"
    );
    let _ = compiled.basic_auth_for(path);
}

proptest! {
    #[test]
    fn fuzz_redirects_file(
        redirects in prop_oneof![
            mutated(vec![REDIRECTS_EXAMPLE.as_bytes().to_vec()]).prop_map(|b| text(&b)),
            from_pieces(RULE_PIECES, 64),
            any::<String>(),
        ],
        request in prop_oneof![from_pieces(RULE_PIECES, 12), any::<String>()],
    ) {
        check_rules(&redirects, "", &format!("/{request}"));
    }

    #[test]
    fn fuzz_headers_file(
        headers in prop_oneof![
            mutated(vec![HEADERS_EXAMPLE.as_bytes().to_vec()]).prop_map(|b| text(&b)),
            from_pieces(RULE_PIECES, 64),
            any::<String>(),
        ],
        request in prop_oneof![from_pieces(RULE_PIECES, 12), any::<String>()],
    ) {
        check_rules("", &headers, &format!("/{request}"));
    }
}

// ---------------------------------------------------------------------------
// `jamstack.toml`

const JAMSTACK_TOML_EXAMPLE: &str = include_str!("../../jamstack.toml.example");

const TOML_PIECES: &[&str] = &[
    "[build]\n",
    "[context.production]\n",
    "[context.deploy-preview]\n",
    "[context.\"feature/x\"]\n",
    "[build.environment]\n",
    "[[redirects]]\n",
    "[[headers]]\n",
    "[headers.values]\n",
    "base = ",
    "publish = ",
    "command = ",
    "image = ",
    "ignore = ",
    "watch = ",
    "[\"sites/**\", \"shared/[a-\"]",
    "from = ",
    "to = ",
    "status = ",
    "force = ",
    "for = ",
    "\"..\"",
    "\"../..\"",
    "\"/etc\"",
    "\"a/../..\"",
    "\"a\\\\b\"",
    "\"\"",
    "\"public\"",
    "\"/*\"",
    "\"/:splat\"",
    "301",
    "true",
    "-1",
    "1e400",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "=",
    "'",
    "\"\"\"",
    "#",
    "conditions = { Language = [\"fr\"] }",
    "query = { id = \":id\" }",
    "X = \"y\"\n",
];

fn check_jamstack_toml(text: &str, branch: &str) {
    let Ok(config) = jamstack_runner::site_config::parse(text, "jamstack.toml") else {
        return;
    };
    for context in [
        BuildContext::Production,
        BuildContext::DeployPreview,
        BuildContext::BranchDeploy,
    ] {
        let settings = config.resolve(context, branch);
        for (what, path) in [("base", &settings.base), ("publish", &settings.publish)] {
            assert!(
                stays_inside(path),
                "{what} `{path}` leaves the checkout; from:\n{text}"
            );
        }
    }
    // The runner and the controller check rules with the same crate: what
    // the runner accepts, the controller publishes.
    let (redirects, headers) = config.wire_rules();
    let checked = rules::from_config(&redirects, &headers).and_then(|set| set.compile());
    assert!(
        checked.is_ok(),
        "the runner accepted rules the controller refuses ({:?}); from:\n{text}",
        checked.err()
    );
}

/// A relative path that cannot name anything outside its root.
fn stays_inside(path: &str) -> bool {
    !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|segment| segment != "..")
}

proptest! {
    #[test]
    fn fuzz_jamstack_toml(
        text in prop_oneof![
            mutated(vec![JAMSTACK_TOML_EXAMPLE.as_bytes().to_vec()]).prop_map(|b| text(&b)),
            from_pieces(TOML_PIECES, 48),
            any::<String>(),
            // Deep nesting, for a parser that recurses.
            (1usize..20_000, select(&["[", "{a=", "a={b=[", "[["][..]))
                .prop_map(|(depth, open)| format!("[build.environment]\nx = {}", open.repeat(depth))),
        ],
        branch in prop_oneof![Just("main".to_owned()), Just("feature/x".to_owned()), any::<String>()],
    ) {
        check_jamstack_toml(&text, &branch);
    }
}

// ---------------------------------------------------------------------------
// Webhook bodies

const FIXTURES: &[(&str, &str)] = &[
    ("push", "push.json"),
    ("push", "push.with-installation.json"),
    ("push", "push.with-new-branch.json"),
    ("pull_request", "pull_request.opened.json"),
    ("pull_request", "pull_request.synchronize.json"),
    ("pull_request", "pull_request.closed.json"),
    ("installation", "installation.created.json"),
    (
        "installation_repositories",
        "installation_repositories.added.json",
    ),
    ("ping", "ping.json"),
];

const EVENTS: &[&str] = &[
    "push",
    "pull_request",
    "installation",
    "installation_repositories",
    "ping",
    "issues",
    "",
];

/// Every place in a JSON document, as JSON pointers.
fn pointers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn odd_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(serde_json::Value::Null),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(1.5e300)),
        Just(json!("")),
        Just(json!("0000000000000000000000000000000000000000")),
        Just(json!("refs/heads/../../x")),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        any::<String>().prop_map(serde_json::Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

/// A real payload with a few of its values replaced by values of other
/// kinds and sizes, or removed: the shapes an attacker's or a buggy
/// sender's JSON takes.
fn mutated_payload() -> impl Strategy<Value = (String, Vec<u8>)> {
    let documents: Vec<(String, serde_json::Value, Vec<String>)> = FIXTURES
        .iter()
        .map(|(event, file)| {
            let value: serde_json::Value = serde_json::from_slice(&shared_fixture(file)).unwrap();
            let mut places = Vec::new();
            pointers(&value, String::new(), &mut places);
            (event.to_string(), value, places)
        })
        .collect();
    (
        select(documents),
        proptest::collection::vec((any::<usize>(), proptest::option::of(odd_json())), 1..6),
    )
        .prop_map(|((event, mut value, places), changes)| {
            for (place, replacement) in changes {
                let pointer = &places[place % places.len()];
                match replacement {
                    Some(new) => {
                        if let Some(slot) = value.pointer_mut(pointer) {
                            *slot = new;
                        }
                    }
                    None => {
                        if let Some((parent, key)) = pointer.rsplit_once('/')
                            && let Some(serde_json::Value::Object(map)) = value.pointer_mut(parent)
                        {
                            map.remove(&key.replace("~1", "/").replace("~0", "~"));
                        }
                    }
                }
            }
            (event, serde_json::to_vec(&value).unwrap())
        })
}

fn fixture_bytes() -> Vec<Vec<u8>> {
    FIXTURES.iter().map(|(_, file)| shared_fixture(file)).collect()
}

const GENERIC_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"ref\"",
    "\"after\"",
    "\"commit\"",
    "\"deleted\"",
    "\"message\"",
    "\"author\"",
    "\"refs/heads/main\"",
    "\"main\"",
    "\"refs/\"",
    "\"\"",
    "true",
    "null",
    "1",
    "\"0000000000000000000000000000000000000000\"",
    "\"ABCDEFabcdef0123456789abcdef0123456789ab\"",
    "\"é\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    " ",
];

proptest! {
    #[test]
    fn fuzz_github_webhook_bodies(
        (event, body) in prop_oneof![
            mutated_payload(),
            (select(EVENTS), mutated(fixture_bytes())).prop_map(|(e, b)| (e.to_owned(), b)),
            (select(EVENTS), proptest::collection::vec(any::<u8>(), 0..512))
                .prop_map(|(e, b)| (e.to_owned(), b)),
            (select(EVENTS), (1usize..4096).prop_map(|depth| "[".repeat(depth).into_bytes()))
                .prop_map(|(e, b)| (e.to_owned(), b)),
        ],
    ) {
        let _ = parse_event(&event, &body);
    }

    #[test]
    fn fuzz_generic_webhook_bodies(
        body in prop_oneof![
            mutated(vec![
                br#"{"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567", "message": "x [skip ci]", "author": "a"}"#.to_vec(),
                br#"{"ref": "main", "commit": "0000000000000000000000000000000000000000", "deleted": true}"#.to_vec(),
            ]),
            from_pieces(GENERIC_PIECES, 24).prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..256),
        ],
    ) {
        if let Ok(push) = read_generic_push(&body) {
            prop_assert!(push.git_ref.starts_with("refs/"), "{push:?}");
            prop_assert!(
                push.after.is_empty() || jamstack_proto::is_full_commit_sha(&push.after),
                "{push:?}"
            );
            prop_assert!(!push.deleted || push.after.is_empty(), "{push:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Request paths

const PATH_PIECES: &[&str] = &[
    "/",
    "//",
    ".",
    "..",
    "...",
    "a",
    "index.html",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "%00",
    "%",
    "%z",
    "%zz",
    "%c3%a9",
    "é",
    "%c0%ae",
    "%ff",
    "%e2%80%ae",
    "?",
    "#",
    ";",
    " ",
    "%20",
    "~",
    "%252e",
    ":",
    "\u{202e}",
];

proptest! {
    #[test]
    fn fuzz_request_paths(
        raw in prop_oneof![from_pieces(PATH_PIECES, 24), any::<String>()],
    ) {
        if let Some(decoded) = path::decode(&raw) {
            // Without its leading `/`, and no part of it can climb out of
            // the deploy.
            prop_assert!(stays_inside(&decoded), "{raw:?} decoded to {decoded:?}");
            prop_assert!(
                decoded.split('/').all(|segment| segment != "."),
                "{raw:?} decoded to {decoded:?}"
            );
            prop_assert!(!decoded.chars().any(char::is_control), "{raw:?} decoded to {decoded:?}");
            // A decoded path is a fixed point: decoding its encoding gives
            // it back, so nothing is decoded twice on the way to a file.
            prop_assert_eq!(path::decode(&path::encode(&decoded)), Some(decoded.clone()));
        }
    }
}

// ---------------------------------------------------------------------------
// Range headers

fn range_number(size: u64) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("0".to_owned()),
        Just(size.saturating_sub(1).to_string()),
        Just(size.to_string()),
        Just(size.saturating_add(1).to_string()),
        Just(u64::MAX.to_string()),
        Just((u64::MAX - 1).to_string()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just(" 7 ".to_owned()),
        Just("+3".to_owned()),
        any::<u64>().prop_map(|n| n.to_string()),
        (0..=size.saturating_add(2)).prop_map(|n| n.to_string()),
    ]
}

fn range_header(size: u64) -> impl Strategy<Value = String> {
    let one = move || (range_number(size), range_number(size)).prop_map(|(a, b)| format!("{a}-{b}"));
    prop_oneof![
        one().prop_map(|spec| format!("bytes={spec}")),
        (one(), one()).prop_map(|(x, y)| format!("bytes={x},{y}")),
        (
            select(&["bytes=", "bytes =", "Bytes=", "items=", " bytes= ", ""][..]),
            any::<String>()
        )
            .prop_map(|(unit, rest)| format!("{unit}{rest}")),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn fuzz_range_headers(
        (size, header) in prop_oneof![Just(0u64), 1u64..4096, any::<u64>()]
            .prop_flat_map(|size| (Just(size), range_header(size))),
    ) {
        match parse_range(&header, size) {
            RangeRequest::Part(range) => {
                prop_assert!(range.start < range.end, "{header:?} of {size} bytes gave {range:?}");
                prop_assert!(range.end <= size, "{header:?} of {size} bytes gave {range:?}");
            }
            RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
        }
    }
}

// ---------------------------------------------------------------------------
// Access to protected hostnames: the cookie and share-link values

proptest! {
    /// Only the exact value signed opens the hostname it was signed for: no
    /// edit of it (nor any other text) does, and reading never panics.
    #[test]
    fn fuzz_site_access_tokens(
        token in prop_oneof![
            mutated(vec![signed_access().into_bytes()]).prop_map(|b| text(&b)),
            any::<String>(),
        ],
    ) {
        let access = SiteAccess::new([7; 32]);
        let opens = access.verify_at(&token, &access_guard(), 0).is_some();
        prop_assert_eq!(opens, token == signed_access(), "{:?}", token);
    }
}

fn access_guard() -> Guard {
    Guard {
        site_id: 3,
        kind: ContextKind::Previews,
        generation: 1,
    }
}

fn signed_access() -> String {
    SiteAccess::new([7; 32]).sign(&access_guard(), 4_000_000_000)
}
