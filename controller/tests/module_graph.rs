//! The controller's top-level modules must not import each other in a
//! circle: a module in a cycle cannot be read, tested or moved without the
//! others, which is how one shared state came to tie fifteen files
//! together. This reads the sources as text (no compiler needed), collects
//! every `crate::<module>` reference per top-level module (a folder
//! module's submodules count as that module) and fails on any cycle,
//! naming each edge and the line it comes from.
//!
//! `STILL_IN_THE_CYCLE` lists the modules the cycle held when this test was
//! written and that are still to be taken out of it: the test fails when a
//! module joins the cycle, and when one leaves it without being struck from
//! the list, so the list only shrinks. Empty is the goal.

/// Modules still in the one cycle, sorted. Strike a module when it leaves.
const STILL_IN_THE_CYCLE: &[&str] = &[];

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// One `crate::<to>` reference found in a file of module `from`.
#[derive(Debug, Clone)]
struct Reference {
    file: PathBuf,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<Reference>>>;

#[test]
fn the_controllers_modules_import_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(
        graph.len() > 10,
        "found only {} modules under {}; is the reader still finding the sources?",
        graph.len(),
        src.display()
    );
    let cycles: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect();
    let in_cycles: usize = cycles.iter().map(Vec::len).sum();
    println!(
        "top-level modules: {}, in import cycles: {in_cycles}",
        graph.len()
    );
    let in_a_cycle: BTreeSet<&str> = cycles.iter().flatten().map(String::as_str).collect();
    let known: BTreeSet<&str> = STILL_IN_THE_CYCLE.iter().copied().collect();
    if cycles.len() <= 1 && in_a_cycle == known {
        return;
    }
    if cycles.len() <= 1 && in_a_cycle.is_subset(&known) {
        let gone: Vec<&str> = known.difference(&in_a_cycle).copied().collect();
        panic!(
            "{} left the import cycle: strike them from STILL_IN_THE_CYCLE in {}",
            gone.join(", "),
            file!()
        );
    }
    let mut report = format!(
        "{in_cycles} of the controller's {} top-level modules import each other in a cycle.\n",
        graph.len()
    );
    for component in &cycles {
        report.push_str(&format!(
            "\nThese {} modules reach each other: {}\n",
            component.len(),
            component.join(", ")
        ));
        let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
        report.push_str("One cycle among them, with a line making each edge:\n");
        for (from, to) in shortest_cycle(&graph, &component[0], &members)
            .windows(2)
            .map(|w| (&w[0], &w[1]))
        {
            let first = &graph[from][to][0];
            report.push_str(&format!(
                "  {from} -> {to}   ({}:{})\n",
                first.file.display(),
                first.line
            ));
        }
        report.push_str("Every edge inside the cycle (references per edge):\n");
        for from in component {
            for (to, references) in &graph[from] {
                if members.contains(to.as_str()) {
                    let places: Vec<String> = references
                        .iter()
                        .take(3)
                        .map(|r| format!("{}:{}", r.file.display(), r.line))
                        .collect();
                    report.push_str(&format!(
                        "  {from} -> {to} ({}): {}\n",
                        references.len(),
                        places.join(", ")
                    ));
                }
            }
        }
    }
    panic!("{report}");
}

/// The files that assemble the router; every other file takes the
/// services it uses (`State<Database>`, `&Queue`, ...), never the whole
/// router state, so what a handler or a domain function can touch is in
/// its signature.
const ROUTER_FILES: &[&str] = &[
    "src/state.rs",
    "src/startup.rs",
    "src/router.rs",
    "src/api/mod.rs",
    "src/api/openapi.rs",
];

