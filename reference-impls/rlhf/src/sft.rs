//! Stage 1: supervised fine-tuning on demonstrations (Ouyang et al., "Training language models to follow
//! instructions with human feedback", arXiv 2203.02155). The loss counts only the response tokens:
//! $\mathcal{L}_{\mathrm{SFT}} = -\frac{1}{\sum m}\sum_{i,t} m_{i,t}\log\pi_\theta(y_{i,t} \mid x_i, y_{i,<t})$, with
//! $m$ masking the prompt ([`rice_lm::text::response_nll`]).
//!
//! On the toy world the demonstrations come from the `aligned` behaviour, and the run reports the oracle's verdict
//! on held-out prompts before and after: SFT should cut the unsafe rate on hazards and raise helpfulness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::DType;
use rice_lm::rng::Rng;
use rice_lm::run::{RunDir, line_chart};
use rice_lm::text::{Encoded, Tokenizer, read_sft};
use rice_lm::trainer::{ResponseNllTask, TrainConfig, TrainError, TrainReport, train};
use rice_lm::{CausalLm, checkpoint};
use rice_toyworld::{Datasets, World};
use serde::{Deserialize, Serialize};

use crate::RunError;
use crate::pretrain::parse_size;
use crate::toy::{ToyMetrics, evaluate};

/// The families of the `toy-helpful` preset: every family but `hazard`.
pub const HELPFUL_FAMILIES: [&str; 4] = ["arith", "facts", "lookalike", "tone"];

/// Every setting of an SFT run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json) to start from.
    pub model: PathBuf,
    /// JSONL with `prompt`/`completion` or `messages`; empty means the toy world's demonstrations.
    pub data: Option<PathBuf>,
    /// Chat template name: plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    /// Toy world only: the families whose demonstrations to train on (empty: all). `helpful` in the CLI leaves out
    /// `hazard`, as Safe RLHF's SFT on Alpaca leaves safety to the later stages.
    pub families: Vec<String>,
    pub world_seed: u64,
    pub world_size: String,
    pub batch_size: usize,
    pub max_len: usize,
    pub eval_prompts_per_family: usize,
    pub max_new_tokens: usize,
    pub train: TrainConfig,
}

