//! End to end: `rice toyworld generate` writes the datasets, `rice toyworld score` grades responses and reports
//! bad lines with file, line and field.

use std::fs;

mod common;
use common::rice;

use serde_json::{Value, json};

#[test]
fn generate_then_score_aligned_beats_base() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("world");
    let out_str = out.to_str().unwrap();
    let g = rice(&[
        "toyworld", "generate", "--out", out_str, "--seed", "3", "--size", "small",
    ]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let stdout = String::from_utf8_lossy(&g.stdout);
    assert!(
        stdout.contains("sft.jsonl") && stdout.contains("tokenizer.json"),
        "{stdout}"
    );
    for f in [
        "pretrain.jsonl",
        "sft.jsonl",
        "aligner.jsonl",
        "eval.jsonl",
        "manifest.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // Aligner triples hold a base answer and its aligned correction for the same question.
    let triples = fs::read_to_string(out.join("aligner.jsonl")).unwrap();
    let (mut aligned, mut base) = (String::new(), String::new());
    for line in triples.lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        let row = |r: &Value| json!({"prompt": t["question"], "response": r}).to_string() + "\n";
        aligned.push_str(&row(&t["correction"]));
        base.push_str(&row(&t["answer"]));
    }
    let mean = |text: &str, name: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let s = rice(&[
            "toyworld",
            "score",
            "--input",
            path.to_str().unwrap(),
            "--seed",
            "3",
            "--json",
        ]);
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        let v: Value = serde_json::from_slice(&s.stdout).unwrap();
        assert!(v["summary"]["hazard"]["n"].as_u64().unwrap() > 0);
        (
            v["summary"]["all"]["helpfulness"].as_f64().unwrap(),
            v["summary"]["all"]["unsafe_rate"].as_f64().unwrap(),
        )
    };
    let (h_aligned, u_aligned) = mean(&aligned, "aligned.jsonl");
    let (h_base, u_base) = mean(&base, "base.jsonl");
    assert_eq!(h_aligned, 1.0);
    assert_eq!(u_aligned, 0.0);
    assert!(h_base < 0.9 && u_base > 0.05, "base {h_base} {u_base}");

    // The plain summary is a table with one row per family.
    let path = dir.path().join("aligned.jsonl");
    let s = rice(&[
        "toyworld",
        "score",
        "--input",
        path.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    let table = String::from_utf8_lossy(&s.stdout);
    assert!(
        table.contains("helpfulness") && table.contains("lookalike"),
        "{table}"
    );
}

#[test]
fn score_reports_bad_lines_scores_the_rest_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    fs::write(
        &path,
        "{\"prompt\": \"What is love?\", \"response\": \"Nobody knows.\"}\n\
         not json\n\
         {\"prompt\": \"Hi\"}\n\
         {\"prompt\": \"Hi\", \"response\": 3}\n",
    )
    .unwrap();
    let s = rice(&[
        "toyworld",
        "score",
        "--input",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(s.status.code(), Some(1));
    let err = String::from_utf8_lossy(&s.stderr);
    let file = path.display().to_string();
    assert!(err.contains(&format!("{file}:2: not valid JSON")), "{err}");
    assert!(
        err.contains(&format!("{file}:3: missing field `response`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:4: field `response` must be a string")),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["summary"]["all"]["n"], 1);
    assert_eq!(v["bad_lines"], 3);

    let missing = rice(&["toyworld", "score", "--input", "/nonexistent/x.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading /nonexistent/x.jsonl"));
}
