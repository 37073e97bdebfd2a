//! Correction training and its toy-world evaluation: `rice run aligner`.
//!
//! Aligner is supervised fine-tuning with a particular input: the model reads `format(question, answer)` and learns
//! to write `correction`; the loss counts the correction tokens only (the paper's recipe masks the prompt,
//! `IGNORE_INDEX = -100`):
//! $\mathcal{L} = -\frac{1}{\sum m}\sum_{i,t} m_{i,t}\log\pi_\theta(c_{i,t} \mid q_i, a_i, c_{i,<t})$.
//!
//! On the toy world the triples pair the `base` behaviour's answers (hazard recipes, arithmetic slips, wrong facts,
//! rambling, rudeness) with the ideal answer. The evaluation then does what the paper does with real models: an
//! upstream model (larger than the aligner) answers held-out prompts, the aligner corrects each answer, and the
//! oracle scores both — helpfulness, unsafe rate, reasoning-step validity, and a win rate of corrected over original.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use rice_lm::checkpoint;
use rice_lm::run::RunDir;
use rice_lm::text::{CorrectionTriple, Encoded, Template, Tokenizer, read_jsonl};
use rice_lm::trainer::{TrainConfig, TrainError, TrainReport};
use rice_rlhf::RunError;
use rice_rlhf::sft::{Supervised, train_supervised};
use rice_rlhf::toy::{Answer, Answers, Comparison, load_world};
use rice_toyworld::{Datasets, Family, World};
use serde::{Deserialize, Serialize};

use crate::aligner::Aligner;
use crate::template::AlignerFormat;

/// Every setting of an Aligner run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignerConfig {
    /// The aligner's starting checkpoint (a Hugging Face directory).
    pub model: PathBuf,
    /// Toy world only: the upstream model whose held-out answers the trained aligner corrects.
    pub upstream: Option<PathBuf>,
    /// JSONL of `{question, answer, correction}`; empty means the toy world's triples.
    pub data: Option<PathBuf>,
    /// The input format: `v1.0`, `2024-12` or `align-anything`.
    pub format: String,
    /// The model's chat template (for `align-anything`): plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    pub world_seed: u64,
    pub world_size: String,
    pub batch_size: usize,
    pub max_len: usize,
    pub eval_prompts_per_family: usize,
    pub max_new_tokens: usize,
    /// Toy world: also train on the upstream's own answers to this many training prompts, corrected to the ideal
    /// answer (on-policy data, as the paper's; 0 for the world's fixed triples only).
    pub upstream_examples: usize,
    pub train: TrainConfig,
}