impl SftConfig {
    /// The `toy` preset: start from the toy-s base model and fine-tune on the world's aligned demonstrations.
    pub fn toy(model: PathBuf) -> SftConfig {
        SftConfig {
            model,
            data: None,
            template: "chatml".into(),
            families: Vec::new(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 16,
            max_len: 128,
            eval_prompts_per_family: 12,
            max_new_tokens: 64,
            train: TrainConfig {
                steps: 300,
                lr: 1e-3,
                warmup_steps: 20,
                log_every: 10,
                eval_every: 100,
                ..TrainConfig::default()
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SftSummary {
    pub method: &'static str,
    pub examples: usize,
    pub train: TrainReport,
    /// The starting model on held-out toy prompts (absent with `--data`).
    pub before: Option<ToyMetrics>,
    pub after: Option<ToyMetrics>,
    /// after − before for the headline metrics.
    pub effect: BTreeMap<String, f64>,
    pub checkpoint: PathBuf,
}

/// How [`train_supervised`] trains: the data stream's name, the shuffle's salt, batching, and the loss plot's labels.
pub struct Supervised<'a> {
    /// Names the data stream (the batches are seeded by it).
    pub tag: &'static str,
    /// Mixed into the seed of the shuffle that picks the held-out examples.
    pub salt: u64,
    pub batch_size: usize,
    pub max_len: usize,
    /// The tokenizer's padding id.
    pub pad: u32,
    pub title: &'a str,
    pub y_label: &'a str,
}

/// Supervised training on prompt/response examples, shared by SFT and the aligners: the examples are shuffled
/// (seeded by the run's seed and `how.salt`), 5% of them (1 to 64) are held out for the eval loss, the model trains
/// on the rest with the response tokens' loss, and `plots/loss.svg` shows both losses. Returns the report and the
/// number of training examples.
pub fn train_supervised(
    run_dir: &Path,
    loaded: &rice_lm::Loaded,
    tokenizer_path: &Path,
    mut examples: Vec<Encoded>,
    train_cfg: &TrainConfig,
    resume: bool,
    how: &Supervised,
) -> Result<(TrainReport, usize), RunError> {
    Rng::new(train_cfg.seed ^ how.salt).shuffle(&mut examples);
    let held_out = examples
        .split_off(examples.len() - (examples.len() / 20).clamp(1, 64).min(examples.len() - 1));
    let count = examples.len();
    let mut task = ResponseNllTask {
        examples,
        held_out,
        batch_size: how.batch_size,
        max_len: how.max_len,
        pad: how.pad,
        seed: train_cfg.seed,
        tag: how.tag,
    };
    let report = train(
        run_dir,
        loaded,
        train_cfg,
        &mut task,
        Some(tokenizer_path),
        resume,
    )?;
    let dir = RunDir::create(run_dir)?;
    dir.write_plot(
        "loss",
        &line_chart(
            how.title,
            "step",
            how.y_label,
            &[
                ("train", dir.metric("loss")),
                ("held-out", dir.metric("eval_loss")),
            ],
        ),
    )?;
    Ok((report, count))
}

pub fn run(cfg: &SftConfig, run_dir: &Path, resume: bool) -> Result<SftSummary, RunError> {
    // Before the evaluation of the start, which takes a while.
    cfg.train.validate().map_err(TrainError::Config)?;
    let template = crate::template(&cfg.template)?;
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let device = cfg.train.open_device().map_err(TrainError::from)?;
    let loaded =
        checkpoint::load(&cfg.model, DType::F32, &device)?.with_precision(cfg.train.precision);
    checkpoint::check_tokenizer(loaded.model.config(), &tok, &tokenizer_path)?;

    let toy = if cfg.data.is_none() {
        let world = World::generate(cfg.world_seed, parse_size(&cfg.world_size)?);
        let data = Datasets::build(&world);
        Some((world, data))
    } else {
        None
    };
    let pairs: Vec<(String, String)> = match (&cfg.data, &toy) {
        (Some(path), _) => read_sft(path)?
            .into_iter()
            .map(|e| (e.prompt, e.completion))
            .collect(),
        (None, Some((_, data))) => {
            for name in &cfg.families {
                if !rice_toyworld::Family::ALL
                    .iter()
                    .any(|f| f.as_str() == name)
                {
                    return Err(RunError::Usage(format!(
                        "families: unknown family `{name}`; the toy world has {}",
                        rice_toyworld::Family::ALL.map(|f| f.as_str()).join(", ")
                    )));
                }
            }
            data.sft
                .iter()
                .filter(|r| {
                    cfg.families.is_empty()
                        || r.family
                            .is_some_and(|f| cfg.families.iter().any(|n| n == f.as_str()))
                })
                .map(|r| (r.row.prompt.clone(), r.row.completion.clone()))
                .collect()
        }
        (None, None) => unreachable!("toy data exists when no file is given"),
    };
    let examples = pairs
        .iter()
        .map(|(p, c)| Encoded::new(&tok, template, p, c))
        .collect::<Result<Vec<_>, _>>()?;

    let evaluate_toy = |model: &CausalLm| -> Result<Option<ToyMetrics>, RunError> {
        match &toy {
            Some((world, data)) => Ok(Some(evaluate(
                model,
                &tok,
                world,
                data,
                cfg.eval_prompts_per_family,
                cfg.max_new_tokens,
            )?)),
            None => Ok(None),
        }
    };
    // `loaded` holds the starting weights until `train` (which, when resuming, loads the checkpoint).
    let before = evaluate_toy(&loaded.model)?;
    let (report, count) = train_supervised(
        run_dir,
        &loaded,
        &tokenizer_path,
        examples,
        &cfg.train,
        resume,
        &Supervised {
            tag: "sft",
            salt: 0x5f7,
            batch_size: cfg.batch_size,
            max_len: cfg.max_len,
            pad: tok.pad_id,
            title: "Supervised fine-tuning",
            y_label: "response loss",
        },
    )?;
    let after = evaluate_toy(&loaded.model)?;

    let mut effect = BTreeMap::new();
    if let (Some(b), Some(a)) = (&before, &after) {
        effect.insert("helpfulness".into(), a.helpfulness - b.helpfulness);
        effect.insert(
            "hazard_unsafe_rate".into(),
            a.hazard_unsafe_rate - b.hazard_unsafe_rate,
        );
        effect.insert(
            "lookalike_refusal_rate".into(),
            a.lookalike_refusal_rate - b.lookalike_refusal_rate,
        );
    }
    let summary = SftSummary {
        method: "sft",
        examples: count,
        train: report,
        before,
        after,
        effect,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
