//! `rice-elasticity`: the probes of "Language Models Resist Alignment" (Ji et al., arXiv 2406.06144) in miniature,
//! on the toy world.
//!
//! What it is for: measuring how a model springs back toward its pre-trained behaviour after alignment.
//! - [`resistance`]: fine-tuning a later alignment checkpoint on an earlier one's outputs (*inverse* alignment)
//!   against fine-tuning the earlier one on the later one's outputs (*forward*): the paper finds the inverse
//!   direction easier (lower training loss) in all 27 of its comparisons.
//! - [`rebound`]: align the base with N_pos safe examples, then fine-tune on a stream of unsafe ones, and track the
//!   unsafe rate and the KL divergence to the base as the negative examples accumulate: the paper finds a fast fall
//!   back toward the base for the first examples, then a slow one (two phases), and reports the examples needed to
//!   revert.
//! - [`scaling`]: the rebound of bases of different sizes and pre-training lengths (the paper: it grows with both).
//!
//! What it is not for: the model, trainer and data machinery (`rice-lm`), the toy world and its oracle
//! (`rice-toyworld`), or pre-training and SFT as methods (`rice-rlhf`); this crate only composes them into probes.

pub mod kl;
pub mod rebound;
pub mod resistance;
pub mod scaling;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::DType;
use rice_lm::generate::generate_batch;
use rice_lm::run::RunDir;
use rice_lm::text::{Encoded, Template, Tokenizer};
use rice_lm::trainer::{ResponseNllTask, TrainConfig, TrainError, train};
use rice_lm::{CausalLm, DeviceSpec, Loaded, Precision, checkpoint};
pub use rice_rlhf::RunError;
use rice_toyworld::{Datasets, Family, World};
use serde::{Deserialize, Serialize};

/// Every setting of an elasticity run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticityConfig {
    /// The pre-trained base model (a Hugging Face directory). Empty: pre-train `base_preset` for
    /// `pretrain_steps` into `RUN/base` first.
    pub model: Option<PathBuf>,
    pub base_preset: String,
    pub pretrain_steps: u64,
    /// The probes to run, comma-separated: `resistance`, `rebound`, `scaling`, or `all` for the three.
    pub probe: String,
    pub world_seed: u64,
    pub world_size: String,
    /// Examples per optimizer step of the SFT stages, the forward and inverse fine-tunes and the alignment fine-tunes
    /// (the rebound's perturbation has its own `perturb_batch`).
    pub batch_size: usize,
    pub max_len: usize,
    /// Peak learning rate of every fine-tune (linear warmup over the first tenth of the steps, then cosine to 10%).
    pub lr: f64,
    /// The seed of every fine-tune: each probe compares runs that differ only in their start and their data.
    pub seed: u64,
    /// Held-out hazard prompts on which unsafe rates and KL divergences are measured.
    pub eval_hazard_prompts: usize,
    pub max_new_tokens: usize,
    pub rebound: rebound::ReboundConfig,
    pub resistance: resistance::ResistanceConfig,
    pub scaling: scaling::ScalingConfig,
    /// Where every model of the run computes: `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// `f32`, or `bf16` compute over f32 trained weights.
    #[serde(default)]
    pub precision: Precision,
}

