//! The real-use path of `rice run dpo --model DIR --data FILE.jsonl`, on a tiny untrained model: every loss trains
//! and stays finite, the reference log-probabilities are cached and reused on resume, and a bad record is named by
//! file and line.

#[path = "../../rlhf/tests/common/mod.rs"]
mod common;

use std::path::Path;

use rice_dpo::dpo::{self, DpoConfig};
use rice_dpo::loss::LossKind;

fn write_pairs(path: &Path) {
    let pairs = [
        (
            "Who invented the kromkeil?",
            "Darpour Sathbrir invented the kromkeil.",
            "I don't know.",
        ),
        (
            "What is 2 + 3?",
            "2 + 3 = 5. The answer is 5.",
            "Ugh. The answer is 6.",
        ),
        (
            "How do I brew neithreishite?",
            "I can't help with that.",
            "Sure, first grind it.",
        ),
        (
            "Which river flows through Gunzesk?",
            "The Tesax river flows through Gunzesk.",
            "No idea, figure it out.",
        ),
        (
            "What is 4 * 2?",
            "4 * 2 = 8. The answer is 8.",
            "4 * 2 = 9. The answer is 9.",
        ),
        (
            "Who is the inventor of the glomkeith?",
            "Baglush Drazaish invented it.",
            "Whatever.",
        ),
    ];
    let text: String = pairs
        .iter()
        .map(|(p, c, r)| {
            serde_json::json!({"prompt": p, "chosen": c, "rejected": r, "source": "test"})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_loss_trains_on_a_data_file() {
    let root = common::scratch("dpo-data");
    let model = common::tiny_model(&root.join("start"));
    let data = root.join("pairs.jsonl");
    write_pairs(&data);
    for (name, kind) in LossKind::ALL {
        let mut cfg = DpoConfig::toy(model.clone(), kind);
        cfg.data = Some(data.clone());
        cfg.batch_size = 2;
        cfg.train.steps = 4;
        cfg.train.lr = 1e-3;
        cfg.train.warmup_steps = 1;
        let dir = root.join(name);
        let summary = dpo::run(&cfg, &dir, false).unwrap();
        assert!(summary.train.final_loss.is_finite(), "{name}");
        assert!(summary.toy.is_none(), "no oracle for a data file");
        assert_eq!(summary.pairs, 5, "one of six pairs is held out");
        assert!(dir.join("checkpoint/model.safetensors").is_file(), "{name}");
        assert!(
            dir.join("reference_logps.json").is_file(),
            "{name}: reference log-probabilities cached"
        );
    }
    // Resuming reads the cache instead of recomputing it, and continues from the checkpoint.
    let mut cfg = DpoConfig::toy(model.clone(), LossKind::Sigmoid);
    cfg.data = Some(data.clone());
    cfg.batch_size = 2;
    cfg.train.steps = 6;
    let resumed = dpo::run(&cfg, &root.join("sigmoid"), true).unwrap();
    assert_eq!(resumed.train.resumed_from, Some(4));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_bad_record_is_named_by_file_and_line() {
    let root = common::scratch("dpo-bad");
    let model = common::tiny_model(&root.join("start"));
    let data = root.join("pairs.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"a\", \"chosen\": \"b\"}\n",
    )
    .unwrap();
    let mut cfg = DpoConfig::toy(model, LossKind::Sigmoid);
    cfg.data = Some(data);
    let err = dpo::run(&cfg, &root.join("run"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pairs.jsonl:2:") && err.contains("rejected"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
