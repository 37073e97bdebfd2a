//! Training on `{question, prefix, last, correction}` and the toy-world evaluation: `rice run stream-aligner`.
//!
//! The aligner learns to write the revision of the last sentence given the question and the (already corrected)
//! prefix; the loss counts the revision tokens only. A tuple whose revision completes the answer (`end`, or on the
//! toy world: prefix + revision is the whole ideal answer) also teaches the end marker, which is how the loop knows
//! to stop. The evaluation runs the loop on held-out prompts with the upstream model and compares the result with
//! the upstream's own greedy answers: helpfulness, unsafe rate, and reasoning-step validity, the share of arithmetic
//! sentences that are correct steps.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use rice_aligner::local::LocalModel;
use rice_aligner::openai::ChatMessage;
use rice_aligner::train::{step_validity, upstream_answers};

use crate::split::split_sentences;
use rice_lm::checkpoint;
use rice_lm::run::RunDir;
use rice_lm::text::{Encoded, Tokenizer, read_jsonl};
use rice_lm::trainer::{TrainConfig, TrainError, TrainReport};
use rice_rlhf::RunError;
use rice_rlhf::sft::{Supervised, train_supervised};
use rice_rlhf::toy::{
    Answer, ToyMetrics, WinRate, answer_all, greedy, load_world, metrics, win_rate,
};
use rice_toyworld::{Datasets, Split, World};
use serde::{Deserialize, Serialize};

use crate::stream::{StreamAligner, StreamSettings, correct_stream, input, target};

/// One training tuple. `end` (also read as `eos`) marks a revision that completes the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuple {
    pub question: String,
    pub prefix: String,
    pub last: String,
    pub correction: String,
    #[serde(default, alias = "eos")]
    pub end: bool,
}

/// Every setting of a Stream Aligner run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamAlignerConfig {
    /// The aligner's starting checkpoint.
    pub model: PathBuf,
    /// Toy world only: the upstream model the loop corrects in the evaluation.
    pub upstream: Option<PathBuf>,
    /// JSONL of `{question, prefix, last, correction, end?}`; empty means the toy world's tuples.
    pub data: Option<PathBuf>,
    /// The aligner's (and, on the toy world, the upstream's) chat template.
    pub template: String,
    pub world_seed: u64,
    pub world_size: String,
    pub batch_size: usize,
    pub max_len: usize,
    pub eval_prompts_per_family: usize,
    /// Tokens per revision, and per upstream sentence.
    pub max_new_tokens: usize,
    pub max_rounds: usize,
    /// Toy world: also train on the upstream's own sentences for this many training prompts, each revised to the
    /// ideal sentence at its place (on-policy data, as the paper's; 0 for the world's fixed tuples only).
    pub upstream_examples: usize,
    pub train: TrainConfig,
}

