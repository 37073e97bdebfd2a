//! The training loop every method shares: gradient accumulation, clipping, AdamW with warmup + cosine, periodic
//! evaluation, `metrics.jsonl`, progress, atomic checkpoints with resume, and a guard against NaN/inf.
//!
//! A method supplies a [`TrainTask`]: the loss of micro-batch `(step, micro)` — deterministic in those two numbers,
//! so that a resumed run sees exactly the data it would have seen — and an evaluation.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Result as CandleResult, Tensor};
use serde::{Deserialize, Serialize};

use candle_nn::VarMap;

use crate::checkpoint::{self, CheckpointError, Loaded, LoadedScore};
use crate::device::{DeviceError, DeviceSpec, Precision};
use crate::optim::{AdamW, AdamWParams, Schedule};

/// Every setting of the loop, with defaults in [`TrainConfig::default`]. Written into the run's `config.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer updates.
    pub steps: u64,
    pub lr: f64,
    pub warmup_steps: u64,
    /// The cosine schedule ends at `lr · min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Micro-batches per update (their gradients are averaged).
    pub accumulation: usize,
    /// Clip the global gradient norm to this (0 turns clipping off).
    pub max_grad_norm: f64,
    pub optimizer: AdamWParams,
    pub log_every: u64,
    /// Evaluate every this many steps (0: only at the end).
    pub eval_every: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    pub seed: u64,
    /// Where to train: `cpu`, `cuda` or `cuda:N`. Absent in runs from before GPUs: `cpu`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// `f32`, or `bf16`: bf16 compute over f32 master weights and f32 optimizer state (see [`Precision`]).
    #[serde(default)]
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            steps: 100,
            lr: 1e-3,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            accumulation: 1,
            max_grad_norm: 1.0,
            optimizer: AdamWParams::default(),
            log_every: 10,
            eval_every: 0,
            save_every: 0,
            seed: 0,
            device: DeviceSpec::Cpu,
            precision: Precision::F32,
        }
    }
}

impl TrainConfig {
    /// Opens the run's `device`, or says why it cannot be used (see [`DeviceSpec::open`]).
    pub fn open_device(&self) -> Result<candle_core::Device, DeviceError> {
        self.device.open()
    }

    /// Rejects settings that cannot train, naming the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("`{name}` must be positive, got {v}"))
            }
        };
        positive("lr", self.lr)?;
        if self.steps == 0 {
            return Err("`steps` must be at least 1".into());
        }
        if self.accumulation == 0 {
            return Err("`accumulation` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(format!(
                "`min_lr_ratio` must be in [0, 1], got {}",
                self.min_lr_ratio
            ));
        }
        if self.max_grad_norm < 0.0 || !self.max_grad_norm.is_finite() {
            return Err(format!(
                "`max_grad_norm` must be ≥ 0, got {}",
                self.max_grad_norm
            ));
        }
        let o = &self.optimizer;
        if !(0.0..1.0).contains(&o.beta1)
            || !(0.0..1.0).contains(&o.beta2)
            || o.eps < 0.0
            || o.weight_decay < 0.0
        {
            return Err("optimizer: betas must be in [0, 1), eps and weight_decay ≥ 0".into());
        }
        Ok(())
    }
}

/// One micro-batch's loss, how many tokens it trained on, and what else the method wants logged for the step
/// (e.g. DPO's reward margin); the loop averages those over the micro-batches into `metrics.jsonl`.
pub struct StepOutput {
    pub loss: Tensor,
    pub tokens: usize,
    pub metrics: BTreeMap<String, f64>,
}

impl StepOutput {
    pub fn new(loss: Tensor, tokens: usize) -> StepOutput {
        StepOutput {
            loss,
            tokens,
            metrics: BTreeMap::new(),
        }
    }
}

