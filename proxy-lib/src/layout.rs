//! The crate's layout, checked by reading its sources.
//!
//! Its modules form layers: among the children of any module, none
//! depends on another that depends back on it (`crate::` and `super::`
//! paths are read, re-exports resolved to the child that defines the
//! item); a cycle fails naming the lines behind it. And no two types share
//! a name, so a name says which type it is wherever it is read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module of the crate, by path (`[]` is the crate root), with its
/// source, comments removed.
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut module: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module == ["lib"] {
                module.clear();
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            found.insert(module, strip_comments(&text));
        }
    }
    found
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths named from `crate` or `super` in `text`, use-trees expanded,
/// made absolute for a file of `module`.
fn paths(module: &[String], text: &str) -> Vec<Module> {
    let tokens = tokenize(text);
    let mut found = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let start = match tokens[i].as_str() {
            "crate" => Some(Vec::new()),
            "super" if i == 0 || tokens[i - 1] != "::" => {
                let mut base = module.to_vec();
                base.pop();
                Some(base)
            }
            _ => None,
        };
        match start {
            Some(base) if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                i = tree(&tokens, i + 2, base, &mut found);
            }
            _ => i += 1,
        }
    }
    found
}

/// Reads a path or use-tree from `tokens[i]` on, under `base`; returns
/// where it ended.
fn tree(tokens: &[String], mut i: usize, mut base: Module, out: &mut Vec<Module>) -> usize {
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                while tokens.get(i).is_some_and(|t| t != "}") {
                    if tokens[i] == "," {
                        i += 1;
                        continue;
                    }
                    i = tree(tokens, i, base.clone(), out);
                }
                return i + 1;
            }
            Some("super") => {
                base.pop();
            }
            Some("self") => {}
            Some(word) if is_ident(word) => base.push(word.to_owned()),
            _ => break,
        }
        i += 1;
        if tokens.get(i).is_some_and(|t| t == "::") {
            i += 1;
        } else {
            break;
        }
    }
    // `as name` after a path renames what was already named.
    out.push(base);
    i
}

fn is_ident(word: &str) -> bool {
    word.chars().all(|c| c.is_alphanumeric() || c == '_')
        && word.chars().next().is_some_and(|c| !c.is_ascii_digit())
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&next) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                word.push(next);
                chars.next();
            }
            tokens.push(word);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push("::".to_owned());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// Names a module re-exports from its children: `pub(crate) use child::X`.
fn reexports(modules: &BTreeMap<Module, String>) -> BTreeMap<(Module, String), String> {
    let mut found = BTreeMap::new();
    for (module, text) in modules {
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("pub") else {
                continue;
            };
            let Some((_, used)) = rest.split_once("use ") else {
                continue;
            };
            let used = used.trim_start_matches("self::");
            let Some((child, names)) = used.split_once("::") else {
                continue;
            };
            let mut path = module.clone();
            path.push(child.to_owned());
            if !modules.contains_key(&path) {
                continue;
            }
            let names = names.trim_end_matches(';').trim_matches(['{', '}']);
            for name in names.split(',') {
                let name = name.split(" as ").last().unwrap_or("").trim();
                if is_ident(name) && !name.is_empty() {
                    found.insert((module.clone(), name.to_owned()), child.to_owned());
                }
            }
        }
    }
    found
}

/// Among the children of each module: which depends on which, and the
/// references that make it so.
type Edges = BTreeMap<Module, BTreeMap<String, BTreeMap<String, BTreeSet<String>>>>;

fn edges(modules: &BTreeMap<Module, String>) -> Edges {
    let reexported = reexports(modules);
    let mut edges = Edges::new();
    for (module, text) in modules {
        for mut path in paths(module, text) {
            // `crate::a::X` where `a` re-exports `X` from its child `b`.
            let mut i = 0;
            while i < path.len() {
                let prefix = path[..i].to_vec();
                let mut deeper = prefix.clone();
                deeper.push(path[i].clone());
                if !modules.contains_key(&deeper)
                    && let Some(child) = reexported.get(&(prefix, path[i].clone()))
                {
                    path.insert(i, child.clone());
                }
                i += 1;
            }
            let common = module.iter().zip(&path).take_while(|(a, b)| a == b).count();
            if common >= module.len() || common >= path.len() {
                continue;
            }
            let target: Module = path[..=common].to_vec();
            if !modules.contains_key(&target) {
                continue;
            }
            edges
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .entry(path[common].clone())
                .or_default()
                .insert(format!("{} names {}", module.join("/"), path.join("::")));
        }
    }
    edges
}

