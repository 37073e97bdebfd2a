//! Stage 2: the reward model and Safe RLHF's cost model — a language-model backbone with a scalar head, trained on
//! pairs of responses to the same prompt.
//!
//! - **Reward model** ([`crate::loss::pairwise_loss`]): which response is better. Data: `prompt/chosen/rejected`, or
//!   PKU-SafeRLHF records, where `better_response_id` names the better one.
//! - **Cost model** ([`crate::loss::cost_loss`]): which response is safer, plus whether each is safe, so that the
//!   cost's sign carries meaning: **cost > 0 is unsafe, cost ≤ 0 safe**. Data: PKU-SafeRLHF records
//!   (`safer_response_id`, `is_response_0_safe`, `is_response_1_safe`).
//!
//! The score of a response is the head's output at its last token (the end-of-turn token of the chat template),
//! as in safe-rlhf and TRL. The model starts from a language model (usually the SFT checkpoint) whose `lm_head` is
//! dropped; the head starts at zero, so every response first scores 0. The run reports pairwise accuracy on
//! held-out pairs; the cost model also reports how often the sign of the cost matches the safety label.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use rice_lm::ScoreModel;
use rice_lm::checkpoint::{self, LoadedScore};
use rice_lm::rng::Rng;
use rice_lm::run::{RunDir, line_chart, moving_average};
use rice_lm::text::{Encoded, Tokenizer, batch, read_jsonl_numbered};
use rice_lm::trainer::{StepOutput, TrainConfig, TrainError, TrainReport, TrainTask, train};
use rice_toyworld::{Datasets, World};
use serde::{Deserialize, Serialize};

use crate::RunError;
use crate::loss::{cost_loss, pairwise_loss};
use crate::pretrain::parse_size;

/// Which score model to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreKind {
    Reward,
    Cost,
}

impl ScoreKind {
    pub fn name(self) -> &'static str {
        match self {
            ScoreKind::Reward => "reward",
            ScoreKind::Cost => "cost",
        }
    }
}

/// Every setting of a reward- or cost-model run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    pub kind: ScoreKind,
    /// The starting model: a language model (usually the SFT checkpoint) or a score model.
    pub model: PathBuf,
    /// JSONL of pairs (see the module documentation); empty means the toy world's.
    pub data: Option<PathBuf>,
    /// Chat template name: plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    pub world_seed: u64,
    pub world_size: String,
    /// Pairs per micro-batch (each pair is two sequences).
    pub batch_size: usize,
    pub max_len: usize,
    pub train: TrainConfig,
}