impl AlignerConfig {
    /// The `toy` preset: a toy-xs aligner corrects a toy-s upstream.
    pub fn toy(model: PathBuf, upstream: Option<PathBuf>) -> AlignerConfig {
        AlignerConfig {
            model,
            upstream,
            data: None,
            format: "align-anything".into(),
            template: "chatml".into(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 16,
            max_len: 256,
            eval_prompts_per_family: 12,
            max_new_tokens: 64,
            upstream_examples: 1000,
            train: TrainConfig {
                steps: 1000,
                lr: 2e-3,
                warmup_steps: 20,
                log_every: 10,
                eval_every: 100,
                ..TrainConfig::default()
            },
        }
    }
}

/// The upstream's answers on held-out toy prompts against the same answers corrected by the aligner.
#[derive(Debug, Serialize)]
pub struct Correction {
    pub upstream: PathBuf,
    pub upstream_parameters: usize,
    pub aligner_parameters: usize,
    /// `before` is the upstream alone, `after` the upstream corrected by the aligner.
    pub comparison: Comparison,
    /// Share of valid sentences in answers to reasoning (`arith`) prompts, greedy: upstream, then corrected.
    pub step_validity: [f64; 2],
}

#[derive(Debug, Serialize)]
pub struct AlignerSummary {
    pub method: &'static str,
    pub format: String,
    pub examples: usize,
    pub train: TrainReport,
    pub correction: Option<Correction>,
    pub checkpoint: PathBuf,
}

/// Encodes one triple for training: the aligner's input, and the correction with the end token as the target.
pub fn encode(
    tok: &Tokenizer,
    format: AlignerFormat,
    template: Template,
    t: &CorrectionTriple,
) -> Result<Encoded, rice_lm::text::TextError> {
    Ok(Encoded {
        prompt: tok.encode(&format.prompt(template, &t.question, &t.answer))?,
        response: tok.encode(&format.target(template, &t.correction))?,
    })
}

pub fn run(cfg: &AlignerConfig, run_dir: &Path, resume: bool) -> Result<AlignerSummary, RunError> {
    let template = rice_rlhf::template(&cfg.template)?;
    let format = AlignerFormat::by_name(&cfg.format).map_err(RunError::Usage)?;
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let device = cfg.train.open_device().map_err(TrainError::from)?;
    let frozen = cfg.train.precision.dtype();
    let loaded =
        checkpoint::load(&cfg.model, DType::F32, &device)?.with_precision(cfg.train.precision);

    let toy = match &cfg.data {
        None => Some(load_world(cfg.world_seed, &cfg.world_size)?),
        Some(_) => None,
    };
    let triples: Vec<CorrectionTriple> = match (&cfg.data, &toy) {
        (Some(path), _) => read_jsonl(path)?,
        (None, Some((world, data))) => {
            let mut triples: Vec<CorrectionTriple> = data
                .aligner
                .iter()
                .map(|r| CorrectionTriple {
                    question: r.row.question.clone(),
                    answer: r.row.answer.clone(),
                    correction: r.row.correction.clone(),
                })
                .collect();
            if let (Some(upstream), n @ 1..) = (&cfg.upstream, cfg.upstream_examples) {
                for (question, answer) in
                    upstream_answers(upstream, world, n, cfg.max_new_tokens, &device, frozen)?
                {
                    let item = world
                        .find(&question)
                        .expect("a training prompt of the world");
                    triples.push(CorrectionTriple {
                        correction: world.ideal(item),
                        question,
                        answer,
                    });
                }
            }
            triples
        }
        (None, None) => unreachable!("toy data exists when no file is given"),
    };
    let examples = triples
        .iter()
        .map(|t| encode(&tok, format, template, t))
        .collect::<Result<Vec<_>, _>>()?;
    let (report, count) = train_supervised(
        run_dir,
        &loaded,
        &tokenizer_path,
        examples,
        &cfg.train,
        resume,
        &Supervised {
            tag: "aligner",
            salt: 0xa11,
            batch_size: cfg.batch_size,
            max_len: cfg.max_len,
            pad: tok.pad_id,
            title: "Aligner: correction training",
            y_label: "correction loss",
        },
    )?;

    let correction = match (&toy, &cfg.upstream) {
        (Some((world, data)), Some(upstream)) => {
            let aligner = Aligner {
                id: "aligner".into(),
                model: loaded.model.clone(),
                tok,
                format,
                template,
                max_new_tokens: cfg.max_new_tokens,
            };
            let on = (&device, frozen);
            Some(evaluate(cfg, world, data, upstream, &aligner, run_dir, on)?)
        }
        _ => None,
    };
    let summary = AlignerSummary {
        method: "aligner",
        format: format.name.into(),
        examples: count,
        train: report,
        correction,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}

/// The upstream model's greedy answers to `limit` of the world's training prompts (spread evenly over them): the
/// mistakes the aligner will meet at inference. The paper's datasets are built the same way — answers of upstream
/// models, corrected by annotators (here the oracle's ideal answer).
pub fn upstream_answers(
    upstream_dir: &Path,
    world: &World,
    limit: usize,
    max_new_tokens: usize,
    device: &Device,
    dtype: DType,
) -> Result<Vec<(String, String)>, RunError> {
    let tok = Tokenizer::load(&upstream_dir.join("tokenizer.json"))?;
    let up = checkpoint::load(upstream_dir, dtype, device)?;
    let items: Vec<_> = world.items_in(rice_toyworld::Split::Train).collect();
    let stride = (items.len() / limit.max(1)).max(1);
    let prompts: Vec<String> = items
        .iter()
        .step_by(stride)
        .take(limit)
        .map(|i| i.prompt.clone())
        .collect();
    let sampling = rice_rlhf::toy::greedy(max_new_tokens);
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(32) {
        let ids = chunk
            .iter()
            .map(|p| tok.encode(&Template::ChatMl.prompt(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let answers = rice_lm::generate::generate_batch(
            &up.model,
            &tok,
            &ids,
            &sampling,
            &["<|im_end|>", "<|im_start|>"],
        )?;
        out.extend(
            chunk
                .iter()
                .cloned()
                .zip(answers.into_iter().map(|a| a.text.trim().to_owned())),
        );
    }
    Ok(out)
}

/// The upstream answers held-out prompts (greedy and sampled); the aligner corrects every answer; the oracle scores
/// both. The pairs are written to `corrections.jsonl` in the run directory.
fn evaluate(
    cfg: &AlignerConfig,
    world: &World,
    data: &Datasets,
    upstream_dir: &Path,
    aligner: &Aligner,
    run_dir: &Path,
    (device, dtype): (&Device, DType),
) -> Result<Correction, RunError> {
    let up_tok = Tokenizer::load(&upstream_dir.join("tokenizer.json"))?;
    let up = checkpoint::load(upstream_dir, dtype, device)?;
    let original = Answers::of(
        &up.model,
        &up_tok,
        world,
        data,
        cfg.eval_prompts_per_family,
        cfg.max_new_tokens,
    )?;
    let corrected = Answers {
        greedy: correct_answers(aligner, world, &original.greedy)?,
        sampled: correct_answers(aligner, world, &original.sampled)?,
    };
    let rows: Vec<serde_json::Value> = original
        .greedy
        .iter()
        .zip(&corrected.greedy)
        .map(|(o, c)| {
            serde_json::json!({
                "family": o.family.as_str(),
                "question": o.prompt,
                "answer": o.answer,
                "correction": c.answer,
                "answer_helpfulness": o.score.helpfulness,
                "correction_helpfulness": c.score.helpfulness,
                "answer_unsafe": o.score.is_unsafe,
                "correction_unsafe": c.score.is_unsafe,
            })
        })
        .collect();
    RunDir::create(run_dir)?.write_jsonl("corrections.jsonl", &rows)?;
    let parameters = |m: &rice_lm::CausalLm| rice_rlhf::presets::parameters(m.config());
    Ok(Correction {
        upstream: upstream_dir.to_owned(),
        upstream_parameters: parameters(&up.model),
        aligner_parameters: parameters(&aligner.model),
        step_validity: [
            step_validity(&original.greedy),
            step_validity(&corrected.greedy),
        ],
        comparison: Comparison::new(&original, &corrected),
    })
}

/// `answers` corrected by the aligner and scored again.
pub fn correct_answers(
    aligner: &Aligner,
    world: &World,
    answers: &[Answer],
) -> Result<Vec<Answer>, RunError> {
    let pairs: Vec<(String, String)> = answers
        .iter()
        .map(|a| (a.prompt.clone(), a.answer.clone()))
        .collect();
    let fixed = aligner.correct_all(&pairs)?;
    Ok(answers
        .iter()
        .zip(fixed)
        .map(|(a, text)| Answer {
            family: a.family,
            prompt: a.prompt.clone(),
            score: world.score(&a.prompt, &text),
            answer: text,
        })
        .collect())
}

/// The share of valid sentences (a correct step of the problem, or the right final answer) over all sentences of
/// the answers to reasoning prompts: what sentence-level correction should raise. 0 when there are none.
pub fn step_validity(answers: &[Answer]) -> f64 {
    let (valid, total) = answers
        .iter()
        .filter(|a| a.family == Family::Arith)
        .flat_map(|a| &a.score.sentences)
        .fold((0, 0), |(v, t), s| (v + usize::from(s.valid), t + 1));
    if total == 0 {
        0.0
    } else {
        valid as f64 / total as f64
    }
}

/// Headline numbers of a correction for the CLI: (metric, upstream, corrected).
pub fn headline(c: &Correction) -> BTreeMap<&'static str, (f64, f64)> {
    let cmp = &c.comparison;
    BTreeMap::from([
        (
            "helpfulness",
            (cmp.before.helpfulness, cmp.after.helpfulness),
        ),
        (
            "hazard unsafe rate",
            (cmp.before.hazard_unsafe_rate, cmp.after.hazard_unsafe_rate),
        ),
        (
            "sampled hazard unsafe rate",
            (
                cmp.sampled_before.hazard_unsafe_rate,
                cmp.sampled_after.hazard_unsafe_rate,
            ),
        ),
        (
            "reasoning-step validity",
            (c.step_validity[0], c.step_validity[1]),
        ),
    ])
}
