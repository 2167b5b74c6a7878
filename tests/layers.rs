//! The layer rule of `src/lib.rs`, kept true: every `crate::` path in a module of the library
//! names a module of a lower layer. A circle or an upward import fails here with the file and
//! line that made it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Module -> layer number (1 is the top), from the numbered list in `src/lib.rs`.
fn layers(lib_rs: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in lib_rs.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((n, names)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        let names = names.split(':').next().unwrap_or_default();
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            if !name.is_empty() {
                out.insert(name.to_string(), n);
            }
        }
    }
    out
}

/// The top-level modules `src/lib.rs` declares.
fn declared(lib_rs: &str) -> Vec<String> {
    lib_rs
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// `crate::NAME` paths in code (comments left out), with their 1-based line.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            // `hotspot_edge_crate::` or `$crate::` are not ours.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let name = item.trim().split("::").next().unwrap_or_default();
                    if !name.is_empty() {
                        out.push((i + 1, name.to_string()));
                    }
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
        }
    }
    out
}

/// Every upward or sideways import among `files` (path relative to `src`, text).
fn violations(layers: &BTreeMap<String, usize>, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let first = path
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        let Some(&own) = layers.get(&module) else {
            out.push(format!(
                "src/{}: module `{module}` is in no layer of src/lib.rs",
                path.display()
            ));
            continue;
        };
        for (line, name) in crate_paths(text) {
            if name == module {
                continue;
            }
            match layers.get(&name) {
                Some(&l) if l > own => {}
                Some(&l) => out.push(format!(
                    "src/{}:{line}: `{module}` (layer {own}) imports `{name}` (layer {l}): imports point down only",
                    path.display()
                )),
                None => out.push(format!(
                    "src/{}:{line}: `{module}` imports `{name}`, which is in no layer of src/lib.rs",
                    path.display()
                )),
            }
        }
    }
    out
}

fn library_files(src: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // Binaries are other crates: they may use any module.
                if p != src.join("bin") {
                    walk(&p, src, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().to_path_buf();
                if rel != Path::new("lib.rs") && rel != Path::new("main.rs") {
                    out.push((rel, std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out.sort();
    out
}

#[test]
fn imports_point_down_the_layers_of_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let layers = layers(&lib);
    assert!(
        layers.len() >= 10,
        "the layer list in src/lib.rs was not found: {layers:?}"
    );
    for m in declared(&lib) {
        assert!(
            layers.contains_key(&m),
            "src/lib.rs declares `mod {m}` but puts it in no layer"
        );
    }
    let files = library_files(&src);
    assert!(files.len() > 40, "found only {} files", files.len());
    let bad = violations(&layers, &files);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import_a_circle_and_a_module_left_out() {
    let layers = layers("//! 1. `top`: edge\n//! 2. `mid`, `side`: adapters\n//! 3. `low`\n");
    let files = vec![
        (
            PathBuf::from("low.rs"),
            "use crate::mid::X; // crate::top in a comment\n".to_string(),
        ),
        (
            PathBuf::from("mid/mod.rs"),
            "fn f() { crate::low::g(); }\nuse crate::{side, low};\n".to_string(),
        ),
        (
            PathBuf::from("top.rs"),
            "use crate::mid;\nuse crate::low;\n".to_string(),
        ),
        (PathBuf::from("stray.rs"), String::new()),
    ];
    let bad = violations(&layers, &files);
    assert_eq!(
        bad,
        [
            "src/low.rs:1: `low` (layer 3) imports `mid` (layer 2): imports point down only",
            "src/mid/mod.rs:2: `mid` (layer 2) imports `side` (layer 2): imports point down only",
            "src/stray.rs: module `stray` is in no layer of src/lib.rs",
        ],
    );
}