/// A cycle among `graph`'s nodes, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_depends_on_a_sibling_that_depends_back_on_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let edges = edges(&modules);
    assert!(
        edges.get(&Vec::new()).is_some_and(|top| top.len() > 10),
        "the analysis sees the crate's dependencies: {edges:?}"
    );
    for (parent, graph) in &edges {
        if let Some(cycle) = cycle(graph) {
            let why: Vec<&String> = cycle
                .windows(2)
                .flat_map(|pair| &graph[&pair[0]][&pair[1]])
                .collect();
            panic!(
                "modules under `{}` form a cycle {}:\n{}",
                if parent.is_empty() {
                    "crate".to_owned()
                } else {
                    parent.join("::")
                },
                cycle.join(" -> "),
                why.iter()
                    .map(|w| format!("  {w}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// The types each file defines: structs, enums, traits, unions, and type
/// aliases at the top of a file (not the associated types of impls).
fn type_names(modules: &BTreeMap<Module, String>) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (module, text) in modules {
        for line in text.lines() {
            let indented = line.starts_with(char::is_whitespace);
            let mut words = line.split_whitespace().skip_while(|w| w.starts_with("pub"));
            let (Some(keyword), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let defines = match keyword {
                "struct" | "enum" | "trait" | "union" => true,
                "type" => !indented,
                _ => false,
            };
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if defines && name.starts_with(|c: char| c.is_ascii_uppercase()) {
                names.entry(name).or_default().push(module.join("/"));
            }
        }
    }
    names
}

#[test]
fn no_type_name_is_defined_twice() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let names = type_names(&modules(&src));
    assert!(
        names.len() > 100,
        "the analysis sees the crate's types: {names:?}"
    );
    let twice: Vec<String> = names
        .iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(name, places)| format!("{name} in {}", places.join(", ")))
        .collect();
    assert!(
        twice.is_empty(),
        "type names defined more than once: {twice:#?}"
    );
}

#[test]
fn a_cycle_is_found_and_explained() {
    let mut modules = BTreeMap::new();
    modules.insert(Vec::new(), "mod a;\nmod b;".to_owned());
    let module = |path: &str| path.split('/').map(str::to_owned).collect::<Module>();
    modules.insert(module("a"), "use crate::b::{self, Thing};".to_owned());
    modules.insert(module("b"), "pub(crate) use inner::Other;".to_owned());
    modules.insert(
        module("b/inner"),
        "fn f() { super::super::a::g(); }".to_owned(),
    );
    let first = edges(&modules);
    let top = &first[&Vec::new()];
    assert_eq!(cycle(top), Some(vec!["a".into(), "b".into(), "a".into()]));
    // A re-export points at the child that defines the item.
    modules.insert(module("a"), "use crate::b::Other;".to_owned());
    modules.insert(
        module("b"),
        "pub(crate) use inner::Other;\nmod c;".to_owned(),
    );
    modules.insert(module("b/c"), "use super::Other;".to_owned());
    let second = edges(&modules);
    assert!(
        second[&module("b")]["c"].contains_key("inner"),
        "{second:?}"
    );
}

#[test]
fn a_type_defined_twice_is_found() {
    let mut modules = BTreeMap::new();
    let a = "pub(crate) struct Head {\n}\nimpl Body for X {\n    type Data = Bytes;\n}";
    let b = "enum Head { A }\ntype Data = u8;\nmod tests {\n    struct Only;\n}";
    modules.insert(vec!["a".to_owned()], a.to_owned());
    modules.insert(vec!["b".to_owned()], b.to_owned());
    let names = type_names(&modules);
    assert_eq!(names["Head"], ["a", "b"]);
    assert_eq!(names["Data"], ["b"], "an associated type is no definition");
    assert_eq!(names["Only"], ["b"]);
}
