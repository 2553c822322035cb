//! The layers of `shared` import one way (docs/ARCHITECTURE.md): contract ← telemetry ← vendors ←
//! store ← runtime. This test reads every `crate::…` path in `src/` and fails on one that points
//! against that order, so a wrong import is caught before review.

use std::path::{Path, PathBuf};

/// The layers in order: a file of a layer may name only the layers before it, and its own.
const LAYERS: [&str; 5] = ["contract", "telemetry", "vendors", "store", "runtime"];

/// The layer a source file belongs to: its first folder under `src/`, or its file stem.
fn layer_of(file: &Path, src: &Path) -> Option<&'static str> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    LAYERS.iter().copied().find(|l| *l == name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every layer named after `crate::` in `text`, with the line it is on.
fn named_layers(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(layer) = LAYERS.iter().copied().find(|l| *l == name) {
                found.push((n + 1, layer));
            }
        }
        // A grouped import such as `use crate::{store, runtime};` names several at once.
        if let Some(at) = code.find("crate::{") {
            for part in code[at + "crate::{".len()..].split([',', '}', ' ']) {
                let name = part.split("::").next().unwrap_or_default().trim();
                if let Some(layer) = LAYERS.iter().copied().find(|l| *l == name) {
                    found.push((n + 1, layer));
                }
            }
        }
    }
    found
}

/// Every import in `src` that points against the order, as `file:line: layer imports layer`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let rank = |l: &str| LAYERS.iter().position(|x| *x == l).expect("a known layer");
    let mut wrong = Vec::new();
    for file in files {
        let Some(layer) = layer_of(&file, src) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (line, named) in named_layers(&text) {
            if rank(named) > rank(layer) {
                wrong.push(format!(
                    "{}:{line}: {layer} imports {named}",
                    file.strip_prefix(src).unwrap().display()
                ));
            }
        }
    }
    wrong
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let wrong = violations(&src);
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_a_wrong_import() {
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in [
        ("contract/mod.rs", "use crate::runtime::Handler;\n"),
        ("vendors/x.rs", "fn f() { crate::store::write(); }\n"),
        ("store/y.rs", "use crate::{contract, runtime};\n"),
        (
            "runtime/z.rs",
            "use crate::store::Store; // crate::nothing\n",
        ),
        (
            "telemetry.rs",
            "// crate::runtime is named only in a comment\n",
        ),
    ] {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let wrong = violations(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        wrong,
        [
            "contract/mod.rs:1: contract imports runtime",
            "store/y.rs:1: store imports runtime",
            "vendors/x.rs:1: vendors imports store",
        ]
    );
}