/// What a method trains with the loop: the loss of each micro-batch and an evaluation, for a model of type `M`
/// (a [`crate::CausalLm`] for SFT and DPO, a [`crate::ScoreModel`] for reward and cost models).
pub trait TrainTask<M = crate::CausalLm> {
    /// The loss of micro-batch `micro` of update `step`. Must be deterministic in `(step, micro)`.
    fn loss(&mut self, model: &M, step: u64, micro: usize) -> CandleResult<StepOutput>;
    /// Metrics on held-out data, e.g. `eval_loss`; prefixed with `eval/` nowhere — use clear names.
    fn evaluate(&mut self, model: &M, step: u64) -> CandleResult<BTreeMap<String, f64>>;
}

/// A model with the variables that hold its weights: what [`train`] updates and checkpoints.
pub trait Trainable {
    type Model;
    fn model(&self) -> &Self::Model;
    fn vars(&self) -> &VarMap;
    /// Writes the model as a Hugging Face directory (a checkpoint's weights and config).
    fn save(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), CheckpointError>;
}

impl Trainable for Loaded {
    type Model = crate::CausalLm;
    fn model(&self) -> &crate::CausalLm {
        &self.model
    }
    fn vars(&self) -> &VarMap {
        &self.vars
    }
    fn save(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), CheckpointError> {
        checkpoint::save(dir, self.model.config(), &self.vars, tokenizer)
    }
}

impl Trainable for LoadedScore {
    type Model = crate::ScoreModel;
    fn model(&self) -> &crate::ScoreModel {
        &self.model
    }
    fn vars(&self) -> &VarMap {
        &self.vars
    }
    fn save(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<(), CheckpointError> {
        checkpoint::save_score(dir, self.model.config(), &self.vars, tokenizer)
    }
}

/// The task of pre-training and SFT: mean negative log-likelihood of response tokens
/// ([`crate::text::response_nll`]) on random batches of `examples`, evaluated on `held_out`. Batch `(step, micro)`
/// is drawn from a generator seeded by `(seed, tag, step, micro)`, so resumed runs see the same data.
pub struct ResponseNllTask {
    pub examples: Vec<crate::text::Encoded>,
    pub held_out: Vec<crate::text::Encoded>,
    pub batch_size: usize,
    pub max_len: usize,
    pub pad: u32,
    pub seed: u64,
    /// Names the data stream (`"pretrain"`, `"sft"`).
    pub tag: &'static str,
}

impl TrainTask for ResponseNllTask {
    fn loss(
        &mut self,
        model: &crate::CausalLm,
        step: u64,
        micro: usize,
    ) -> CandleResult<StepOutput> {
        let mut rng =
            crate::rng::Rng::derive(self.seed, &format!("{}-batch-{step}-{micro}", self.tag));
        let items: Vec<crate::text::Encoded> = (0..self.batch_size)
            .map(|_| self.examples[rng.below(self.examples.len())].clone())
            .collect();
        let device = model.backbone.embeddings().embeddings().device().clone();
        let b = crate::text::batch(&items, self.pad, self.max_len, &device)
            .map_err(candle_core::Error::msg)?;
        let logits = model.forward(&b.ids, Some(&b.padding))?;
        Ok(StepOutput::new(
            crate::text::response_nll(&logits, &b)?,
            b.tokens,
        ))
    }

