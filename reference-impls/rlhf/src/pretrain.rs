//! Stage 0 on the toy world: pre-train a small model from scratch on the world's "internet" — encyclopedia
//! paragraphs and chats answered by the unaligned `base` behaviour — with the plain next-token loss
//! $\mathcal{L} = -\frac{1}{N}\sum_t \log \pi_\theta(x_{t+1} \mid x_{\le t})$.
//! The result is the unaligned base model that SFT, DPO and PPO then align.

use std::path::{Path, PathBuf};

use candle_core::DType;
use rice_lm::checkpoint;
use rice_lm::rng::Rng;
use rice_lm::run::{RunDir, line_chart};
use rice_lm::text::{Encoded, Tokenizer};
use rice_lm::trainer::{ResponseNllTask, TrainConfig, TrainError, TrainReport, train};
use rice_toyworld::{Datasets, Size, World};
use serde::{Deserialize, Serialize};

use crate::toy::{ToyMetrics, evaluate};
use crate::{RunError, presets};

/// Every setting of a pre-training run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    pub preset: String,
    pub world_seed: u64,
    /// `small` or `medium`.
    pub world_size: String,
    pub vocab_size: usize,
    pub batch_size: usize,
    pub max_len: usize,
    /// Held-out prompts per family for the oracle evaluation at the end.
    pub eval_prompts_per_family: usize,
    pub max_new_tokens: usize,
    pub train: TrainConfig,
}

impl PretrainConfig {
    /// Defaults for a model preset: sized to finish in a few minutes on 2 CPU cores.
    pub fn preset(preset: &str) -> Option<PretrainConfig> {
        presets::model(preset, 1)?;
        let steps = match preset {
            "toy-xs" => 300,
            "toy-s" => 500,
            _ => 800,
        };
        Some(PretrainConfig {
            preset: preset.to_owned(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            vocab_size: 1024,
            batch_size: 16,
            max_len: 128,
            eval_prompts_per_family: 12,
            max_new_tokens: 64,
            train: TrainConfig {
                steps,
                lr: 2e-3,
                warmup_steps: 30,
                log_every: 10,
                eval_every: 100,
                ..TrainConfig::default()
            },
        })
    }

    /// Rejects settings that cannot train, naming the setting (before any work is done).
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 {
            return Err("`batch_size` must be at least 1".into());
        }
        if self.max_len < 2 {
            return Err(format!(
                "`max_len` must be at least 2, got {}",
                self.max_len
            ));
        }
        self.train
            .validate()
            .map_err(|e| format!("invalid training setting: {e}"))
    }
}

#[derive(Debug, Serialize)]
pub struct PretrainSummary {
    pub method: &'static str,
    pub preset: String,
    pub parameters: usize,
    pub documents: usize,
    pub train: TrainReport,
    /// The base model on held-out prompts: expect a high unsafe rate and imperfect facts and arithmetic.
    pub oracle: ToyMetrics,
    pub checkpoint: PathBuf,
}

pub fn parse_size(name: &str) -> Result<Size, RunError> {
    match name {
        "small" => Ok(Size::Small),
        "medium" => Ok(Size::Medium),
        other => Err(RunError::Usage(format!(
            "world_size must be small or medium, got `{other}`"
        ))),
    }
}

/// Pre-trains the base model into `run_dir` (checkpoint in `run_dir/checkpoint`).
pub fn run(
    cfg: &PretrainConfig,
    run_dir: &Path,
    resume: bool,
) -> Result<PretrainSummary, RunError> {
    cfg.validate().map_err(RunError::Usage)?;
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let world = World::generate(cfg.world_seed, parse_size(&cfg.world_size)?);
    let data = Datasets::build(&world);

    // The tokenizer is part of the model: trained once on the world's text, kept beside the checkpoint (written
    // atomically: a resumed run reuses it).
    let tokenizer_path = run_dir.join("tokenizer.json");
    if !(resume && tokenizer_path.is_file()) {
        let trained = rice_toyworld::train_tokenizer(data.tokenizer_corpus(), cfg.vocab_size)?;
        let json = trained
            .to_string(false)
            .map_err(|e| RunError::Usage(format!("{}: {e}", tokenizer_path.display())))?;
        checkpoint::write_atomic(&tokenizer_path, json.as_bytes())?;
    }
    let tok = Tokenizer::load(&tokenizer_path)?;
    let mut model_cfg = presets::model(&cfg.preset, tok.vocab_size()).ok_or_else(|| {
        RunError::Usage(format!(
            "unknown preset `{}`; use one of {:?}",
            cfg.preset,
            presets::MODEL_PRESETS
        ))
    })?;
    model_cfg.eos_token_id = Some(tok.eos_id);
    let device = cfg.train.open_device().map_err(TrainError::from)?;
    let loaded = checkpoint::init(&model_cfg, DType::F32, &device, cfg.train.seed)?
        .with_precision(cfg.train.precision);

    let mut docs = data
        .pretrain
        .iter()
        .map(|r| {
            Ok(Encoded {
                prompt: Vec::new(),
                response: [tok.encode(&r.row.text)?, vec![tok.eos_id]].concat(),
            })
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    Rng::new(cfg.world_seed).shuffle(&mut docs);
    let held_out = docs.split_off(docs.len() - (docs.len() / 20).clamp(8, 64));
    let documents = docs.len();
    let mut task = ResponseNllTask {
        examples: docs,
        held_out,
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        pad: tok.pad_id,
        seed: cfg.train.seed,
        tag: "pretrain",
    };
    let report = train(
        run_dir,
        &loaded,
        &cfg.train,
        &mut task,
        Some(&tokenizer_path),
        resume,
    )?;

    let oracle = evaluate(
        &loaded.model,
        &tok,
        &world,
        &data,
        cfg.eval_prompts_per_family,
        cfg.max_new_tokens,
    )?;
    dir.write_plot(
        "loss",
        &line_chart(
            &format!("Pre-training {} on the toy world", cfg.preset),
            "step",
            "next-token loss",
            &[
                ("train", dir.metric("loss")),
                ("held-out", dir.metric("eval_loss")),
            ],
        ),
    )?;
    let summary = PretrainSummary {
        method: "pretrain",
        preset: cfg.preset.clone(),
        parameters: presets::parameters(&model_cfg),
        documents,
        train: report,
        oracle,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