impl ElasticityConfig {
    /// The `toy` preset: a toy-xs base pre-trained for 300 steps; the resistance and rebound probes run by default
    /// and take a few minutes on 2 CPU cores (`scaling` pre-trains four more bases and takes longer).
    pub fn toy() -> ElasticityConfig {
        ElasticityConfig {
            model: None,
            base_preset: "toy-xs".into(),
            pretrain_steps: 300,
            probe: "resistance,rebound".into(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 16,
            max_len: 128,
            lr: 1e-3,
            seed: 0,
            eval_hazard_prompts: 40,
            max_new_tokens: 48,
            rebound: rebound::ReboundConfig::toy(),
            resistance: resistance::ResistanceConfig::toy(),
            scaling: scaling::ScalingConfig::toy(),
            device: DeviceSpec::Cpu,
            precision: Precision::F32,
        }
    }

    /// The optimizer settings of a fine-tune of `steps` steps.
    pub fn train_config(&self, steps: u64) -> TrainConfig {
        TrainConfig {
            steps: steps.max(1),
            lr: self.lr,
            warmup_steps: (steps / 10).max(1),
            log_every: 1,
            eval_every: 0,
            seed: self.seed,
            device: self.device,
            precision: self.precision,
            ..TrainConfig::default()
        }
    }
}

/// What a whole run reports; written to `summary.json`.
#[derive(Debug, Serialize)]
pub struct ElasticitySummary {
    pub method: &'static str,
    pub base: PathBuf,
    /// The base model's unsafe rate on the held-out hazard prompts.
    pub base_unsafe_rate: f64,
    pub resistance: Option<resistance::ResistanceReport>,
    pub rebound: Option<rebound::ReboundReport>,
    pub scaling: Option<scaling::ScalingReport>,
    pub seconds: f64,
}

/// The toy world, a base model and the held-out hazard prompts that the probes measure on.
pub struct Setup {
    pub world: World,
    pub data: Datasets,
    pub tok: Tokenizer,
    /// The base model's directory.
    pub base: PathBuf,
    pub base_model: CausalLm,
    /// Held-out hazard prompts: where unsafe rates and KL divergences are measured.
    pub hazard_eval: Vec<String>,
    /// The base model's greedy answers to them, and how it scores there.
    pub base_point: Measure,
}

/// How a model behaves on the held-out hazard prompts.
#[derive(Clone, Debug, Serialize)]
pub struct Measure {
    /// Share of greedy answers the oracle finds unsafe.
    pub unsafe_rate: f64,
    /// Share of refusals among the same answers (neither unsafe nor refusing: off-topic or garbled).
    pub refusal_rate: f64,
    /// Mean per-token KL(p_θ ‖ p_base) over the prompts followed by the model's own greedy answers.
    pub kl_to_base: f64,
    /// The first two greedy answers, to read what the numbers mean.
    pub samples: Vec<String>,
}

/// The base model of a run: `cfg.model` when given, otherwise `preset` pre-trained for `steps` steps into
/// `dir/checkpoint` (reused when it is already there).
pub fn base_model(
    cfg: &ElasticityConfig,
    preset: &str,
    steps: u64,
    dir: &Path,
) -> Result<PathBuf, RunError> {
    let checkpoint = rice_lm::trainer::checkpoint_dir(dir);
    if !checkpoint.join("config.json").is_file() {
        let mut pre = rice_rlhf::pretrain::PretrainConfig::preset(preset)
            .ok_or_else(|| RunError::Usage(format!("unknown model preset `{preset}`")))?;
        pre.train.steps = steps;
        pre.train.warmup_steps = pre.train.warmup_steps.min(steps / 2).max(1);
        pre.world_seed = cfg.world_seed;
        pre.world_size = cfg.world_size.clone();
        pre.train.device = cfg.device;
        pre.train.precision = cfg.precision;
        eprintln!(
            "pre-training the {preset} base for {steps} steps into {} …",
            dir.display()
        );
        rice_rlhf::pretrain::run(&pre, dir, false)?;
    }
    Ok(checkpoint)
}

impl Setup {
    /// Loads the world, the base model in `base` and its behaviour on the held-out hazard prompts.
    pub fn new(cfg: &ElasticityConfig, base: PathBuf) -> Result<Setup, RunError> {
        let (world, data) = rice_rlhf::toy::load_world(cfg.world_seed, &cfg.world_size)?;
        let tok = Tokenizer::load(&base.join("tokenizer.json"))?;
        let device = cfg.device.open().map_err(TrainError::from)?;
        let base_model = checkpoint::load(&base, cfg.precision.dtype(), &device)?.model;
        let hazard_eval: Vec<String> = data
            .eval
            .iter()
            .filter(|r| r.family == Some(Family::Hazard))
            .take(cfg.eval_hazard_prompts)
            .map(|r| r.row.prompt.clone())
            .collect();
        if hazard_eval.is_empty() {
            return Err(RunError::Usage(
                "eval_hazard_prompts must be at least 1".into(),
            ));
        }
        let mut setup = Setup {
            world,
            data,
            tok,
            base,
            base_model,
            hazard_eval,
            base_point: Measure {
                unsafe_rate: 0.0,
                refusal_rate: 0.0,
                kl_to_base: 0.0,
                samples: Vec::new(),
            },
        };
        setup.base_point = setup.measure(&setup.base_model, cfg)?;
        Ok(setup)
    }

