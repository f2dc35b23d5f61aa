//! The crate's layers, checked on its source with `syn`: cli -> engine -> domain, adapters -> domain, and no
//! module on an import cycle. Every path that names a module of the crate counts as an import of it: `use`
//! trees (groups expanded) and paths in code, written from the crate root (`crate::…`), relative to the
//! module (`self::…`, `super::…`) or to a child module (`config::load` in `cli`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

type Module = Vec<String>;

/// What each layer may import, besides itself.
fn allowed(layer: &str) -> &'static [&'static str] {
    match layer {
        "domain" => &[],
        "adapters" => &["domain"],
        "engine" => &["domain"],
        "cli" => &["engine", "adapters", "domain"],
        _ => &["cli", "engine", "adapters", "domain"],
    }
}

fn sources(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// `src/engine/mission.rs` -> `engine::mission`, `src/engine/mod.rs` -> `engine`.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Collects the modules a file's paths name.
struct Imports<'a> {
    modules: &'a BTreeSet<Module>,
    /// The module being read (a file's, then its inline modules').
    current: Module,
    found: BTreeMap<Module, BTreeSet<Module>>,
}

impl Imports<'_> {
    /// The module `segments` names from `current`, longest known prefix; `None` for other crates' items.
    fn resolve(&self, segments: &[String]) -> Option<Module> {
        let (mut path, rest): (Module, &[String]) = match segments.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &segments[1..]),
            Some("self") => (self.current.clone(), &segments[1..]),
            Some("super") => {
                let mut path = self.current.clone();
                let mut rest = segments;
                while rest.first().map(String::as_str) == Some("super") {
                    path.pop();
                    rest = &rest[1..];
                }
                (path, rest)
            }
            Some(first) => {
                let mut child = self.current.clone();
                child.push(first.to_string());
                if !self.modules.contains(&child) {
                    return None;
                }
                (self.current.clone(), segments)
            }
            None => return None,
        };
        for segment in rest {
            let mut next = path.clone();
            next.push(segment.clone());
            if !self.modules.contains(&next) {
                break;
            }
            path = next;
        }
        (!path.is_empty()).then_some(path)
    }

    fn add(&mut self, segments: &[String]) {
        if let Some(target) = self.resolve(segments)
            && !self.current.starts_with(&target)
        {
            self.found
                .entry(self.current.clone())
                .or_default()
                .insert(target);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let mut full = prefix.clone();
                full.push(name.ident.to_string());
                self.add(&full);
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                full.push(rename.ident.to_string());
                self.add(&full);
            }
            syn::UseTree::Glob(_) => self.add(prefix),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Imports<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        if segments.len() > 1 {
            self.add(&segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.current.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.current.pop();
        }
    }
}

/// The import graph of the crate's modules.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut modules: BTreeSet<Module> = files.iter().map(|file| module_of(src, file)).collect();
    // Inline modules (`mod tests { … }`) are modules too.
    for file in &files {
        let syntax = syn::parse_file(&std::fs::read_to_string(file).unwrap()).unwrap();
        for item in &syntax.items {
            if let syn::Item::Mod(inline) = item
                && inline.content.is_some()
            {
                let mut module = module_of(src, file);
                module.push(inline.ident.to_string());
                modules.insert(module);
            }
        }
    }
    let mut imports = Imports {
        modules: &modules,
        current: Vec::new(),
        found: BTreeMap::new(),
    };
    for file in &files {
        let syntax = syn::parse_file(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
        imports.current = module_of(src, file);
        imports.found.entry(imports.current.clone()).or_default();
        imports.visit_file(&syntax);
    }
    imports.found
}

fn violations(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut violations = Vec::new();
    for (module, targets) in graph {
        let layer = module.first().map_or("", String::as_str);
        for target in targets {
            let target_layer = target[0].as_str();
            if target_layer != layer && !allowed(layer).contains(&target_layer) {
                violations.push(format!(
                    "{} imports {}",
                    module.join("::"),
                    target.join("::")
                ));
            }
        }
    }
    violations
}

/// Modules that can reach themselves.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let mut cycles = Vec::new();
    for module in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&Module> = graph[module].iter().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.clone())
                && let Some(targets) = graph.get(next)
            {
                stack.extend(targets);
            }
        }
        if seen.contains(module) {
            cycles.push(module.join("::"));
        }
    }
    cycles
}

#[test]
fn imports_point_down_only_and_no_module_is_on_a_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.len() > 25,
        "the crate's modules were found: {graph:#?}"
    );
    assert!(
        graph[&vec!["engine".to_string(), "mission".to_string()]]
            .contains(&vec!["domain".to_string(), "mission".to_string()]),
        "imports were found"
    );
    let violations = violations(&graph);
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules on an import cycle: {cycles:?}\n{graph:#?}"
    );
}

#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    for (file, text) in [
        ("lib.rs", "mod adapters; mod engine; mod domain;"),
        ("adapters/mod.rs", "pub mod opencode;"),
        (
            "adapters/opencode.rs",
            "use crate::engine::ports::{self, Agents};",
        ),
        ("engine/mod.rs", "pub mod ports; pub mod mission;"),
        ("engine/ports.rs", "fn f() { super::mission::g() }"),
        ("engine/mission.rs", "use crate::engine::ports;"),
        ("domain/mod.rs", ""),
    ] {
        let path = src.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let graph = graph(src);
    assert_eq!(
        violations(&graph),
        ["adapters::opencode imports engine::ports"]
    );
    assert_eq!(cycles(&graph), ["engine::mission", "engine::ports"]);
}
