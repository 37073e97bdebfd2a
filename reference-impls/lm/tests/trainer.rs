//! The training loop: it learns, resumes bit-exactly after an interruption, and stops on NaN keeping the last good
//! checkpoint.

use std::collections::BTreeMap;

use candle_core::{DType, Device, IndexOp, Result, Tensor};
use rice_lm::trainer::{
    StepOutput, TrainConfig, TrainError, TrainTask, recover_dir, replace_dir_atomically, train,
};
use rice_lm::{CausalLm, checkpoint, tiny_config};

/// Next-token prediction on two fixed sequences; optionally fails or returns NaN at a given step.
struct Memorise {
    fail_at: Option<u64>,
    nan_at: Option<u64>,
}

fn sequences() -> Tensor {
    Tensor::new(
        &[
            [1u32, 5, 9, 13, 17, 21, 25, 29],
            [2, 4, 6, 8, 10, 12, 14, 16],
        ],
        &Device::Cpu,
    )
    .unwrap()
}

fn loss_of(model: &CausalLm) -> Result<Tensor> {
    let ids = sequences();
    let logits = model.forward(&ids, None)?;
    let v = logits.dim(2)?;
    candle_nn::loss::cross_entropy(
        &logits.i((.., ..7, ..))?.reshape((14, v))?,
        &ids.i((.., 1..))?.reshape(14)?,
    )
}

impl TrainTask for Memorise {
    fn loss(&mut self, model: &CausalLm, step: u64, _micro: usize) -> Result<StepOutput> {
        if self.fail_at == Some(step) {
            candle_core::bail!("simulated crash at step {step}");
        }
        let loss = loss_of(model)?;
        let loss = if self.nan_at == Some(step) {
            (loss * f64::NAN)?
        } else {
            loss
        };
        Ok(StepOutput::new(loss, 14))
    }

    fn evaluate(&mut self, model: &CausalLm, _step: u64) -> Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::from([(
            "eval_loss".to_owned(),
            loss_of(model)?.to_scalar::<f32>()? as f64,
        )]))
    }
}

fn config(steps: u64, save_every: u64) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 3e-3,
        warmup_steps: 2,
        save_every,
        log_every: 1,
        ..TrainConfig::default()
    }
}

fn fresh() -> rice_lm::Loaded {
    // Same seed, same initial weights.
    checkpoint::init(&tiny_config(32), DType::F32, &Device::Cpu, 7).unwrap()
}

fn weights(loaded: &rice_lm::Loaded) -> Vec<(String, Vec<f32>)> {
    let data = loaded.vars.data().lock().unwrap();
    let mut out: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rice-lm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn training_lowers_the_loss_and_writes_metrics_and_a_checkpoint() {
    let dir = tempdir("learn");
    let loaded = fresh();
    let report = train(
        &dir,
        &loaded,
        &config(60, 0),
        &mut Memorise {
            fail_at: None,
            nan_at: None,
        },
        None,
        false,
    )
    .unwrap();
    let first = report.first_loss.unwrap();
    assert!(
        report.final_loss < first * 0.5,
        "loss {first} → {}",
        report.final_loss
    );
    assert!(report.eval["eval_loss"] < first * 0.5);
    let rows = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), 60);
    assert!(rows.lines().last().unwrap().contains("eval_loss"));
    let reloaded = checkpoint::load(&dir.join("checkpoint"), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(weights(&reloaded), weights(&loaded));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_resumed_run_ends_exactly_where_an_uninterrupted_one_does() {
    let straight_dir = tempdir("straight");
    let straight = fresh();
    train(
        &straight_dir,
        &straight,
        &config(12, 4),
        &mut Memorise {
            fail_at: None,
            nan_at: None,
        },
        None,
        false,
    )
    .unwrap();

    let dir = tempdir("resumed");
    let first_try = fresh();
    let crash = train(
        &dir,
        &first_try,
        &config(12, 4),
        &mut Memorise {
            fail_at: Some(9),
            nan_at: None,
        },
        None,
        false,
    );
    assert!(crash.is_err());
    let second_try = fresh(); // a new process: fresh weights, everything else from the checkpoint
    let report = train(
        &dir,
        &second_try,
        &config(12, 4),
        &mut Memorise {
            fail_at: None,
            nan_at: None,
        },
        None,
        true,
    )
    .unwrap();
    assert_eq!(report.resumed_from, Some(8));
    assert_eq!(
        weights(&second_try),
        weights(&straight),
        "resume must replay the same updates"
    );
    let steps: Vec<u64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        steps,
        (1..=12).collect::<Vec<_>>(),
        "no step is logged twice"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&straight_dir).unwrap();
}