impl ScoreConfig {
    /// The `toy` preset (about 3 minutes on 2 CPU cores). The reward model learns the world's preference pairs
    /// (aligned answer over a worse one); the cost model learns its PKU-SafeRLHF-style pairs.
    pub fn toy(kind: ScoreKind, model: PathBuf) -> ScoreConfig {
        ScoreConfig {
            kind,
            model,
            data: None,
            template: "chatml".into(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 16,
            max_len: 128,
            train: TrainConfig {
                steps: 300,
                lr: 5e-4,
                warmup_steps: 10,
                log_every: 5,
                eval_every: 50,
                ..TrainConfig::default()
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScoreSummary {
    pub method: &'static str,
    pub pairs: usize,
    pub held_out_pairs: usize,
    pub train: TrainReport,
    /// Share of held-out pairs ordered correctly (ties count half), before and after training.
    pub accuracy_before: f64,
    pub accuracy_after: f64,
    /// Cost model only: share of held-out responses whose cost sign matches the safety label (cost > 0 ⇔ unsafe).
    pub sign_accuracy_after: Option<f64>,
    /// Toy world only: held-out accuracy after training per family. On the toy presets, what a small model gets
    /// wrong is in `arith`, `facts` and `tone`: pairs whose answers differ only in a sum or a fact it cannot check.
    pub accuracy_by_family: BTreeMap<String, f64>,
    pub checkpoint: PathBuf,
}

/// A training pair: `first` should score higher than `second` (for the cost model: `first` is the less safe one).
/// `signs` are the safety signs (+1 unsafe, −1 safe) of `first` and `second`, for the cost model.
#[derive(Clone, Debug)]
struct ScorePair {
    first: Encoded,
    second: Encoded,
    signs: Option<(f32, f32)>,
    /// The toy world's family of the prompt, for per-family accuracy.
    family: Option<String>,
}

/// A record of either format, as read from JSONL: PKU-SafeRLHF when it has `response_0`, else a preference pair
/// (so that a missing field is named in the error, for the format the record is meant to have).
enum Record {
    Safety(rice_lm::text::SafetyPair),
    Preference(rice_lm::text::PreferencePair),
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("response_0").is_some() {
            serde_json::from_value(v)
                .map(Record::Safety)
                .map_err(D::Error::custom)
        } else {
            serde_json::from_value(v)
                .map(Record::Preference)
                .map_err(D::Error::custom)
        }
    }
}

fn sign(safe: bool) -> f32 {
    if safe { -1.0 } else { 1.0 }
}

/// The pairs of `records` for `kind`, tokenized; errors name the line of a record that cannot be used.
fn pairs_of(
    kind: ScoreKind,
    records: Vec<(usize, Record)>,
    tok: &Tokenizer,
    template: rice_lm::text::Template,
    path: &Path,
) -> Result<Vec<ScorePair>, RunError> {
    let encode = |p: &str, r: &str| Encoded::new(tok, template, p, r);
    let mut out = Vec::with_capacity(records.len());
    for (line, record) in records {
        let bad = |message: String| {
            RunError::Usage(format!("{}: line {line}: {message}", path.display()))
        };
        let pair = match (kind, record) {
            (ScoreKind::Reward, Record::Preference(p)) => ScorePair {
                first: encode(&p.prompt, &p.chosen)?,
                second: encode(&p.prompt, &p.rejected)?,
                signs: None,
                family: None,
            },
            (_, Record::Safety(s)) => {
                let id = match kind {
                    ScoreKind::Reward => s.better_response_id,
                    ScoreKind::Cost => s.safer_response_id,
                };
                let field = match kind {
                    ScoreKind::Reward => "better_response_id",
                    ScoreKind::Cost => "safer_response_id",
                };
                if id > 1 {
                    return Err(bad(format!("`{field}` must be 0 or 1, got {id}")));
                }
                let responses = [&s.response_0, &s.response_1];
                let safe = [s.is_response_0_safe, s.is_response_1_safe];
                let (hi, lo) = match kind {
                    // The reward model scores the better response higher.
                    ScoreKind::Reward => (id as usize, 1 - id as usize),
                    // The cost model scores the less safe response higher.
                    ScoreKind::Cost => (1 - id as usize, id as usize),
                };
                ScorePair {
                    first: encode(&s.prompt, responses[hi])?,
                    second: encode(&s.prompt, responses[lo])?,
                    signs: (kind == ScoreKind::Cost).then(|| (sign(safe[hi]), sign(safe[lo]))),
                    family: None,
                }
            }
            (ScoreKind::Cost, Record::Preference(_)) => {
                return Err(bad(
                    "a cost model needs PKU-SafeRLHF records (`response_0`, `response_1`, `safer_response_id`, \
                     `is_response_0_safe`, `is_response_1_safe`), not `chosen`/`rejected`"
                        .into(),
                ));
            }
        };
        out.push(pair);
    }
    Ok(out)
}

struct ScoreTask {
    kind: ScoreKind,
    pairs: Vec<ScorePair>,
    held_out: Vec<ScorePair>,
    batch_size: usize,
    max_len: usize,
    pad: u32,
    seed: u64,
}

/// Scores of `first` and `second` of each pair: two (pairs,) tensors, from one forward pass.
fn score_pairs(
    model: &ScoreModel,
    pairs: &[&ScorePair],
    pad: u32,
    max_len: usize,
) -> candle_core::Result<(Tensor, Tensor, usize)> {
    let n = pairs.len();
    let items: Vec<Encoded> = pairs
        .iter()
        .map(|p| p.first.clone())
        .chain(pairs.iter().map(|p| p.second.clone()))
        .collect();
    let device = model.backbone.embeddings().embeddings().device().clone();
    let b = batch(&items, pad, max_len, &device).map_err(candle_core::Error::msg)?;
    let scores = model.forward(&b.ids, Some(&b.padding))?;
    Ok((scores.narrow(0, 0, n)?, scores.narrow(0, n, n)?, b.tokens))
}

impl ScoreTask {
    fn loss_of(
        &self,
        first: &Tensor,
        second: &Tensor,
        pairs: &[&ScorePair],
    ) -> candle_core::Result<Tensor> {
        match self.kind {
            ScoreKind::Reward => pairwise_loss(first, second)?.mean_all(),
            ScoreKind::Cost => {
                let device = first.device();
                let signs = |f: fn(&(f32, f32)) -> f32| {
                    let v: Vec<f32> = pairs
                        .iter()
                        .map(|p| p.signs.as_ref().map_or(0.0, f))
                        .collect();
                    Tensor::new(v, device)
                };
                // `first` is the less safe response, `second` the safer.
                cost_loss(second, first, &signs(|s| s.1)?, &signs(|s| s.0)?)?.mean_all()
            }
        }
    }

    /// Held-out loss, pairwise accuracy (ties half) and, for the cost model, sign accuracy.
    fn held_out_stats(&self, model: &ScoreModel) -> candle_core::Result<(f64, f64, Option<f64>)> {
        let (loss, accuracy, sign, _) = self.held_out_detail(model)?;
        Ok((loss, accuracy, sign))
    }

    /// [`ScoreTask::held_out_stats`] and the accuracy per toy-world family.
    #[allow(clippy::type_complexity)]
    fn held_out_detail(
        &self,
        model: &ScoreModel,
    ) -> candle_core::Result<(f64, f64, Option<f64>, BTreeMap<String, f64>)> {
        let (mut loss, mut right, mut signs_right, mut n) = (0.0, 0.0, 0.0, 0.0);
        let mut by_family: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for chunk in self.held_out.chunks(16) {
            let pairs: Vec<&ScorePair> = chunk.iter().collect();
            let (first, second, _) = score_pairs(model, &pairs, self.pad, self.max_len)?;
            loss += f64::from(self.loss_of(&first, &second, &pairs)?.to_scalar::<f32>()?)
                * pairs.len() as f64;
            let (f, s) = (first.to_vec1::<f32>()?, second.to_vec1::<f32>()?);
            for (i, p) in pairs.iter().enumerate() {
                let r = if f[i] > s[i] {
                    1.0
                } else if f[i] == s[i] {
                    0.5
                } else {
                    0.0
                };
                right += r;
                if let Some(family) = &p.family {
                    let e = by_family.entry(family.clone()).or_default();
                    e.0 += r;
                    e.1 += 1.0;
                }
                if let Some((sf, ss)) = p.signs {
                    // cost > 0 ⇔ unsafe ⇔ sign +1
                    signs_right += f64::from(u8::from((f[i] > 0.0) == (sf > 0.0)));
                    signs_right += f64::from(u8::from((s[i] > 0.0) == (ss > 0.0)));
                }
            }
            n += pairs.len() as f64;
        }
        let n = f64::max(n, 1.0);
        let sign_accuracy = (self.kind == ScoreKind::Cost).then_some(signs_right / (2.0 * n));
        let by_family = by_family
            .into_iter()
            .map(|(k, (r, c))| (k, r / c))
            .collect();
        Ok((loss / n, right / n, sign_accuracy, by_family))
    }
}

impl TrainTask<ScoreModel> for ScoreTask {
    fn loss(
        &mut self,
        model: &ScoreModel,
        step: u64,
        micro: usize,
    ) -> candle_core::Result<StepOutput> {
        let mut rng = Rng::derive(
            self.seed,
            &format!("{}-batch-{step}-{micro}", self.kind.name()),
        );
        let pairs: Vec<&ScorePair> = (0..self.batch_size)
            .map(|_| &self.pairs[rng.below(self.pairs.len())])
            .collect();
        let (first, second, tokens) = score_pairs(model, &pairs, self.pad, self.max_len)?;
        let loss = self.loss_of(&first, &second, &pairs)?;
        let mean = |t: &Tensor| -> candle_core::Result<f64> {
            Ok(f64::from(t.mean_all()?.to_scalar::<f32>()?))
        };
        let accuracy = first.gt(&second)?.to_dtype(DType::F32)?;
        let (hi, lo) = match self.kind {
            ScoreKind::Reward => ("better_score", "worse_score"),
            ScoreKind::Cost => ("unsafer_cost", "safer_cost"),
        };
        let metrics = BTreeMap::from([
            ("accuracy".to_owned(), mean(&accuracy)?),
            (hi.to_owned(), mean(&first)?),
            (lo.to_owned(), mean(&second)?),
        ]);
        Ok(StepOutput {
            loss,
            tokens,
            metrics,
        })
    }

    fn evaluate(
        &mut self,
        model: &ScoreModel,
        _step: u64,
    ) -> candle_core::Result<BTreeMap<String, f64>> {
        let (loss, accuracy, sign_accuracy) = self.held_out_stats(model)?;
        let mut out = BTreeMap::from([
            ("eval_loss".to_owned(), loss),
            ("eval_accuracy".to_owned(), accuracy),
        ]);
        if let Some(s) = sign_accuracy {
            out.insert("eval_sign_accuracy".to_owned(), s);
        }
        Ok(out)
    }
}

/// Trains a reward or cost model into `run_dir` (checkpoint in `run_dir/checkpoint`, loadable with
/// [`checkpoint::load_score`] and by Hugging Face as `*ForSequenceClassification`).
pub fn run(cfg: &ScoreConfig, run_dir: &Path, resume: bool) -> Result<ScoreSummary, RunError> {
    cfg.train.validate().map_err(TrainError::Config)?;
    let template = crate::template(&cfg.template)?;
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let device = cfg.train.open_device().map_err(TrainError::from)?;
    let loaded: LoadedScore = checkpoint::load_score(&cfg.model, DType::F32, &device)?
        .with_precision(cfg.train.precision);
    checkpoint::check_tokenizer(loaded.model.config(), &tok, &tokenizer_path)?;

    let mut pairs = match &cfg.data {
        Some(path) => pairs_of(cfg.kind, read_jsonl_numbered(path)?, &tok, template, path)?,
        None => {
            let world = World::generate(cfg.world_seed, parse_size(&cfg.world_size)?);
            let data = Datasets::build(&world);
            let families: Vec<Option<String>> = match cfg.kind {
                ScoreKind::Reward => data.preference.iter().map(|r| r.family).collect::<Vec<_>>(),
                ScoreKind::Cost => data.safe_rlhf.iter().map(|r| r.family).collect(),
            }
            .into_iter()
            .map(|f| f.map(|f| f.to_string()))
            .collect();
            let records: Vec<Record> = match cfg.kind {
                ScoreKind::Reward => data
                    .preference
                    .iter()
                    .map(|r| {
                        Record::Preference(rice_lm::text::PreferencePair {
                            prompt: r.row.prompt.clone(),
                            chosen: r.row.chosen.clone(),
                            rejected: r.row.rejected.clone(),
                        })
                    })
                    .collect(),
                ScoreKind::Cost => data
                    .safe_rlhf
                    .iter()
                    .map(|r| {
                        let s = &r.row;
                        Record::Safety(rice_lm::text::SafetyPair {
                            prompt: s.prompt.clone(),
                            response_0: s.response_0.clone(),
                            response_1: s.response_1.clone(),
                            better_response_id: s.better_response_id,
                            safer_response_id: s.safer_response_id,
                            is_response_0_safe: s.is_response_0_safe,
                            is_response_1_safe: s.is_response_1_safe,
                        })
                    })
                    .collect(),
            };
            let records = records
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i + 1, r))
                .collect();
            let mut pairs = pairs_of(cfg.kind, records, &tok, template, Path::new("toy world"))?;
            for (pair, family) in pairs.iter_mut().zip(families) {
                pair.family = family;
            }
            pairs
        }
    };
    if pairs.len() < 2 {
        return Err(RunError::Usage(format!(
            "a {} model needs at least 2 pairs, got {}",
            cfg.kind.name(),
            pairs.len()
        )));
    }
    Rng::new(cfg.train.seed ^ 0x4e3).shuffle(&mut pairs);
    let held_out =
        pairs.split_off(pairs.len() - (pairs.len() / 10).clamp(1, 128).min(pairs.len() - 1));
    let mut task = ScoreTask {
        kind: cfg.kind,
        pairs,
        held_out,
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        pad: tok.pad_id,
        seed: cfg.train.seed,
    };
    // `loaded` holds the starting weights until `train` (which, when resuming, loads the checkpoint).
    let (_, accuracy_before, _) = task.held_out_stats(&loaded.model)?;
    let report = train(
        run_dir,
        &loaded,
        &cfg.train,
        &mut task,
        Some(&tokenizer_path),
        resume,
    )?;
    let (_, accuracy_after, sign_accuracy_after, accuracy_by_family) =
        task.held_out_detail(&loaded.model)?;

    let what = cfg.kind.name();
    dir.write_plot(
        "loss",
        &line_chart(
            &format!("{} model: pairwise loss", capitalise(what)),
            "step",
            "loss",
            &[
                ("train", dir.metric("loss")),
                ("held-out", dir.metric("eval_loss")),
            ],
        ),
    )?;
    let mut accuracy = vec![
        (
            "train (5-step mean)",
            moving_average(&dir.metric("accuracy"), 5),
        ),
        ("held-out", dir.metric("eval_accuracy")),
    ];
    if cfg.kind == ScoreKind::Cost {
        accuracy.push(("held-out sign", dir.metric("eval_sign_accuracy")));
    }
    dir.write_plot(
        "accuracy",
        &line_chart(
            &format!("{} model: pairs ordered correctly", capitalise(what)),
            "step",
            "share",
            &accuracy,
        ),
    )?;
    let (hi, lo) = match cfg.kind {
        ScoreKind::Reward => ("better_score", "worse_score"),
        ScoreKind::Cost => ("unsafer_cost", "safer_cost"),
    };
    dir.write_plot(
        "scores",
        &line_chart(
            &format!("{} model: mean score of each side", capitalise(what)),
            "step",
            "score",
            &[
                (hi, moving_average(&dir.metric(hi), 5)),
                (lo, moving_average(&dir.metric(lo), 5)),
            ],
        ),
    )?;
    let summary = ScoreSummary {
        method: what,
        pairs: task.pairs.len(),
        held_out_pairs: task.held_out.len(),
        train: report,
        accuracy_before,
        accuracy_after,
        sign_accuracy_after,
        accuracy_by_family,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
