//! Aligner on a data file: `{question, answer, correction}` records train a model (loss on the correction only), and
//! a bad record is reported with its file, line and field.

#[path = "../../rlhf/tests/common/mod.rs"]
mod common;

use rice_aligner::train::{self, AlignerConfig};

fn write(dir: &std::path::Path, name: &str, lines: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn triples_from_a_file_train_and_bad_records_name_their_line() {
    let dir = common::scratch("aligner-data");
    let model = common::tiny_model(&dir);
    let good = write(
        &dir,
        "triples.jsonl",
        &[
            r#"{"question": "What is 2 + 2?", "answer": "5.", "correction": "2 + 2 = 4."}"#,
            r#"{"question": "Say hi.", "answer": "No.", "correction": "Hi!", "extra": 1}"#,
            r#"{"question": "Name a colour.", "answer": "Seven.", "correction": "Blue."}"#,
        ],
    );
    let mut cfg = AlignerConfig::toy(model.clone(), None);
    cfg.data = Some(good);
    cfg.format = "v1.0".into();
    cfg.train.steps = 3;
    cfg.train.eval_every = 0;
    let summary = train::run(&cfg, &dir.join("run"), false).unwrap();
    assert_eq!(summary.format, "v1.0");
    assert_eq!(summary.examples, 2, "one of the three is held out");
    assert!(summary.correction.is_none(), "no oracle for a data file");
    assert!(dir.join("run/checkpoint/model.safetensors").is_file());
    let config = std::fs::read_to_string(dir.join("run/config.toml")).unwrap();
    assert!(config.contains("format = \"v1.0\""), "{config}");

    let bad = write(
        &dir,
        "bad.jsonl",
        &[
            r#"{"question": "Q", "answer": "A", "correction": "C"}"#,
            r#"{"question": "Q", "answer": "A"}"#,
        ],
    );
    cfg.data = Some(bad);
    let err = train::run(&cfg, &dir.join("run-bad"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("missing field `correction`"),
        "{err}"
    );

    cfg.format = "v3".into();
    let err = train::run(&cfg, &dir.join("run-v3"), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("v1.0, 2024-12, align-anything"), "{err}");
}
