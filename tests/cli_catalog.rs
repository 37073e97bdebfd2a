//! End-to-end tests of `rice catalog …`: the real binary, its exit codes, its output and its files.

use std::path::{Path, PathBuf};
use std::process::Command;

use rice_catalog::Catalog;

mod common;
use common::{rice, stderr, stdout};

fn embedded() -> Catalog {
    Catalog::embedded().expect("the built-in catalog is valid")
}

#[test]
fn check_passes_and_prints_the_entry_count() {
    let o = rice(&["catalog", "check"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = embedded().entries.len();
    assert!(
        stdout(&o).starts_with(&format!("catalog ok: {n} entries")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn check_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_rice"))
        .args(["catalog", "check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Copies the source catalog (taxonomy.toml and entries/) into a fresh directory.
fn copy_catalog() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for item in std::fs::read_dir(from).unwrap() {
            let path = item.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog");
    std::fs::copy(
        source.join("taxonomy.toml"),
        dir.path().join("taxonomy.toml"),
    )
    .unwrap();
    copy(&source.join("entries"), &dir.path().join("entries"));
    dir
}

/// Replaces the first `from` in `file` with `to` and returns `file:line:column` of where `to` starts, plus the
/// column offset `shift` (to point inside the replacement, e.g. at a value after `key = "`).
fn plant(file: &Path, from: &str, to: &str, shift: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{} does not contain {from:?}", file.display()));
    let planted = text.replacen(from, to, 1);
    std::fs::write(file, &planted).unwrap();
    let line = planted[..at].matches('\n').count() + 1;
    let column = planted[..at].rsplit('\n').next().unwrap().chars().count() + 1 + shift;
    format!("{}:{line}:{column}", file.display())
}

fn entry_file(dir: &Path, id: &str) -> PathBuf {
    let e = embedded();
    let source = &e
        .entry(id)
        .unwrap_or_else(|| panic!("no entry {id}"))
        .source;
    dir.join(source.strip_prefix("catalog/").unwrap())
}

#[test]
fn check_reports_five_planted_errors_in_five_files_with_positions() {
    let dir = copy_catalog();
    let d = dir.path();
    let kind = std::fs::read_to_string(entry_file(d, "dpo")).unwrap();
    let kind_line = kind
        .lines()
        .find(|l| l.starts_with("kind = "))
        .unwrap()
        .to_owned();
    let ppo = std::fs::read_to_string(entry_file(d, "ppo")).unwrap();
    let arxiv_line = ppo
        .lines()
        .find(|l| l.starts_with("arxiv = "))
        .unwrap()
        .to_owned();
    let sft = std::fs::read_to_string(entry_file(d, "sft")).unwrap();
    let related_line = sft
        .lines()
        .find(|l| l.starts_with("related = ["))
        .unwrap()
        .to_owned();

    let expected = [
        (
            plant(&entry_file(d, "dpo"), &kind_line, "kind = \"algorithm\"", 7),
            "unknown kind `algorithm`",
        ),
        (
            plant(
                &entry_file(d, "rlhf"),
                "place = \"",
                "place = \"forward/nowhere/",
                8,
            ),
            "unknown place `forward/nowhere/",
        ),
        (
            plant(
                &entry_file(d, "aligner"),
                "id = \"aligner\"",
                "sumary = \"typo\"\nid = \"aligner\"",
                0,
            ),
            "unknown field `sumary`",
        ),
        (
            plant(
                &entry_file(d, "ppo"),
                &arxiv_line,
                "arxiv = \"arXiv:1707.06347\"",
                8,
            ),
            "malformed arXiv id `arXiv:1707.06347`",
        ),
        (
            plant(
                &entry_file(d, "sft"),
                &related_line,
                "related = [\"no-such-entry\", \"rlhf\"]",
                11,
            ),
            "related id `no-such-entry` does not exist",
        ),
    ];

    let o = rice(&["catalog", "check", "--catalog", d.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (location, message) in &expected {
        assert!(
            err.contains(&format!("{location}: error: {message}")),
            "missing `{location}: error: {message}` in:\n{err}"
        );
    }
    assert!(err.contains("5 problems in 5 files"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn check_names_a_directory_that_is_not_a_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let o = rice(&[
        "--catalog",
        dir.path().to_str().unwrap(),
        "catalog",
        "check",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a catalog directory"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("taxonomy.toml"), "{}", stderr(&o));
}

#[test]
fn check_reports_a_file_that_is_not_utf8() {
    let dir = copy_catalog();
    std::fs::write(
        dir.path().join("entries/forward/broken.toml"),
        b"id = \"broken\"\nname = \"\xff\xfe\"\n",
    )
    .unwrap();
    let o = rice(&[
        "catalog",
        "check",
        "--catalog",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("broken.toml:2:9: error: the file is not valid UTF-8"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_filters_combine() {
    let o = rice(&["catalog", "list", "--kind", "method"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| !l.contains(" of "))
        .collect();
    let methods = embedded()
        .entries
        .iter()
        .filter(|e| e.kind == rice_catalog::Kind::Method)
        .count();
    assert_eq!(rows.len(), methods);
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().nth(1) == Some("method")),
        "{out}"
    );

    let o = rice(&[
        "catalog",
        "list",
        "--rice",
        "interpretability",
        "--place",
        "backward/assurance",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let entries: Vec<rice_catalog::Entry> =
        serde_json::from_str(&stdout(&o)).expect("list --json is a JSON array of entries");
    assert!(!entries.is_empty());
    for e in &entries {
        assert!(e.place.starts_with("backward/assurance"), "{}", e.id);
        assert!(
            e.rice.contains(rice_catalog::Principle::Interpretability),
            "{}",
            e.id
        );
    }
}

#[test]
fn list_rejects_unknown_filters() {
    let o = rice(&[
        "catalog",
        "list",
        "--place",
        "forward/learning-from-feedbak",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("did you mean `forward/learning-from-feedback`?"),
        "{}",
        stderr(&o)
    );

    let o = rice(&["catalog", "list", "--rice", "honesty"]);
    assert_eq!(o.status.code(), Some(2), "usage errors exit 2");
    assert!(stderr(&o).contains("robustness"), "{}", stderr(&o));
}

#[test]
fn show_prints_an_entry() {
    let o = rice(&["catalog", "show", "dpo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let dpo = embedded().entry("dpo").cloned().unwrap();
    assert!(out.starts_with(&dpo.name), "{out}");
    assert!(
        out.contains("Papers") && out.contains("arXiv:2305.18290"),
        "{out}"
    );
    assert!(out.contains("Related"));
    assert!(out.contains(&format!("Source: {}", dpo.source)));
}

#[test]
fn show_unknown_id_fails_with_a_suggestion() {
    let o = rice(&["catalog", "show", "dpoo"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no entry with id `dpoo`; did you mean `dpo`?"),
        "{}",
        stderr(&o)
    );

    let o = rice(&["catalog", "show", "PPO"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`ppo` has the alias PPO"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_export_round_trips_into_the_same_catalog() {
    let o = rice(&["catalog", "export", "--format", "json"]);
    assert!(o.status.success());
    let back: Catalog =
        serde_json::from_str(&stdout(&o)).expect("the JSON export parses as a catalog");
    assert_eq!(back, embedded());
}

#[test]
fn bibtex_export_parses_with_a_real_bibtex_parser() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog.bib");
    let o = rice(&[
        "catalog",
        "export",
        "--format",
        "bibtex",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    let bibliography = biblatex::Bibliography::parse(&text).expect("the BibTeX export parses");
    let catalog = embedded();
    assert_eq!(
        bibliography.len(),
        catalog.papers().len(),
        "one record per distinct paper"
    );
    let mut keys = std::collections::HashSet::new();
    for entry in bibliography.iter() {
        assert!(
            keys.insert(entry.key.clone()),
            "duplicate key {}",
            entry.key
        );
        assert!(entry.title().is_ok(), "{} has no title", entry.key);
        assert!(
            entry.author().is_ok_and(|a| !a.is_empty()),
            "{} has no author",
            entry.key
        );
        assert!(entry.get("year").is_some(), "{} has no year", entry.key);
    }
    // Stable keys: a second export is byte-identical.
    assert_eq!(
        stdout(&rice(&["catalog", "export", "--format", "bibtex"])),
        text
    );
    let dpo = bibliography
        .get("rafailov2023direct")
        .expect("the DPO paper has the key rafailov2023direct");
    assert_eq!(
        dpo.get("eprint")
            .map(biblatex::ChunksExt::format_verbatim)
            .as_deref(),
        Some("2305.18290")
    );
}

#[test]
fn csv_export_has_one_row_per_entry() {
    let o = rice(&["catalog", "export", "--format", "csv"]);
    assert!(o.status.success());
    let mut reader = csv::Reader::from_reader(o.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let catalog = embedded();
    assert_eq!(rows.len(), catalog.entries.len());
    for (row, entry) in rows.iter().zip(&catalog.entries) {
        assert_eq!(&row[0], entry.id);
        assert_eq!(&row[12], entry.summary);
    }
}

#[test]
fn export_to_an_unwritable_path_fails_cleanly() {
    let o = rice(&[
        "catalog",
        "export",
        "--format",
        "json",
        "--out",
        "/nonexistent-dir/catalog.json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot write /nonexistent-dir/catalog.json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn stats_counts_and_covers_the_survey() {
    let o = rice(&["catalog", "stats", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        stats["entries"].as_u64(),
        Some(embedded().entries.len() as u64)
    );
    let o = rice(&["catalog", "stats"]);
    assert!(
        stdout(&o).contains("Coverage of the survey's topic list"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn help_explains_the_commands() {
    let o = rice(&["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("RICE Atlas"));
    let o = rice(&["catalog", "--help"]);
    for command in ["check", "list", "show", "export", "stats"] {
        assert!(
            stdout(&o).contains(command),
            "{command} missing from catalog --help"
        );
    }
}
