//! End-to-end: `rice run pretrain`, `rice run sft`, `rice lm generate|score` on tiny settings — run directories,
//! checkpoints that load back, resume, and clear failures.

mod common;
use common::rice_in as rice;
use common::{json, ok};

#[test]
fn pretrain_then_sft_then_generate_and_score() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(&rice(
        &[
            "run", "pretrain", "--preset", "toy-xs", "--steps", "30", "--out", "base",
        ],
        d,
    ));
    assert!(out.contains("base model: helpfulness"), "{out}");
    let summary = json(&d.join("base/summary.json"));
    assert_eq!(summary["method"], "pretrain");
    assert!(
        summary["train"]["final_loss"].as_f64().unwrap()
            < summary["train"]["first_loss"].as_f64().unwrap()
    );
    assert!(
        summary["oracle"]["families"]["hazard"]["prompts"]
            .as_u64()
            .unwrap()
            > 0
    );
    for file in [
        "config.toml",
        "metrics.jsonl",
        "plots/loss.svg",
        "checkpoint/config.json",
        "checkpoint/model.safetensors",
        "checkpoint/tokenizer.json",
    ] {
        assert!(d.join("base").join(file).is_file(), "missing {file}");
    }

    // Resuming a finished run has nothing left to do and says where it resumed from.
    ok(&rice(
        &[
            "run", "pretrain", "--preset", "toy-xs", "--steps", "30", "--out", "base", "--resume",
        ],
        d,
    ));
    assert_eq!(
        json(&d.join("base/summary.json"))["train"]["resumed_from"],
        30
    );

    let out = ok(&rice(
        &[
            "run",
            "sft",
            "--model",
            "base/checkpoint",
            "--steps",
            "10",
            "--out",
            "sft",
        ],
        d,
    ));
    assert!(
        out.contains("before SFT") && out.contains("after SFT"),
        "{out}"
    );
    let summary = json(&d.join("sft/summary.json"));
    assert!(summary["effect"]["hazard_unsafe_rate"].is_number());

    // The SFT checkpoint loads back for generation and scoring.
    ok(&rice(
        &[
            "lm",
            "generate",
            "--model",
            "sft/checkpoint",
            "--prompt",
            "Who invented the glomkeith?",
            "--max-new-tokens",
            "8",
        ],
        d,
    ));
    let scored: serde_json::Value = serde_json::from_str(&ok(&rice(
        &[
            "lm",
            "score",
            "--model",
            "sft/checkpoint",
            "--prompt",
            "What is 2 + 2?",
            "--completion",
            "2 + 2 = 4.",
            "--json",
        ],
        d,
    )))
    .unwrap();
    assert!(scored["total_logprob"].as_f64().unwrap() < 0.0);
    assert!(!scored["tokens"].as_array().unwrap().is_empty());

    // The later stages, a few steps each from the SFT checkpoint: the commands, their run directories and summaries.
    let out = ok(&rice(
        &[
            "run",
            "reward",
            "--model",
            "sft/checkpoint",
            "--steps",
            "3",
            "--out",
            "reward",
        ],
        d,
    ));
    assert!(out.contains("held-out pairs ordered correctly"), "{out}");
    assert_eq!(json(&d.join("reward/summary.json"))["method"], "reward");
    let out = ok(&rice(
        &[
            "run",
            "safe-rlhf",
            "--model",
            "sft/checkpoint",
            "--reward-model",
            "reward/checkpoint",
            "--steps",
            "2",
            "--threshold",
            "-0.9",
            "--out",
            "safe",
        ],
        d,
    ));
    assert!(
        out.contains("episode cost") && out.contains("win rate"),
        "{out}"
    );
    let summary = json(&d.join("safe/summary.json"));
    assert_eq!(summary["method"], "safe-rlhf");
    assert!(summary["lambda_end"].as_f64().unwrap() > 0.0);
    for file in [
        "checkpoint/model.safetensors",
        "checkpoint/critic/model.safetensors",
        "checkpoint/cost_critic/model.safetensors",
        "checkpoint/ppo_state.json",
        "plots/lambda.svg",
        "plots/cost.svg",
    ] {
        assert!(d.join("safe").join(file).is_file(), "missing {file}");
    }
    let out = ok(&rice(
        &[
            "run",
            "dpo",
            "--model",
            "sft/checkpoint",
            "--loss",
            "simpo",
            "--pairs",
            "world",
            "--steps",
            "3",
            "--out",
            "simpo",
        ],
        d,
    ));
    assert!(out.contains("implicit reward margin"), "{out}");
    let summary = json(&d.join("simpo/summary.json"));
    assert_eq!(summary["loss"], "simpo");
    assert!(summary["toy"]["win_rate"]["rate"].as_f64().is_some());
}

#[test]
fn bad_runs_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = rice(&["run", "sft", "--model", "nowhere"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no model at nowhere"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = rice(&["run", "pretrain", "--preset", "toy-xxl"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown preset `toy-xxl`"));
    std::fs::create_dir_all(d.join("model")).unwrap();
    std::fs::write(d.join("model/config.json"), "{}").unwrap();
    let o = rice(&["lm", "generate", "--model", "model", "--prompt", "hi"], d);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("tokenizer.json"), "{err}");

    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let o = rice(&["run", "dpo"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("rice run sft --preset toy-helpful"),
        "{}",
        stderr(&o)
    );
    let o = rice(&["run", "dpo", "--loss", "kto", "--model", "model"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown loss `kto`") && stderr(&o).contains("simpo"),
        "{}",
        stderr(&o)
    );
    let o = rice(
        &["run", "ppo", "--model", "model", "--prompts", "p.jsonl"],
        d,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--reward-model"), "{}", stderr(&o));
}

/// `rice run elasticity --config FILE`: the file's settings (here tiny ones) replace the preset's, the tables are
/// printed, and a bad file is named with the field it got wrong.
#[test]
fn elasticity_runs_from_a_config_file_and_names_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cfg = rice_elasticity::ElasticityConfig::toy();
    cfg.pretrain_steps = 20;
    cfg.eval_hazard_prompts = 6;
    cfg.max_new_tokens = 12;
    cfg.resistance.stage_examples = 16;
    cfg.resistance.stage_steps = 2;
    cfg.resistance.answer_prompts = 4;
    cfg.resistance.tune_steps = 2;
    cfg.rebound.positive = vec![8];
    cfg.rebound.align_steps = 2;
    cfg.rebound.negative = vec![0, 4, 8];
    cfg.rebound.perturb_repeats = 1;
    std::fs::write(d.join("tiny.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    let out = ok(&rice(
        &["run", "elasticity", "--config", "tiny.toml", "--out", "el"],
        d,
    ));
    for expected in [
        "| pair | forward loss",
        "comparisons have inverse < forward",
        "| N_neg | N_pos = 8 unsafe | KL |",
        "Half-way back to the base's unsafe rate",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let summary = json(&d.join("el/summary.json"));
    assert_eq!(
        summary["rebound"]["curves"][0]["points"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(d.join("el/plots/rebound_kl.svg").is_file());

    std::fs::write(
        d.join("bad.toml"),
        toml::to_string(&cfg)
            .unwrap()
            .replace("perturb_lr", "perturb_rate"),
    )
    .unwrap();
    let err = common::fails(&rice(&["run", "elasticity", "--config", "bad.toml"], d));
    assert!(
        err.contains("bad.toml") && err.contains("perturb_rate"),
        "{err}"
    );
    let err = common::fails(&rice(&["run", "elasticity", "--probe", "bounce"], d));
    assert!(err.contains("unknown probe `bounce`"), "{err}");
}
