//! `--device`/`--precision` on runs and `rice bench train|generate|agree` on CPU: what a CPU build does when asked for
//! a GPU, a bf16 run that trains and records itself, and the benchmarks' JSON that scripts/bench-train and
//! scripts/gpu-check read.

mod common;
use common::rice_in as rice;
use common::{fails, json, ok};

fn lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn a_cpu_build_asked_for_a_gpu_says_how_to_get_one_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &[
            "run", "pretrain", "--preset", "toy-xs", "--device", "cuda", "--out", "gpu",
        ][..],
        &["bench", "train", "--size", "tiny", "--device", "cuda:1"],
        &["bench", "agree", "--device", "cuda"],
    ] {
        let err = fails(&rice(args, d));
        assert!(
            err.contains("this rice was built without CUDA") && err.contains("--features cuda"),
            "{args:?}: {err}"
        );
    }
    // The run directory holds its settings but no checkpoint: nothing trained.
    let config = std::fs::read_to_string(d.join("gpu/config.toml")).unwrap();
    assert!(config.contains("device = \"cuda:0\""), "{config}");
    assert!(!d.join("gpu/checkpoint").exists());

    let o = rice(&["run", "sft", "--device", "tpu"], d);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("use cpu, cuda or cuda:N"), "{err}");
    let err = String::from_utf8_lossy(&rice(&["run", "sft", "--precision", "fp8"], d).stderr)
        .into_owned();
    assert!(err.contains("use f32 or bf16"), "{err}");
}

#[test]
fn a_bf16_run_trains_records_its_precision_and_saves_f32_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&rice(
        &[
            "run",
            "pretrain",
            "--preset",
            "toy-xs",
            "--steps",
            "12",
            "--precision",
            "bf16",
            "--out",
            "b",
        ],
        d,
    ));
    let config = std::fs::read_to_string(d.join("b/config.toml")).unwrap();
    assert!(
        config.contains("precision = \"bf16\"") && config.contains("device = \"cpu\""),
        "{config}"
    );
    let summary = json(&d.join("b/summary.json"));
    let (first, last) = (
        summary["train"]["first_loss"].as_f64().unwrap(),
        summary["train"]["final_loss"].as_f64().unwrap(),
    );
    assert!(
        last < first,
        "bf16 training lowers the loss: {first} → {last}"
    );
    assert_eq!(
        json(&d.join("b/checkpoint/config.json"))["torch_dtype"],
        "float32"
    );
    // The f32 checkpoint generates.
    let out = ok(&rice(
        &[
            "lm",
            "generate",
            "--model",
            "b/checkpoint",
            "--prompt",
            "What is 2 + 3?",
            "--max-new-tokens",
            "4",
        ],
        d,
    ));
    assert!(!out.trim().is_empty());
    // Inference with bf16 weights agrees with f32 on the score, to bf16's precision; a GPU needs a CUDA build.
    let score = |precision: &str| {
        let out = ok(&rice(
            &[
                "lm",
                "score",
                "--model",
                "b/checkpoint",
                "--prompt",
                "What is 2 + 3?",
                "--completion",
                "5.",
                "--json",
                "--precision",
                precision,
            ],
            d,
        ));
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["total_logprob"]
            .as_f64()
            .unwrap()
    };
    let (f32_score, bf16_score) = (score("f32"), score("bf16"));
    assert!(
        f32_score != bf16_score && (f32_score - bf16_score).abs() < 0.05 * f32_score.abs(),
        "f32 {f32_score} vs bf16 {bf16_score}"
    );
    let err = fails(&rice(
        &[
            "lm",
            "generate",
            "--model",
            "b/checkpoint",
            "--prompt",
            "hi",
            "--device",
            "cuda",
        ],
        d,
    ));
    assert!(err.contains("this rice was built without CUDA"), "{err}");
}

#[test]
fn the_benchmarks_print_the_json_the_scripts_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for method in ["sft", "dpo"] {
        let rows = lines(&ok(&rice(
            &[
                "bench",
                "train",
                "--size",
                "tiny",
                "--method",
                method,
                "--batch",
                "2",
                "--seq",
                "16",
                "--steps",
                "1",
                "--precision",
                "bf16",
            ],
            d,
        )));
        let r = &rows[0];
        assert_eq!(r["task"], format!("train-{method}"));
        assert_eq!(r["precision"], "bf16");
        assert_eq!(
            r["parameters"], 158_272,
            "the tiny size the PyTorch twin builds too"
        );
        assert!(r["tokens_per_second"].as_f64().unwrap() > 0.0, "{r}");
    }
    let rows = lines(&ok(&rice(
        &[
            "bench",
            "generate",
            "--size",
            "tiny",
            "--batch",
            "3",
            "--prompt",
            "8",
            "--new-tokens",
            "4",
            "--repeats",
            "1",
        ],
        d,
    )));
    assert_eq!(rows[0]["task"], "generate");
    assert_eq!(rows[0]["batch"], 3);
    assert_eq!(rows[0]["seq"], 12);

    // Agreement on the CPU: f32 against itself is exact; bf16 differs, within its tolerance.
    let rows = lines(&ok(&rice(
        &["bench", "agree", "--size", "tiny", "--json"],
        d,
    )));
    assert_eq!(
        rows.len(),
        12,
        "logits, DPO loss and 4 gradients, in f32 and bf16"
    );
    for r in &rows {
        let error = r["relative_error"].as_f64().unwrap();
        assert_eq!(r["ok"], true, "{r}");
        match r["precision"].as_str().unwrap() {
            "f32" => assert_eq!(error, 0.0, "{r}"),
            _ => assert!(error > 0.0 && error < 2e-2, "{r}"),
        }
    }
    let err = fails(&rice(&["bench", "train", "--size", "huge"], d));
    assert!(err.contains("unknown size `huge`"), "{err}");
}