#[test]
fn only_the_router_takes_the_whole_state() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect_rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut offenders = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if ROUTER_FILES.contains(&relative.as_str()) {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(&file).unwrap());
        for (index, line) in text.lines().enumerate() {
            if line.contains("AppState") || line.contains("ApiRouter") {
                offenders.push(format!("{relative}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "take the services the code uses instead of the router's state:\n{}",
        offenders.join("\n")
    );
}

/// Which top-level module a source file belongs to: `edge/cache.rs` and
/// `edge/mod.rs` are `edge`, `notifications/targets.rs` is
/// `notifications`, `state.rs` is `state`. `lib.rs` declares the modules
/// and `main.rs` is a crate of its own: neither is a module.
fn top_level_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = Vec::new();
    collect_rust_files(src, &mut files);
    files.sort();
    for file in files {
        let Some(from) = top_level_module(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        for (to, line) in crate_references(&strip_comments(&text)) {
            if to != from {
                edges.entry(to).or_default().push(Reference {
                    file: file.strip_prefix(src.parent().unwrap()).unwrap().to_owned(),
                    line,
                });
            }
        }
    }
    // A reference to something that is not a module (a re-export such as
    // `crate::Config`) is not an edge between modules.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for edges in graph.values_mut() {
        edges.retain(|to, _| modules.contains(to));
    }
    graph
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The text with `//` and `/* */` comments blanked (newlines kept, so line
/// numbers stay right): an intra-doc link such as ``[`crate::db`]`` names a
/// module without importing it. String literals are kept as they are.
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' && i + 1 < bytes.len() {
                out.push_str(&text[i..i + 2]);
                i += 2;
                continue;
            }
            in_string = c != b'"';
        } else if c == b'"' {
            in_string = true;
        } else if text[i..].starts_with("//") {
            let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
            i = end;
            continue;
        } else if text[i..].starts_with("/*") {
            let end = text[i..].find("*/").map_or(bytes.len(), |n| i + n + 2);
            out.extend(text[i..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
            i = end;
            continue;
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Every `crate::<name>` in the text with its line, including each name of
/// a group: `use crate::{db::Database, edge}` names `db` and `edge`.
fn crate_references(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find("crate::") {
        let at = from + offset;
        from = at + "crate::".len();
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let line = text[..at].matches('\n').count() + 1;
        let rest = text[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                found.push((name, line));
            }
        } else if let Some(name) = leading_identifier(rest) {
            found.push((name, line));
        }
    }
    found
}

/// The first path segment of each item of a `{ ... }` group (the text after
/// its opening brace), skipping nested groups' contents.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut item_start = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if c.is_whitespace() => {}
            _ if item_start && depth == 0 => {
                item_start = false;
                if let Some(name) = leading_identifier(&group[i..]) {
                    heads.push(name);
                }
            }
            _ => {}
        }
    }
    heads
}

fn leading_identifier(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Tarjan's strongly connected components, each sorted by name.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a str) {
        let next = walk.index.len();
        walk.index.insert(node, next);
        walk.low.insert(node, next);
        walk.stack.push(node);
        walk.on_stack.insert(node);
        for to in walk.graph[node].keys() {
            let to = to.as_str();
            if !walk.index.contains_key(to) {
                visit(walk, to);
                let low = walk.low[node].min(walk.low[to]);
                walk.low.insert(node, low);
            } else if walk.on_stack.contains(to) {
                let low = walk.low[node].min(walk.index[to]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = Vec::new();
            loop {
                let member = walk.stack.pop().unwrap();
                walk.on_stack.remove(member);
                component.push(member.to_owned());
                if member == node {
                    break;
                }
            }
            component.sort();
            walk.components.push(component);
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.components
}

/// The shortest path from `start` back to itself through `members`, as
/// `[start, ..., start]`.
fn shortest_cycle(graph: &Graph, start: &str, members: &BTreeSet<&str>) -> Vec<String> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for to in graph[node].keys().map(String::as_str) {
            if !members.contains(to) {
                continue;
            }
            if to == start {
                let mut path = vec![start.to_owned(), node.to_owned()];
                let mut at = node;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return path;
            }
            if to != start && !came_from.contains_key(to) {
                came_from.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    vec![start.to_owned()]
}

#[test]
fn the_reader_finds_grouped_and_plain_references_and_ignores_comments() {
    let text = "use crate::{db::Database, edge};\n\
                // crate::state is only mentioned here\n\
                /// [`crate::builds`]\n\
                fn f() { crate::metrics::record(); $crate::x; jamstack_crate::y; }\n";
    let names: Vec<(String, usize)> = crate_references(&strip_comments(text));
    assert_eq!(
        names,
        vec![
            ("db".to_owned(), 1),
            ("edge".to_owned(), 1),
            ("metrics".to_owned(), 4)
        ]
    );
}

#[test]
fn a_cycle_is_found_and_a_chain_is_not() {
    let reference = || {
        vec![Reference {
            file: PathBuf::from("x.rs"),
            line: 1,
        }]
    };
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned(), reference());
        graph.entry(to.to_owned()).or_default();
    }
    let cycles: Vec<Vec<String>> = strongly_connected(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert_eq!(cycles, vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    let members = BTreeSet::from(["a", "b", "c"]);
    assert_eq!(shortest_cycle(&graph, "a", &members), ["a", "b", "c", "a"]);
}
