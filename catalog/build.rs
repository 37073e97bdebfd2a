//! Embeds the catalog (taxonomy.toml and entries/**/*.toml) into the crate, and records the workspace's crate names
//! so that validation can reject an `implementation` naming a crate that does not exist.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace_root = manifest_dir
        .parent()
        .expect("catalog/ lives inside the workspace")
        .to_path_buf();

    let mut out = String::new();
    let taxonomy = manifest_dir.join("taxonomy.toml");
    println!("cargo:rerun-if-changed={}", taxonomy.display());
    writeln!(out, "pub(crate) const TAXONOMY: (&str, &str) = (\"catalog/taxonomy.toml\", include_str!({:?}));", taxonomy.display()).unwrap();

    let entries_dir = manifest_dir.join("entries");
    println!("cargo:rerun-if-changed={}", entries_dir.display());
    let mut files = Vec::new();
    collect_toml(&entries_dir, &mut files);
    files.sort();
    out.push_str("pub(crate) const ENTRIES: &[(&str, &str)] = &[\n");
    for file in &files {
        let rel = file
            .strip_prefix(&workspace_root)
            .expect("entry files live in the workspace");
        let rel = rel.to_string_lossy().replace('\\', "/");
        writeln!(out, "    ({rel:?}, include_str!({:?})),", file.display()).unwrap();
    }
    out.push_str("];\n");

    let root_manifest = workspace_root.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", root_manifest.display());
    let mut crates = workspace_crates(&workspace_root, &root_manifest);
    crates.sort();
    crates.dedup();
    writeln!(
        out,
        "/// The names of the crates in this workspace, read from its `Cargo.toml` at build time."
    )
    .unwrap();
    writeln!(out, "pub const WORKSPACE_CRATES: &[&str] = &{crates:?};").unwrap();

    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}

fn collect_toml(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(read) = fs::read_dir(dir) else { return };
    for item in read.flatten() {
        let path = item.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_toml(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
}

/// Package names of the root package and of every workspace member (`dir/*` globs are expanded).
fn workspace_crates(root: &Path, root_manifest: &Path) -> Vec<String> {
    let text = fs::read_to_string(root_manifest).expect("the workspace has a Cargo.toml");
    let doc: toml::Table = text.parse().expect("the workspace Cargo.toml parses");
    let mut names: Vec<String> = package_name(&doc).into_iter().collect();
    let members = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    for member in members.iter().filter_map(|m| m.as_str()) {
        let dirs: Vec<PathBuf> = match member.strip_suffix("/*") {
            Some(parent) => fs::read_dir(root.join(parent))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default(),
            None => vec![root.join(member)],
        };
        for dir in dirs {
            let manifest = dir.join("Cargo.toml");
            println!("cargo:rerun-if-changed={}", manifest.display());
            if let Some(name) = fs::read_to_string(&manifest)
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .and_then(|d| package_name(&d))
            {
                names.push(name);
            }
        }
    }
    names
}

fn package_name(doc: &toml::Table) -> Option<String> {
    doc.get("package")?.get("name")?.as_str().map(str::to_owned)
}
