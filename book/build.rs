//! Embeds the hand-written chapters (`chapters/*.md`) and labs (`labs/*.md`), sorted by file name, so that
//! `rice build` and `rice serve` make the book from any directory, offline.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut out = String::new();
    for (name, dir) in [("CHAPTERS", "chapters"), ("LABS", "labs")] {
        let dir = manifest_dir.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = markdown_files(&dir);
        files.sort();
        writeln!(out, "pub(crate) const {name}: &[(&str, &str)] = &[").unwrap();
        for file in &files {
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("book file names are UTF-8");
            println!("cargo:rerun-if-changed={}", file.display());
            writeln!(out, "    ({stem:?}, include_str!({:?})),", file.display()).unwrap();
        }
        out.push_str("];\n");
    }
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}

fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .map(|item| item.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md"))
        .collect()
}