    /// Tokenizes prompt/response pairs in ChatML (the toy world's template).
    pub fn encode(&self, pairs: &[(String, String)]) -> Result<Vec<Encoded>, RunError> {
        Ok(pairs
            .iter()
            .map(|(p, r)| Encoded::new(&self.tok, Template::ChatMl, p, r))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// `model`'s greedy answers to `prompts`, decoded in one batch.
    pub fn greedy_answers(
        &self,
        model: &CausalLm,
        prompts: &[String],
        max_new_tokens: usize,
    ) -> Result<Vec<String>, RunError> {
        let ids = prompts
            .iter()
            .map(|p| self.tok.encode(&Template::ChatMl.prompt(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let answers = generate_batch(
            model,
            &self.tok,
            &ids,
            &rice_rlhf::toy::greedy(max_new_tokens),
            &["<|im_end|>", "<|im_start|>"],
        )?;
        Ok(answers
            .into_iter()
            .map(|a| a.text.trim().to_owned())
            .collect())
    }

    /// The share of `answers` to `prompts` that the oracle finds unsafe.
    pub fn unsafe_rate(&self, prompts: &[String], answers: &[String]) -> f64 {
        let unsafe_count = prompts
            .iter()
            .zip(answers)
            .filter(|(p, a)| self.world.score(p, a).is_unsafe)
            .count();
        unsafe_count as f64 / prompts.len().max(1) as f64
    }

    /// `model` on the held-out hazard prompts: greedy answers scored by the oracle, and the KL to the base.
    pub fn measure(&self, model: &CausalLm, cfg: &ElasticityConfig) -> Result<Measure, RunError> {
        let prompts = &self.hazard_eval;
        let answers = self.greedy_answers(model, prompts, cfg.max_new_tokens)?;
        let refused = prompts
            .iter()
            .zip(&answers)
            .filter(|(p, a)| self.world.score(p, a).refused)
            .count();
        Ok(Measure {
            unsafe_rate: self.unsafe_rate(prompts, &answers),
            refusal_rate: refused as f64 / prompts.len() as f64,
            kl_to_base: self.kl_to_base(model, prompts, &answers, cfg.max_len)?,
            samples: answers.into_iter().take(2).collect(),
        })
    }

    /// [`kl::mean_token_kl`] of `model` from the base over the response tokens of `prompts` followed by `answers`
    /// (the answer and its end token: the positions where the model chose what to say).
    pub fn kl_to_base(
        &self,
        model: &CausalLm,
        prompts: &[String],
        answers: &[String],
        max_len: usize,
    ) -> Result<f64, RunError> {
        let pairs: Vec<(String, String)> = prompts
            .iter()
            .cloned()
            .zip(answers.iter().cloned())
            .collect();
        let b = rice_lm::text::batch(
            &self.encode(&pairs)?,
            self.tok.pad_id,
            max_len,
            model.backbone.device(),
        )?;
        let tuned = model.forward(&b.ids, Some(&b.padding))?;
        let base = self.base_model.forward(&b.ids, Some(&b.padding))?;
        Ok(kl::mean_token_kl(&tuned, &base, &b.response_mask)?)
    }
}

/// Fine-tunes the model in `start` on `examples` (the response tokens' loss, batches drawn with replacement) for
/// `steps` steps into `run_dir` (checkpoint in `run_dir/checkpoint`, one loss per step in `metrics.jsonl`).
/// Returns the trained model and the training loss of every step.
pub fn fine_tune(
    cfg: &ElasticityConfig,
    start: &Path,
    examples: Vec<Encoded>,
    steps: u64,
    tag: &'static str,
    run_dir: &Path,
) -> Result<(Loaded, Vec<f64>), RunError> {
    let device = cfg.device.open().map_err(TrainError::from)?;
    let loaded = checkpoint::load(start, DType::F32, &device)?.with_precision(cfg.precision);
    let pad = Tokenizer::load(&start.join("tokenizer.json"))?.pad_id;
    let held_out = examples[..examples.len().min(8)].to_vec();
    let mut task = ResponseNllTask {
        examples,
        held_out,
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        pad,
        seed: cfg.seed,
        tag,
    };
    train(
        run_dir,
        &loaded,
        &cfg.train_config(steps),
        &mut task,
        Some(&start.join("tokenizer.json")),
        false,
    )?;
    let losses = RunDir::create(run_dir)?
        .metric("loss")
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    Ok((loaded, losses))
}

/// The probes named in `probe` (comma-separated; `all` for the three), in the order they run.
pub fn parse_probes(probe: &str) -> Result<Vec<&'static str>, RunError> {
    const PROBES: [&str; 3] = ["resistance", "rebound", "scaling"];
    let mut chosen = Vec::new();
    for name in probe.split(',').map(str::trim) {
        match name {
            "all" => chosen.extend(PROBES),
            _ => match PROBES.iter().find(|p| **p == name) {
                Some(p) => chosen.push(*p),
                None => {
                    return Err(RunError::Usage(format!(
                        "unknown probe `{name}`; use resistance, rebound, scaling (comma-separated) or all"
                    )));
                }
            },
        }
    }
    Ok(PROBES.into_iter().filter(|p| chosen.contains(p)).collect())
}

/// Runs the probes `cfg.probe` names into `run_dir` and writes `config.toml`, `summary.json`, the tables and plots.
pub fn run(cfg: &ElasticityConfig, run_dir: &Path) -> Result<ElasticitySummary, RunError> {
    let probes = parse_probes(&cfg.probe)?;
    let started = Instant::now();
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let base = match &cfg.model {
        Some(dir) => dir.clone(),
        None => base_model(
            cfg,
            &cfg.base_preset,
            cfg.pretrain_steps,
            &run_dir.join("base"),
        )?,
    };
    let setup = Setup::new(cfg, base)?;
    eprintln!(
        "base model: hazard unsafe rate {:.3} on {} held-out prompts",
        setup.base_point.unsafe_rate,
        setup.hazard_eval.len()
    );
    let resistance = match probes.contains(&"resistance") {
        true => Some(resistance::run(cfg, &setup, run_dir)?),
        false => None,
    };
    let rebound = match probes.contains(&"rebound") {
        true => Some(rebound::run(cfg, &setup, run_dir)?),
        false => None,
    };
    let scaling = match probes.contains(&"scaling") {
        true => Some(scaling::run(cfg, run_dir)?),
        false => None,
    };
    let summary = ElasticitySummary {
        method: "elasticity",
        base: setup.base.clone(),
        base_unsafe_rate: setup.base_point.unsafe_rate,
        resistance,
        rebound,
        scaling,
        seconds: started.elapsed().as_secs_f64(),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
