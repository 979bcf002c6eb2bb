//! No import cycle between the top-level modules of `src/` (`crate::engine`, `crate::lifecycle`,
//! `crate::pki`, ...): each module may use only modules below it, so a layer can be read,
//! tested and changed without the ones above.
//!
//! The graph is read from the source text: every `crate::a::...` path (in `use` lines and in
//! code, `use` groups included) and every `super::` chain that climbs out of a top-level module.
//! Comment lines do not count (a doc link is no import), nor do `#[cfg(test)]` modules: a unit
//! test may build its fixtures with a module above the one it tests, as an integration test
//! would. `cargo test --all-targets` (`.ci/run`) runs this file.
//!
//! The graph is printed (`cargo test --test module_graph -- --nocapture`), layer by layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root: `["engine", "rolling", "etcd_guard"]`.
type ModPath = Vec<String>;

/// For each module, the modules it refers to, each with the first place it does (`file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// A source file: its module path, and its lines outside comments and test modules.
struct Source {
    file: String,
    module: ModPath,
    /// (line number, text).
    lines: Vec<(usize, String)>,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `engine/rolling/etcd_guard.rs` -> `[engine, rolling, etcd_guard]`; `engine/mod.rs` ->
/// `[engine]`; `lib.rs` and `main.rs` -> `[]`.
fn module_of(rel: &Path) -> ModPath {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") || parts == ["lib"] || parts == ["main"] {
        parts.pop();
    }
    parts
}

/// The directory a file's child modules live in (`mod x;` in `a/b.rs` is `a/b/x.rs`).
fn child_dir(rel: &Path) -> PathBuf {
    let name = rel.file_name().unwrap().to_string_lossy();
    if name == "mod.rs" || name == "lib.rs" || name == "main.rs" {
        rel.parent().unwrap().to_path_buf()
    } else {
        rel.with_extension("")
    }
}

/// The lines of `text` that count: comment lines dropped, and `#[cfg(test)] mod x { ... }`
/// blocks (closed, as rustfmt writes them, by a `}` at the indentation they opened at). The
/// names of `#[cfg(test)] mod x;` files go to `test_children`.
fn code_lines(text: &str, test_children: &mut Vec<String>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut closing: Option<String> = None;
    let mut after_cfg_test = false;
    for (i, line) in text.lines().enumerate() {
        if let Some(end) = &closing {
            if line == end {
                closing = None;
            }
            continue;
        }
        let trimmed = line.trim_start();
        if after_cfg_test {
            let item = trimmed
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            if let Some(name) = item.strip_prefix("mod ") {
                if let Some(name) = name.strip_suffix(';') {
                    test_children.push(name.trim().to_string());
                } else {
                    let indent = &line[..line.len() - trimmed.len()];
                    closing = Some(format!("{indent}}}"));
                }
                after_cfg_test = false;
                continue;
            }
        }
        after_cfg_test = trimmed == "#[cfg(test)]";
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((i + 1, line.to_string()));
    }
    out
}