#[test]
fn a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint() {
    let dir = tempdir("nan");
    let loaded = fresh();
    let err = train(
        &dir,
        &loaded,
        &config(10, 2),
        &mut Memorise {
            fail_at: None,
            nan_at: Some(5),
        },
        None,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 5, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("step 5") && message.contains("(step 4) is kept"),
        "{message}"
    );
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("checkpoint/trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_are_rejected_by_name() {
    let loaded = fresh();
    let dir = tempdir("bad");
    for (cfg, name) in [
        (
            TrainConfig {
                lr: -1e-3,
                ..TrainConfig::default()
            },
            "lr",
        ),
        (
            TrainConfig {
                steps: 0,
                ..TrainConfig::default()
            },
            "steps",
        ),
        (
            TrainConfig {
                accumulation: 0,
                ..TrainConfig::default()
            },
            "accumulation",
        ),
    ] {
        let err = train(
            &dir,
            &loaded,
            &cfg,
            &mut Memorise {
                fail_at: None,
                nan_at: None,
            },
            None,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains(&format!("`{name}`")), "{err}");
    }
}

#[test]
fn gradient_accumulation_averages_micro_batches() {
    // Two identical micro-batches averaged equal one micro-batch: the same weights after training.
    let a_dir = tempdir("acc1");
    let b_dir = tempdir("acc2");
    let one = fresh();
    train(
        &a_dir,
        &one,
        &config(5, 0),
        &mut Memorise {
            fail_at: None,
            nan_at: None,
        },
        None,
        false,
    )
    .unwrap();
    let two = fresh();
    let cfg = TrainConfig {
        accumulation: 2,
        ..config(5, 0)
    };
    train(
        &b_dir,
        &two,
        &cfg,
        &mut Memorise {
            fail_at: None,
            nan_at: None,
        },
        None,
        false,
    )
    .unwrap();
    for ((name, x), (_, y)) in weights(&one).iter().zip(weights(&two)) {
        let diff = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{name}: {diff}");
    }
    std::fs::remove_dir_all(&a_dir).unwrap();
    std::fs::remove_dir_all(&b_dir).unwrap();
}

/// A checkpoint swap that fails (a full disk) leaves the old directory and no temporary one; one that a kill cut
/// between its two renames is put back by `recover_dir`, which also removes every leftover.
#[test]
fn an_interrupted_or_failed_swap_leaves_one_complete_directory() {
    let run = tempdir("swap");
    let ckpt = run.join("checkpoint");
    let files = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    replace_dir_atomically(&ckpt, |tmp| {
        std::fs::write(tmp.join("state"), "1").unwrap();
        Ok(())
    })
    .unwrap();
    let err = replace_dir_atomically(&ckpt, |tmp| {
        std::fs::write(tmp.join("state"), "half").unwrap();
        Err(TrainError::Config("disk full".into()))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid training setting: disk full");
    assert_eq!(files(&run), ["checkpoint"]);
    assert_eq!(std::fs::read_to_string(ckpt.join("state")).unwrap(), "1");

    // Killed between the renames: no `checkpoint`, the old one beside a new one, and a stale temporary directory of
    // another process.
    std::fs::rename(&ckpt, run.join(".checkpoint.old-41")).unwrap();
    std::fs::create_dir(run.join(".checkpoint.tmp-41")).unwrap();
    std::fs::create_dir(run.join(".checkpoint.tmp-7")).unwrap();
    recover_dir(&ckpt).unwrap();
    assert_eq!(files(&run), ["checkpoint"]);
    assert_eq!(std::fs::read_to_string(ckpt.join("state")).unwrap(), "1");
    recover_dir(&ckpt).unwrap();
    assert_eq!(
        files(&run),
        ["checkpoint"],
        "nothing to do after a clean run"
    );
    std::fs::remove_dir_all(&run).unwrap();
}

/// With a row every few steps, a resumed run logs the same steps as an uninterrupted one (it used to add a row for
/// its first step after the checkpoint), so its `metrics.jsonl` reads as one run.
#[test]
fn a_resumed_run_logs_the_rows_of_an_uninterrupted_one() {
    let cfg = TrainConfig {
        log_every: 5,
        ..config(12, 4)
    };
    let steps = |dir: &std::path::Path| -> Vec<u64> {
        std::fs::read_to_string(dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    let task = |fail_at| Memorise {
        fail_at,
        nan_at: None,
    };
    let straight = tempdir("rows-straight");
    train(&straight, &fresh(), &cfg, &mut task(None), None, false).unwrap();
    let resumed = tempdir("rows-resumed");
    assert!(train(&resumed, &fresh(), &cfg, &mut task(Some(9)), None, false).is_err());
    assert_eq!(steps(&resumed), [1, 5]);
    train(&resumed, &fresh(), &cfg, &mut task(None), None, true).unwrap();
    assert_eq!(steps(&straight), [1, 5, 10, 12]);
    assert_eq!(steps(&resumed), steps(&straight));
    std::fs::remove_dir_all(&straight).unwrap();
    std::fs::remove_dir_all(&resumed).unwrap();
}

/// The loop with `precision = "bf16"` learns as f32 does and checkpoints f32 weights.
#[test]
fn bf16_training_learns_and_saves_f32_weights() {
    let dir = tempdir("bf16");
    let loaded = fresh().with_precision(rice_lm::Precision::Bf16);
    let cfg = TrainConfig {
        precision: rice_lm::Precision::Bf16,
        ..config(60, 0)
    };
    let memorise = || Memorise {
        fail_at: None,
        nan_at: None,
    };
    let report = train(&dir, &loaded, &cfg, &mut memorise(), None, false).unwrap();
    let first = report.first_loss.unwrap();
    assert!(
        report.final_loss < first * 0.5,
        "bf16 loss {first} → {}",
        report.final_loss
    );
    let f32_report = train(
        &tempdir("bf16-ref"),
        &fresh(),
        &config(60, 0),
        &mut memorise(),
        None,
        false,
    )
    .unwrap();
    assert!(
        (report.final_loss - f32_report.final_loss).abs() < 0.25 * f32_report.final_loss.max(0.1),
        "bf16 ends near f32: {} vs {}",
        report.final_loss,
        f32_report.final_loss
    );
    let saved = checkpoint::load(
        &rice_lm::trainer::checkpoint_dir(&dir),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("checkpoint/config.json")).unwrap();
    assert!(text.contains("\"torch_dtype\": \"float32\""), "{text}");
    assert_eq!(
        weights(&saved),
        weights(&loaded),
        "the checkpoint holds the trained f32 weights"
    );
}