impl StreamAlignerConfig {
    /// The `toy` preset: a toy-xs aligner corrects the toy-s base model sentence by sentence.
    pub fn toy(model: PathBuf, upstream: Option<PathBuf>) -> StreamAlignerConfig {
        StreamAlignerConfig {
            model,
            upstream,
            data: None,
            template: "chatml".into(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 16,
            max_len: 192,
            eval_prompts_per_family: 12,
            max_new_tokens: 48,
            max_rounds: crate::stream::DEFAULT_MAX_ROUNDS,
            upstream_examples: 1000,
            train: TrainConfig {
                steps: 2000,
                lr: 2e-3,
                warmup_steps: 20,
                log_every: 10,
                eval_every: 100,
                ..TrainConfig::default()
            },
        }
    }
}

/// The upstream alone against the upstream with Stream Aligner, on held-out toy prompts (greedy).
#[derive(Debug, Serialize)]
pub struct StreamEvaluation {
    pub upstream: PathBuf,
    pub before: ToyMetrics,
    pub after: ToyMetrics,
    /// Share of valid sentences in answers to reasoning prompts: upstream, then corrected.
    pub step_validity: [f64; 2],
    pub win_rate: WinRate,
    pub mean_rounds: f64,
    /// How often each stop rule ended the loop.
    pub stops: BTreeMap<String, usize>,
    /// Mean seconds to the first revised sentence and to the whole corrected answer.
    pub first_sentence_seconds: f64,
    pub answer_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct StreamAlignerSummary {
    pub method: &'static str,
    pub examples: usize,
    pub train: TrainReport,
    pub evaluation: Option<StreamEvaluation>,
    pub checkpoint: PathBuf,
}

/// The toy world's tuples, with `end` set where prefix + revision is the whole ideal answer.
pub fn toy_tuples(world: &World, data: &Datasets) -> Vec<Tuple> {
    let ideal: HashMap<&str, String> = world
        .items_in(Split::Train)
        .map(|item| (item.prompt.as_str(), world.ideal(item)))
        .collect();
    data.stream_aligner
        .iter()
        .map(|r| {
            let r = &r.row;
            let whole = format!("{} {}", r.prefix, r.correction);
            Tuple {
                question: r.question.clone(),
                prefix: r.prefix.clone(),
                last: r.last.clone(),
                correction: r.correction.clone(),
                end: ideal
                    .get(r.question.as_str())
                    .is_some_and(|i| i.trim() == whole.trim()),
            }
        })
        .collect()
}

/// Tuples from the upstream's answers: its `i`-th sentence, after the ideal first `i` sentences, is revised to the
/// ideal `i`-th sentence.
pub fn upstream_tuples(world: &World, answers: &[(String, String)]) -> Vec<Tuple> {
    let mut out = Vec::new();
    for (question, answer) in answers {
        let Some(item) = world.find(question) else {
            continue;
        };
        let ideal = world.ideal_sentences(item);
        for (i, last) in split_sentences(answer)
            .into_iter()
            .enumerate()
            .take(ideal.len())
        {
            out.push(Tuple {
                question: question.clone(),
                prefix: ideal[..i].join(" "),
                last,
                correction: ideal[i].clone(),
                end: i + 1 == ideal.len(),
            });
        }
    }
    out
}

pub fn run(
    cfg: &StreamAlignerConfig,
    run_dir: &Path,
    resume: bool,
) -> Result<StreamAlignerSummary, RunError> {
    let template = rice_rlhf::template(&cfg.template)?;
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
    let tuples: Vec<Tuple> = match (&cfg.data, &toy) {
        (Some(path), _) => read_jsonl(path)?,
        (None, Some((world, data))) => {
            let mut tuples = toy_tuples(world, data);
            if let (Some(upstream), n @ 1..) = (&cfg.upstream, cfg.upstream_examples) {
                let answers =
                    upstream_answers(upstream, world, n, cfg.max_new_tokens * 2, &device, frozen)?;
                tuples.extend(upstream_tuples(world, &answers));
            }
            tuples
        }
        (None, None) => unreachable!("toy data exists when no file is given"),
    };
    let examples = tuples
        .iter()
        .map(|t| {
            Ok(Encoded {
                prompt: tok.encode(&template.prompt(&input(&t.question, &t.prefix, &t.last)))?,
                response: tok.encode(&target(template, &t.correction, t.end))?,
            })
        })
        .collect::<Result<Vec<_>, rice_lm::text::TextError>>()?;
    let (report, count) = train_supervised(
        run_dir,
        &loaded,
        &tokenizer_path,
        examples,
        &cfg.train,
        resume,
        &Supervised {
            tag: "stream-aligner",
            salt: 0x57a,
            batch_size: cfg.batch_size,
            max_len: cfg.max_len,
            pad: tok.pad_id,
            title: "Stream Aligner: sentence revision training",
            y_label: "revision loss",
        },
    )?;
    let evaluation = match (&toy, &cfg.upstream) {
        (Some((world, data)), Some(upstream)) => {
            let aligner = StreamAligner {
                id: "stream-aligner".into(),
                model: loaded.model.clone(),
                tok,
                template,
                max_new_tokens: cfg.max_new_tokens,
            };
            let on = (&device, frozen);
            Some(evaluate(cfg, world, data, upstream, &aligner, run_dir, on)?)
        }
        _ => None,
    };
    let summary = StreamAlignerSummary {
        method: "stream-aligner",
        examples: count,
        train: report,
        evaluation,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}

fn evaluate(
    cfg: &StreamAlignerConfig,
    world: &World,
    data: &Datasets,
    upstream_dir: &Path,
    aligner: &StreamAligner,
    run_dir: &Path,
    (device, dtype): (&Device, DType),
) -> Result<StreamEvaluation, RunError> {
    // The upstream answers in the aligner's chat template.
    let upstream = LocalModel::load_on(upstream_dir, aligner.template, device, dtype)
        .map_err(RunError::Usage)?;
    let original = answer_all(
        &upstream.model,
        &upstream.tok,
        world,
        data,
        cfg.eval_prompts_per_family,
        &greedy(cfg.max_new_tokens * 2),
        1,
    )?;
    let settings = StreamSettings {
        max_rounds: cfg.max_rounds,
        sentence_max_tokens: cfg.max_new_tokens,
        ..StreamSettings::default()
    };
    let mut rows = Vec::with_capacity(original.len());
    let mut corrected = Vec::with_capacity(original.len());
    let mut stops: BTreeMap<String, usize> = BTreeMap::new();
    let (mut rounds, mut first, mut whole) = (0usize, 0.0, 0.0);
    for o in &original {
        let messages = [ChatMessage::new("user", &o.prompt)];
        let out = correct_stream(&upstream, aligner, &messages, &settings, &mut |_| true)
            .map_err(|e| RunError::Usage(e.to_string()))?;
        rounds += out.rounds.len();
        first += out.first_sentence_seconds.unwrap_or(out.seconds);
        whole += out.seconds;
        let stop = serde_json::to_value(out.stop)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        *stops.entry(stop.unwrap_or_default()).or_default() += 1;
        let score = world.score(&o.prompt, &out.text);
        let line = serde_json::json!({
            "family": o.family.as_str(),
            "question": o.prompt,
            "answer": o.answer,
            "corrected": out.text,
            "rounds": out.rounds,
            "stop": out.stop,
            "answer_helpfulness": o.score.helpfulness,
            "corrected_helpfulness": score.helpfulness,
        });
        rows.push(line);
        corrected.push(Answer {
            family: o.family,
            prompt: o.prompt.clone(),
            answer: out.text,
            score,
        });
    }
    RunDir::create(run_dir)?.write_jsonl("corrections.jsonl", &rows)?;
    let n = original.len().max(1) as f64;
    Ok(StreamEvaluation {
        upstream: upstream_dir.to_owned(),
        before: metrics(&original),
        after: metrics(&corrected),
        step_validity: [step_validity(&original), step_validity(&corrected)],
        win_rate: win_rate(&corrected, &original),
        mean_rounds: rounds as f64 / n,
        stops,
        first_sentence_seconds: first / n,
        answer_seconds: whole / n,
    })
}