    fn evaluate(
        &mut self,
        model: &crate::CausalLm,
        _step: u64,
    ) -> CandleResult<BTreeMap<String, f64>> {
        let device = model.backbone.embeddings().embeddings().device().clone();
        let b = crate::text::batch(&self.held_out, self.pad, self.max_len, &device)
            .map_err(candle_core::Error::msg)?;
        let loss = crate::text::response_nll(&model.forward(&b.ids, Some(&b.padding))?, &b)?
            .to_scalar::<f32>()?;
        Ok(BTreeMap::from([("eval_loss".to_owned(), f64::from(loss))]))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training setting: {0}")]
    Config(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the loss became {value} at step {step}; training stopped. {kept} Try a lower learning rate (now {lr:e}) or \
         a smaller max_grad_norm."
    )]
    NonFinite {
        step: u64,
        value: f64,
        lr: f64,
        kept: String,
    },
    /// Writing a checkpoint failed (e.g. a full disk); the previous one is untouched.
    #[error("cannot save the checkpoint of step {step}: {source}. {kept}")]
    Save {
        step: u64,
        source: Box<TrainError>,
        kept: String,
    },
}

impl TrainError {
    /// Whether the cause is a full disk (or quota).
    pub fn is_disk_full(&self) -> bool {
        let kind = match self {
            TrainError::Io { source, .. }
            | TrainError::Checkpoint(CheckpointError::Io { source, .. }) => source.kind(),
            TrainError::Save { source, .. } => return source.is_disk_full(),
            _ => return false,
        };
        matches!(
            kind,
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }
}

/// What a failed run leaves to continue from, for its error message.
fn kept_checkpoint(last_saved: Option<u64>, ckpt: &Path) -> String {
    match last_saved {
        Some(s) => format!(
            "The last good checkpoint (step {s}) is kept in {}.",
            ckpt.display()
        ),
        None => "No checkpoint had been written yet.".to_owned(),
    }
}

/// What the loop did, for the run's summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainReport {
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub tokens: u64,
    pub final_loss: f64,
    pub first_loss: Option<f64>,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub eval: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    tokens: u64,
}

/// `run_dir/checkpoint`: a Hugging Face directory plus `optimizer.safetensors` and `trainer_state.json`.
pub fn checkpoint_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint")
}