fn read_sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut test_only: Vec<PathBuf> = Vec::new();
    let mut sources = Vec::new();
    for path in files {
        let rel = path.strip_prefix(src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut children = Vec::new();
        let lines = code_lines(&text, &mut children);
        let dir = child_dir(&rel);
        for c in children {
            test_only.push(dir.join(format!("{c}.rs")));
            test_only.push(dir.join(&c));
        }
        sources.push(Source {
            file: format!("src/{}", rel.display()),
            module: module_of(&rel),
            lines,
        });
    }
    // The files of `#[cfg(test)] mod x;` declarations.
    sources.retain(|s| {
        let rel = Path::new(&s.file)
            .strip_prefix("src")
            .unwrap()
            .to_path_buf();
        !test_only.iter().any(|t| rel.starts_with(t))
    });
    sources
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a use tree or a path expression at the start of `s`: `a::b::C` -> `[[a, b, C]]`,
/// `a::{b::C, d}` -> `[[a, b, C], [a, d]]`. Stops at the first character that continues neither.
fn use_tree(s: &str) -> Vec<Vec<String>> {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut out = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.extend(use_tree(&group[start..i]));
                    return out;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.extend(use_tree(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.extend(use_tree(&group[start..]));
        return out;
    }
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    if end == 0 {
        return Vec::new();
    }
    let head = s[..end].to_string();
    match s[end..].strip_prefix("::") {
        Some(rest) => {
            let tails = use_tree(rest);
            if tails.is_empty() {
                vec![vec![head]]
            } else {
                tails
                    .into_iter()
                    .map(|t| std::iter::once(head.clone()).chain(t).collect())
                    .collect()
            }
        }
        None => vec![vec![head]],
    }
}

/// Every crate path a source refers to, absolute, with its line: `crate::x::y` and `super::`
/// chains resolved against the file's module. `use` groups may span lines.
fn references(source: &Source) -> Vec<(ModPath, usize)> {
    let text: String = source
        .lines
        .iter()
        .map(|(_, l)| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let line_at = |offset: usize| source.lines[text[..offset].matches('\n').count()].0;
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let Some(found) = rest
            .find("crate::")
            .into_iter()
            .chain(rest.find("super::"))
            .min()
        else {
            break;
        };
        let start = at + found;
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            at = start + 1;
            continue;
        }
        let (base, mut pos): (ModPath, usize) = if text[start..].starts_with("crate::") {
            (Vec::new(), start + "crate::".len())
        } else {
            let mut base = source.module.clone();
            let mut pos = start;
            while text[pos..].starts_with("super::") {
                if base.pop().is_none() {
                    break;
                }
                pos += "super::".len();
            }
            (base, pos)
        };
        for tail in use_tree(&text[pos..]) {
            let mut path = base.clone();
            path.extend(tail.into_iter().take_while(|s| s != "self"));
            out.push((path, line_at(start)));
        }
        pos = pos.max(start + 1);
        at = pos;
    }
    out
}

/// The graph between the modules directly below `parent` (`[]`: the top-level modules):
/// an edge `a -> b` when a file of `a` refers to a path in `b`.
fn graph(sources: &[Source], parent: &[&str]) -> Graph {
    let depth = parent.len();
    let below = |m: &ModPath| m.len() > depth && m.iter().zip(parent).all(|(a, b)| a == b);
    let nodes: BTreeSet<String> = sources
        .iter()
        .filter(|s| below(&s.module))
        .map(|s| s.module[depth].clone())
        .collect();
    let mut g: Graph = nodes.iter().map(|n| (n.clone(), BTreeMap::new())).collect();
    for s in sources.iter().filter(|s| below(&s.module)) {
        let from = &s.module[depth];
        for (path, line) in references(s) {
            if !below(&path) || !nodes.contains(&path[depth]) || path[depth] == *from {
                continue;
            }
            g.get_mut(from)
                .unwrap()
                .entry(path[depth].clone())
                .or_insert_with(|| format!("{}:{line}", s.file));
        }
    }
    g
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.g[v].keys() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(&w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().position(|x| *x == v).unwrap();
                let mut scc: Vec<String> = self
                    .stack
                    .split_off(at)
                    .into_iter()
                    .map(String::from)
                    .collect();
                if scc.len() > 1 {
                    scc.sort();
                    self.out.push(scc);
                }
            }
        }
    }
    let mut walk = Walk {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out.sort();
    walk.out
}

