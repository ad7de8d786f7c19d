//! The layers of docs/DESIGN.md hold in the code: every top-level module
//! imports only what the design's table says it may (read from the table
//! itself, so the document and the code cannot drift apart), every module
//! is in the table, only the command files take the command plumbing, and
//! inside `server` no dispatch imports another and `conn` and `io` import
//! no dispatch. An import here is a `crate::NAME` path outside a comment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Rust files of a module: `src/NAME.rs`, or everything under
/// `src/NAME/`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn module_files(name: &str) -> Vec<PathBuf> {
    let dir = root().join("src").join(name);
    match dir.is_dir() {
        true => files(&dir),
        false => vec![root().join("src").join(format!("{name}.rs"))],
    }
}

/// The `crate::NAME` paths of a file, comment lines left out.
fn imports(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

/// The table "module | owns | imports" of docs/DESIGN.md: module → what it
/// may import (`None`: anything, "every command").
fn design_table() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let design = std::fs::read_to_string(root().join("docs/DESIGN.md")).unwrap();
    let start = design
        .find("| module | owns | imports (of the crate) |")
        .expect("the layers table in docs/DESIGN.md");
    let ticked = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    design[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let module = ticked(cells[1]).into_iter().next().expect("a module");
            let allowed = match cells[3] {
                "every command" => None,
                "nothing" => Some(BTreeSet::new()),
                cell => Some(ticked(cell)),
            };
            (module, allowed)
        })
        .collect()
}

/// The modules `lib.rs` declares.
fn declared() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("src/lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

#[test]
fn every_module_imports_only_what_the_design_allows() {
    let table = design_table();
    assert_eq!(
        table.keys().cloned().collect::<BTreeSet<_>>(),
        declared(),
        "the modules of lib.rs and the rows of DESIGN.md's table"
    );
    let mut broken = Vec::new();
    for (module, allowed) in &table {
        let Some(allowed) = allowed else { continue };
        for file in module_files(module) {
            for name in imports(&file) {
                if name != *module && !allowed.contains(&name) {
                    broken.push(format!("{}: crate::{name}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports DESIGN.md does not allow:\n{}",
        broken.join("\n")
    );
}

#[test]
fn only_the_commands_take_the_command_plumbing() {
    let commands = [
        "app.rs",
        "serve.rs",
        "certs.rs",
        "compare.rs",
        "analyze/command.rs",
        "load/command.rs",
        "bench/command.rs",
        "bench/report.rs",
        "bench/ab.rs",
        "bench/diff.rs",
        "bench/server_host.rs",
        "trace/command.rs",
    ];
    let src = root().join("src");
    let takers: Vec<String> = files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("cli")))
        .filter(|f| imports(f).contains("cli"))
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    for taker in &takers {
        assert!(
            commands.contains(&taker.as_str()),
            "{taker} takes crate::cli: the library does not"
        );
    }
    assert!(takers.len() >= 7, "{takers:?}");
}

#[test]
fn a_dispatch_imports_no_other_and_below_it_none_imports_a_dispatch() {
    let server = root().join("src/server");
    let dispatches = ["blocking", "tokio", "poll"];
    for file in files(&server.join("dispatch")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let own = dispatches
            .iter()
            .find(|d| file.to_string_lossy().contains(&format!("dispatch/{d}")));
        for other in dispatches.iter().filter(|d| Some(*d) != own) {
            if own.is_some() {
                assert!(
                    !text.contains(&format!("dispatch::{other}")),
                    "{} imports dispatch::{other}",
                    file.display()
                );
            }
        }
    }
    for file in files(&server.join("conn"))
        .into_iter()
        .chain([server.join("io.rs")])
    {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("dispatch::"),
            "{} reaches up into a dispatch",
            file.display()
        );
    }
    assert!(
        imports(&server.join("io.rs")).is_empty(),
        "server/io.rs imports nothing of the crate"
    );
}

/// Inside every folder of `src`, the files (and subfolders) other than
/// `mod.rs`, the folder's face, import one another without a circle: the
/// arrows `super::NAME` and `crate::…::FOLDER::NAME` between siblings form
/// no cycle. (A circle between two files of one folder once slipped past
/// the module-level check: `poll/offload.rs` and `poll/reactors.rs`.)
#[test]
fn no_two_files_of_a_folder_import_each_other_in_a_circle() {
    let src = root().join("src");
    let mut folders = vec![src.clone()];
    let mut circles = Vec::new();
    while let Some(dir) = folders.pop() {
        // Siblings: `name.rs` files and `name/` folders, not `mod.rs`.
        let mut siblings: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                folders.push(path.clone());
                siblings.insert(name, files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") && name != "mod" {
                siblings.insert(name, vec![path]);
            }
        }
        let folder = dir
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('/', "::");
        let full = |name: &str| match folder.is_empty() {
            true => format!("crate::{name}"),
            false => format!("crate::{folder}::{name}"),
        };
        let arrows: BTreeMap<&String, BTreeSet<&String>> = siblings
            .iter()
            .map(|(name, paths)| {
                let text: String = paths
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap())
                    .collect();
                let code: String = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let to = siblings
                    .keys()
                    .filter(|other| *other != name)
                    .filter(|other| {
                        let by_path = |prefix: String| {
                            code.match_indices(&prefix).any(|(i, _)| {
                                !code[i + prefix.len()..]
                                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                            })
                        };
                        // A single file's `super::` is its folder; a
                        // subfolder's own files reach siblings by `super::super::`.
                        let up = match paths.len() == 1 && paths[0].file_name().unwrap() != "mod.rs"
                        {
                            true => format!("super::{other}"),
                            false => format!("super::super::{other}"),
                        };
                        by_path(up) || by_path(full(other))
                    })
                    .collect();
                (name, to)
            })
            .collect();
        // A depth-first walk: a grey node met again closes a circle.
        fn walk<'a>(
            node: &'a String,
            arrows: &BTreeMap<&'a String, BTreeSet<&'a String>>,
            path: &mut Vec<&'a String>,
            done: &mut BTreeSet<&'a String>,
            circles: &mut Vec<String>,
        ) {
            if let Some(i) = path.iter().position(|n| *n == node) {
                let names: Vec<&str> = path[i..].iter().map(|n| n.as_str()).collect();
                circles.push(format!("{} -> {node}", names.join(" -> ")));
                return;
            }
            if !done.insert(node) {
                return;
            }
            path.push(node);
            for next in &arrows[node] {
                walk(next, arrows, path, done, circles);
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        let mut found = Vec::new();
        for node in arrows.keys() {
            walk(node, &arrows, &mut Vec::new(), &mut done, &mut found);
        }
        circles.extend(found.into_iter().map(|c| format!("src/{folder}: {c}")));
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}
