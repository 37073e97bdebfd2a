//! The fuzz targets' bodies (`fuzz/src/targets.rs`) on stable Rust, over every seed of `fuzz/corpus/<target>/` and
//! every input that once crashed a target (`fuzz/regressions/<target>/`): a crash `scripts/fuzz` found stays fixed.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/targets.rs"]
mod targets;

/// A target's body: it panics on an input that breaks a rule.
type Body = fn(&[u8]);

/// Every fuzz target, by the name of its file in `fuzz/fuzz_targets/`.
const TARGETS: &[(&str, Body)] = &[
    ("catalog_entry", targets::catalog_entry),
    ("catalog_taxonomy", targets::catalog_taxonomy),
    ("search_query", targets::search_query),
    ("split_sentences", targets::split_sentences),
    ("oracle", targets::oracle),
    ("jsonl_readers", targets::jsonl_readers),
    ("openai_request", targets::openai_request),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted; none if it does not exist (a target without regressions has no folder).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(items) => items
            .map(|item| item.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs `target`'s body on every seed and regression input of `target`, naming the input that panics.
fn run(target: &str) {
    let body = TARGETS.iter().find(|(name, _)| *name == target).unwrap().1;
    run_with(target, body);
}

fn run_with(target: &str, body: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let seeds = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        seeds.len() >= 5,
        "fuzz/corpus/{target} holds {} seeds",
        seeds.len()
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    for path in seeds.iter().chain(&regressions) {
        let data = fs::read(path).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("{} crashes the {target} target", path.display());
        }
    }
}

#[test]
fn a_crash_names_the_input_that_caused_it() {
    let caught = std::panic::catch_unwind(|| {
        run_with("split_sentences", |data| {
            assert!(!data.starts_with(b"It rains."), "planted crash")
        })
    });
    let message = *caught.unwrap_err().downcast::<String>().unwrap();
    assert!(
        message.ends_with("seed-plain crashes the split_sentences target"),
        "{message}"
    );
}

#[test]
fn every_fuzz_target_is_run_here() {
    let mut on_disk: Vec<String> = inputs(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    here.sort();
    assert_eq!(on_disk, here);
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} is not a [[bin]] of fuzz/Cargo.toml"
        );
    }
}

#[test]
fn catalog_entry() {
    run("catalog_entry");
}

#[test]
fn catalog_taxonomy() {
    run("catalog_taxonomy");
}

#[test]
fn search_query() {
    run("search_query");
}

#[test]
fn split_sentences() {
    run("split_sentences");
}

#[test]
fn oracle() {
    run("oracle");
}

#[test]
fn jsonl_readers() {
    run("jsonl_readers");
}

#[test]
fn openai_request() {
    run("openai_request");
}