/// One shortest cycle through the first module of `scc`, each edge with where it is made.
fn one_cycle(g: &Graph, scc: &[String]) -> String {
    let start = &scc[0];
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.as_str()]);
    'search: while let Some(v) = queue.pop_front() {
        for w in g[v].keys().filter(|w| scc.contains(w)) {
            if w == start {
                came_from.insert(start, v);
                break 'search;
            }
            if !came_from.contains_key(w.as_str()) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = vec![start.as_str()];
    let mut v = came_from[start.as_str()];
    while v != start {
        path.push(v);
        v = came_from[v];
    }
    path.push(start);
    path.reverse();
    path.windows(2)
        .map(|e| format!("  {} -> {}   ({})", e[0], e[1], g[e[0]][e[1]]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules in layers: layer 0 uses no other module, layer n only modules of layers below.
/// Modules on a cycle get no layer.
fn layers(g: &Graph) -> Vec<Vec<String>> {
    let mut placed: BTreeMap<&str, usize> = BTreeMap::new();
    loop {
        let next: Vec<(&str, usize)> = g
            .iter()
            .filter(|(v, _)| !placed.contains_key(v.as_str()))
            .filter_map(|(v, out)| {
                let deps: Option<Vec<usize>> = out
                    .keys()
                    .map(|w| placed.get(w.as_str()).copied())
                    .collect();
                deps.map(|d| (v.as_str(), d.into_iter().max().map_or(0, |m| m + 1)))
            })
            .collect();
        if next.is_empty() {
            break;
        }
        placed.extend(next);
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for (v, l) in placed {
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(v.to_string());
    }
    out
}

fn describe(g: &Graph) -> String {
    let mut out = String::new();
    let line = |v: &String| {
        let deps: Vec<&str> = g[v].keys().map(String::as_str).collect();
        format!("  {v} -> {}\n", deps.join(", "))
    };
    let layered = layers(g);
    for (i, layer) in layered.iter().enumerate() {
        out.push_str(&format!("layer {i}:\n"));
        out.extend(layer.iter().map(line));
    }
    let on_cycles: Vec<&String> = g.keys().filter(|v| !layered.concat().contains(v)).collect();
    if !on_cycles.is_empty() {
        out.push_str("on a cycle, or above one:\n");
        out.extend(on_cycles.into_iter().map(line));
    }
    out
}

/// Every edge between members of `scc`, with where it is made.
fn edges_within(g: &Graph, scc: &[String]) -> String {
    let mut out = Vec::new();
    for a in scc {
        for (b, at) in g[a].iter().filter(|(b, _)| scc.contains(b)) {
            out.push(format!("    {a} -> {b}   ({at})"));
        }
    }
    out.join("\n")
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let sources = read_sources(&src());
    let g = graph(&sources, &[]);
    eprintln!(
        "top-level modules of src/ (each uses only modules of layers below it):\n{}",
        describe(&g)
    );
    let found = cycles(&g);
    let shown: Vec<String> = found
        .iter()
        .map(|scc| {
            format!(
                "{}; one cycle:\n{}\n  every edge among them:\n{}",
                scc.join(", "),
                one_cycle(&g, scc),
                edges_within(&g, scc)
            )
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between top-level modules (move what both sides need below both):\n{}",
        shown.join("\n")
    );
    // The scan sees the modules and their imports at all.
    assert!(g["engine"].contains_key("ssh"), "{g:?}");
    assert!(g.len() > 20, "{g:?}");
}

/// No import cycle among the engine's files either (issue 25: the phase modules used to import
/// the runner that calls them).
#[test]
fn the_engine_files_form_no_cycle() {
    let sources = read_sources(&src());
    let g = graph(&sources, &["engine"]);
    eprintln!("files of src/engine/:\n{}", describe(&g));
    // The runner calls the phase modules (etcd_join, rolling, waits, operator, ...); they read
    // what a run works with from run_context, never from the runner.
    if let Some(scc) = cycles(&g).first() {
        panic!(
            "the engine's files import each other in a circle ({}):\n{}",
            scc.join(", "),
            one_cycle(&g, scc)
        );
    }
}

fn parsed(module: &[&str], text: &str) -> Source {
    Source {
        file: "src/x.rs".into(),
        module: module.iter().map(|s| s.to_string()).collect(),
        lines: code_lines(text, &mut Vec::new()),
    }
}

#[test]
fn references_resolve_crate_paths_groups_and_super_chains() {
    let s = parsed(
        &["engine", "rolling", "guard"],
        "use crate::pki::{self, table::CertSpec};\n\
         use super::super::runner::{Engine,\n    RunError};\n\
         use super::Local;\n\
         // crate::ui is a comment\n\
         fn f() { crate::ssh::quote(x); kinit_crate::no(); }\n\
         #[cfg(test)]\n\
         mod tests {\n    use crate::render;\n}\n",
    );
    let refs: Vec<(String, usize)> = references(&s)
        .into_iter()
        .map(|(p, l)| (p.join("::"), l))
        .collect();
    assert_eq!(
        refs,
        [
            ("pki".to_string(), 1),
            ("pki::table::CertSpec".to_string(), 1),
            ("engine::runner::Engine".to_string(), 2),
            ("engine::runner::RunError".to_string(), 2),
            ("engine::rolling::Local".to_string(), 4),
            ("ssh::quote".to_string(), 6),
        ]
    );
    // A top-level file's `super::` is the crate root.
    let top = parsed(
        &["host_paths"],
        "const A: &str = super::engine::lock::DIR;\n",
    );
    assert_eq!(references(&top)[0].0, ["engine", "lock", "DIR"]);
}

#[test]
fn a_cycle_is_found_and_shown() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: Graph = Graph::new();
        for (a, b) in edges {
            g.entry(b.to_string()).or_default();
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), format!("src/{a}.rs:1"));
        }
        g
    };
    let acyclic = g(&[
        ("engine", "planning"),
        ("lifecycle", "engine"),
        ("lifecycle", "planning"),
    ]);
    assert!(cycles(&acyclic).is_empty());
    assert_eq!(
        layers(&acyclic),
        [vec!["planning"], vec!["engine"], vec!["lifecycle"]]
    );
    let cyclic = g(&[
        ("engine", "lifecycle"),
        ("lifecycle", "engine"),
        ("engine", "ssh"),
    ]);
    let found = cycles(&cyclic);
    assert_eq!(found, [vec!["engine", "lifecycle"]]);
    assert_eq!(
        one_cycle(&cyclic, &found[0]),
        "  engine -> lifecycle   (src/engine.rs:1)\n  lifecycle -> engine   (src/lifecycle.rs:1)"
    );
}