/// Trains `loaded` in `run_dir`. With `resume`, continues from `run_dir/checkpoint` when one exists. `tokenizer` is
/// copied into every checkpoint.
pub fn train<L: Trainable>(
    run_dir: &Path,
    loaded: &L,
    cfg: &TrainConfig,
    task: &mut impl TrainTask<L::Model>,
    tokenizer: Option<&Path>,
    resume: bool,
) -> Result<TrainReport, TrainError> {
    cfg.validate().map_err(TrainError::Config)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let vars = loaded.vars();
    let mut opt = AdamW::new(vars, cfg.optimizer.clone())?;
    let schedule = Schedule {
        lr: cfg.lr,
        warmup: cfg.warmup_steps,
        total: cfg.steps,
        min_ratio: cfg.min_lr_ratio,
    };
    let metrics_path = run_dir.join("metrics.jsonl");

    let mut start = 0;
    let mut tokens: u64 = 0;
    let mut report = TrainReport::default();
    let ckpt = checkpoint_dir(run_dir);
    if resume {
        recover_dir(&ckpt)?;
    }
    if resume && ckpt.join("trainer_state.json").is_file() {
        let state: TrainerState = read_json(&ckpt.join("trainer_state.json"))?;
        load_into(&ckpt, vars)?;
        let moments =
            candle_core::safetensors::load(ckpt.join("optimizer.safetensors"), &device_of(vars))?;
        opt.restore(&moments, state.step)?;
        start = state.step;
        tokens = state.tokens;
        report.resumed_from = Some(start);
        eprintln!("resuming from step {start} ({})", ckpt.display());
        truncate_metrics(&metrics_path, start)?;
    } else if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(io(&metrics_path))?;
    }
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(io(&metrics_path))?;
    let mut last_saved = report.resumed_from;

    let started = Instant::now();
    let tokens_at_start = tokens;
    let progress = Progress::new(cfg.steps);
    let mut last_loss = f64::NAN;
    for step in start..cfg.steps {
        let lr = schedule.at(step);
        // Accumulate: sum the micro-batch gradients, then average through the update's scale.
        let mut total_loss = 0.0;
        let mut step_metrics: BTreeMap<String, f64> = BTreeMap::new();
        let mut grads: Option<candle_core::backprop::GradStore> = None;
        for micro in 0..cfg.accumulation {
            let out = task.loss(loaded.model(), step, micro)?;
            let value = out
                .loss
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    step,
                    value,
                    lr,
                    kept: kept_checkpoint(last_saved, &ckpt),
                });
            }
            total_loss += value;
            tokens += out.tokens as u64;
            for (k, v) in out.metrics {
                *step_metrics.entry(k).or_default() += v / cfg.accumulation as f64;
            }
            let g = out.loss.backward()?;
            grads = Some(match grads {
                None => g,
                Some(mut acc) => {
                    for var in vars.all_vars() {
                        if let Some(new) = g.get(var.as_tensor()) {
                            let sum = match acc.get(var.as_tensor()) {
                                Some(old) => (old + new)?,
                                None => new.clone(),
                            };
                            acc.insert(var.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
        }
        let grads = grads.expect("accumulation ≥ 1");
        let average = 1.0 / cfg.accumulation as f64;
        let norm = opt.grad_norm(&grads)? * average;
        let clip = if cfg.max_grad_norm > 0.0 && norm > cfg.max_grad_norm {
            cfg.max_grad_norm / norm
        } else {
            1.0
        };
        opt.update(&grads, lr, average * clip)?;
        let loss = total_loss / cfg.accumulation as f64;
        report.first_loss.get_or_insert(loss);
        last_loss = loss;
        let done = step + 1;

        let mut row = serde_json::json!({ "step": done, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens });
        for (k, v) in &step_metrics {
            row[k] = serde_json::json!(v);
        }
        let evaluate =
            (cfg.eval_every > 0 && done.is_multiple_of(cfg.eval_every)) || done == cfg.steps;
        if evaluate {
            let eval = task.evaluate(loaded.model(), done)?;
            for (k, v) in &eval {
                row[k] = serde_json::json!(v);
            }
            report.eval = eval;
        }
        // The same rows whether or not the run was resumed: the file reads as one run.
        if evaluate || done.is_multiple_of(cfg.log_every.max(1)) || done == 1 {
            writeln!(metrics, "{row}").map_err(io(&metrics_path))?;
            metrics.flush().map_err(io(&metrics_path))?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        progress.show(
            done,
            loss,
            (tokens - tokens_at_start) as f64 / elapsed.max(1e-9),
            elapsed,
            start,
        );
        if (cfg.save_every > 0 && done.is_multiple_of(cfg.save_every)) || done == cfg.steps {
            save_checkpoint(run_dir, loaded, &opt, done, tokens, tokenizer).map_err(|e| {
                let mut kept = kept_checkpoint(last_saved, &ckpt);
                if e.is_disk_full() {
                    kept = format!(
                        "The disk is full. {kept} Free some space and resume the run (--resume)."
                    );
                }
                TrainError::Save {
                    step: done,
                    source: Box::new(e),
                    kept,
                }
            })?;
            last_saved = Some(done);
        }
    }
    progress.finish();
    report.steps = cfg.steps;
    report.tokens = tokens;
    report.final_loss = last_loss;
    report.seconds = started.elapsed().as_secs_f64();
    report.tokens_per_second = (tokens - tokens_at_start) as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// The device the variables live on.
pub fn device_of(vars: &VarMap) -> candle_core::Device {
    vars.all_vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(candle_core::Device::Cpu)
}

/// Loads the weights of checkpoint directory `dir` into `vars`.
pub fn load_into(dir: &Path, vars: &VarMap) -> Result<(), TrainError> {
    let mut weights = checkpoint::read_weights(dir, &device_of(vars))?;
    let dtype = vars
        .all_vars()
        .first()
        .map_or(candle_core::DType::F32, |v| v.dtype());
    Ok(checkpoint::assign(vars, &mut weights, dir, dtype, &[])?)
}

/// Writes the checkpoint next to the old one and swaps it in, so a kill at any moment leaves one complete checkpoint.
fn save_checkpoint(
    run_dir: &Path,
    loaded: &impl Trainable,
    opt: &AdamW,
    step: u64,
    tokens: u64,
    tokenizer: Option<&Path>,
) -> Result<(), TrainError> {
    replace_dir_atomically(&checkpoint_dir(run_dir), |tmp| {
        loaded.save(tmp, tokenizer)?;
        checkpoint::save_tensors(&opt.state(), &tmp.join("optimizer.safetensors"))?;
        let state =
            serde_json::to_vec_pretty(&TrainerState { step, tokens }).expect("state serialises");
        Ok(checkpoint::write_atomic(
            &tmp.join("trainer_state.json"),
            &state,
        )?)
    })
}

/// Fills a fresh directory beside `dir` (`.NAME.tmp-PID`) with `fill`, then swaps it in for `dir` by two renames
/// (`dir` to `.NAME.old-PID`, the new one to `dir`): a kill at any moment leaves either the old or the new
/// directory complete (what every checkpoint write goes through), and [`recover_dir`] puts it back in place. When
/// `fill` fails (a full disk), its partial directory is removed and `dir` is untouched.
pub fn replace_dir_atomically(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| TrainError::Io { path, source }
    };
    recover_dir(dir)?;
    let [tmp, old] = ["tmp", "old"].map(|kind| swap_name(dir, kind, std::process::id()));
    let filled = std::fs::create_dir_all(&tmp)
        .map_err(io(&tmp))
        .and_then(|()| fill(&tmp));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::rename(&old, dir);
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(io(dir)(e));
    }
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// `.NAME.KIND-PID` beside `dir`: the names [`replace_dir_atomically`] works under.
fn swap_name(dir: &Path, kind: &str, pid: u32) -> PathBuf {
    let name = dir
        .file_name()
        .map_or("dir".into(), |n| n.to_string_lossy());
    dir.with_file_name(format!(".{name}.{kind}-{pid}"))
}

/// Cleans up after a [`replace_dir_atomically`] that a kill interrupted: when `dir` is missing but a
/// `.NAME.old-PID` is there, the kill fell between the two renames, and that old directory — complete, it was
/// `dir` until then — is put back (losing at most the checkpoint being written). Every other `.NAME.tmp-*` and
/// `.NAME.old-*` is a leftover and is removed. Nothing to do after a clean run.
pub fn recover_dir(dir: &Path) -> Result<(), TrainError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(()); // no run directory yet
    };
    let name = name.to_string_lossy();
    let (tmp, old) = (format!(".{name}.tmp-"), format!(".{name}.old-"));
    let mut leftovers: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&tmp) || n.starts_with(&old)
        })
        .map(|e| e.path())
        .collect();
    leftovers.sort();
    if !dir.exists()
        && let Some(i) = leftovers.iter().position(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&old))
        })
    {
        let previous = leftovers.remove(i);
        std::fs::rename(&previous, dir).map_err(|source| TrainError::Io {
            path: previous.clone(),
            source,
        })?;
    }
    for path in leftovers {
        let _ = std::fs::remove_dir_all(&path);
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
}

/// Drops metric rows written after `step` (they belong to the part of the run that the resume replays) and any line
/// a kill cut short, so that a resumed run's file reads as one run.
pub fn truncate_metrics(path: &Path, step: u64) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(checkpoint::write_atomic(path, kept.as_bytes())?)
}

/// A one-line progress display on a terminal; plain lines (every 10%) otherwise.
pub struct Progress {
    total: u64,
    terminal: bool,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        Progress {
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn show(&self, step: u64, loss: f64, tokens_per_second: f64, elapsed: f64, start: u64) {
        let done = (step - start) as f64;
        let remaining = (self.total - step) as f64 * elapsed / done.max(1.0);
        let line = format!(
            "step {step}/{} · loss {loss:.4} · {tokens_per_second:.0} tok/s · ETA {}",
            self.total,
            format_seconds(remaining)
        );
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else if step == self.total || step.is_multiple_of((self.total / 10).max(1)) {
            eprintln!("{line}");
        }
    }

    pub fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

fn format_seconds(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
