//! Offline preference optimisation: train the policy directly on `prompt/chosen/rejected` pairs with one of the
//! losses of [`crate::loss`], against a frozen reference (the starting model).
//!
//! The algorithm, for each update:
//! 1. draw a batch of pairs; run the policy on the chosen and the rejected responses in one forward pass;
//! 2. sum (or average, for IPO and SimPO) the log-probabilities of the response tokens;
//! 3. take the reference's log-probabilities from the cache — computed once before training, because the
//!    reference never changes (and saved in the run directory, so a resumed run does not recompute them);
//! 4. the loss is the mean of the per-pair losses; log the implicit rewards, their margin and how often the chosen
//!    response has the higher one.
//!
//! On the toy world the pairs are, by default, *sampled from the starting model and labelled by the oracle* — as the
//! DPO paper builds its controlled experiments: for each training prompt, a few responses at temperature 1, the best
//! and the worst by the oracle's preference order become chosen and rejected (prompts whose samples tie are
//! skipped). The pairs are written to `pairs.jsonl` in the run directory. `toy_pairs = "world"` uses the world's fixed
//! preference pairs instead (aligned answer over a base or mixed one); from an SFT model already trained on those
//! aligned answers they teach little, and in our runs they lowered helpfulness (see the book's DPO lab). The run
//! reports the oracle's verdict on held-out prompts before and after, and the win rate of the trained model's answers
//! over the starting model's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use rice_lm::generate::{Sampling, generate_batch};
use rice_lm::rng::Rng;
use rice_lm::run::{RunDir, line_chart, moving_average};
use rice_lm::text::{Encoded, PreferencePair, Tokenizer, batch, read_jsonl, token_logprobs};
use rice_lm::trainer::{StepOutput, TrainConfig, TrainError, TrainReport, TrainTask, train};
use rice_lm::{CausalLm, checkpoint};
use rice_rlhf::RunError;
use rice_rlhf::toy::{Comparison, answers_if, load_world};
use rice_toyworld::{Datasets, World};
use serde::{Deserialize, Serialize};

use crate::loss::{LossConfig, LossKind, PairLogps};

/// Every setting of a preference-optimisation run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    /// The starting model (usually the SFT checkpoint); also the frozen reference.
    pub model: PathBuf,
    /// JSONL with `prompt`/`chosen`/`rejected`; empty means the toy world's preference pairs.
    pub data: Option<PathBuf>,
    /// Chat template name: plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    pub loss: LossConfig,
    /// Toy world only: `sampled` (pairs from the starting model's own samples, ranked by the oracle) or `world`
    /// (the world's fixed preference pairs).
    pub toy_pairs: String,
    /// `sampled` pairs: training prompts to sample for (0: all) and responses per prompt.
    pub sample_prompts: usize,
    pub samples_per_prompt: usize,
    pub world_seed: u64,
    pub world_size: String,
    /// Pairs per micro-batch (each pair is two sequences).
    pub batch_size: usize,
    pub max_len: usize,
    pub eval_prompts_per_family: usize,
    pub max_new_tokens: usize,
    pub train: TrainConfig,
}

impl DpoConfig {
    /// The `toy` preset: start from the helpful-only toy SFT model (which still answers some hazard requests) and
    /// optimise on pairs sampled from it and ranked by the oracle.
    pub fn toy(model: PathBuf, kind: LossKind) -> DpoConfig {
        DpoConfig {
            model,
            data: None,
            template: "chatml".into(),
            loss: LossConfig::new(kind),
            toy_pairs: "sampled".into(),
            sample_prompts: 0,
            samples_per_prompt: 4,
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            batch_size: 8,
            max_len: 128,
            eval_prompts_per_family: 24,
            max_new_tokens: 64,
            train: TrainConfig {
                steps: 120,
                // Higher rates widen the margin faster but wreck the tiny model's text (the chosen responses'
                // log-probabilities fall too, and greedy answers degrade): 2e-4 halved helpfulness in our runs.
                lr: 2e-5,
                warmup_steps: 10,
                log_every: 5,
                eval_every: 40,
                ..TrainConfig::default()
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DpoSummary {
    pub method: &'static str,
    pub loss: &'static str,
    pub pairs: usize,
    pub train: TrainReport,
    /// Held-out pairs: the chosen response's implicit reward minus the rejected one's, at the start (0 for the
    /// reference-based losses) and at the end.
    pub margin_before: f64,
    pub margin_after: f64,
    /// Share of held-out pairs whose chosen response has the higher implicit reward, at the end.
    pub accuracy_after: f64,
    /// The trained model against the starting model on held-out toy prompts, judged by the oracle (absent with
    /// `--data`).
    pub toy: Option<Comparison>,
    pub checkpoint: PathBuf,
}

/// A pair, tokenized, with the reference's log-probability sums and response lengths.
#[derive(Clone)]
struct Pair {
    chosen: Encoded,
    rejected: Encoded,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct RefLogps {
    chosen_sum: f32,
    rejected_sum: f32,
    chosen_tokens: u32,
    rejected_tokens: u32,
}

/// Log-probability sums of the response tokens and their counts for `items`, in chunks of `chunk` rows.
fn logps_of(
    model: &CausalLm,
    items: &[Encoded],
    pad: u32,
    max_len: usize,
) -> candle_core::Result<(Tensor, Tensor)> {
    let device = model.backbone.embeddings().embeddings().device().clone();
    let b = batch(items, pad, max_len, &device).map_err(candle_core::Error::msg)?;
    let logits = model.forward(&b.ids, Some(&b.padding))?;
    let sums = (token_logprobs(&logits, &b.ids)? * &b.response_mask)?.sum(1)?;
    let counts = b.response_mask.sum(1)?;
    Ok((sums, counts))
}

struct DpoTask {
    pairs: Vec<Pair>,
    refs: Vec<RefLogps>,
    held_out: Vec<Pair>,
    held_out_refs: Vec<RefLogps>,
    loss: LossConfig,
    batch_size: usize,
    max_len: usize,
    pad: u32,
    seed: u64,
}

impl DpoTask {
    /// Per-pair losses and rewards for `pairs` (with their reference values `refs`), and the response tokens seen.
    fn forward(
        &self,
        model: &CausalLm,
        pairs: &[&Pair],
        refs: &[RefLogps],
    ) -> candle_core::Result<(crate::loss::LossOutput, usize)> {
        let n = pairs.len();
        let items: Vec<Encoded> = pairs
            .iter()
            .map(|p| p.chosen.clone())
            .chain(pairs.iter().map(|p| p.rejected.clone()))
            .collect();
        let (sums, counts) = logps_of(model, &items, self.pad, self.max_len)?;
        let tokens = counts.sum_all()?.to_scalar::<f32>()? as usize;
        let policy = if self.loss.kind.length_normalised() {
            (sums / counts.clamp(1f32, f32::MAX)?)?
        } else {
            sums
        };
        let device = policy.device().clone();
        let reference = |f: &dyn Fn(&RefLogps) -> f32| {
            Tensor::new(refs.iter().map(f).collect::<Vec<f32>>(), &device)
        };
        let norm = self.loss.kind.length_normalised();
        let per = |sum: f32, count: u32| if norm { sum / count.max(1) as f32 } else { sum };
        let logps = PairLogps {
            chosen: policy.narrow(0, 0, n)?,
            rejected: policy.narrow(0, n, n)?,
            ref_chosen: reference(&|r| per(r.chosen_sum, r.chosen_tokens))?,
            ref_rejected: reference(&|r| per(r.rejected_sum, r.rejected_tokens))?,
        };
        Ok((self.loss.compute(&logps)?, tokens))
    }

    /// Mean loss, mean reward margin and accuracy over the held-out pairs.
    fn held_out_stats(&self, model: &CausalLm) -> candle_core::Result<(f64, f64, f64)> {
        let (mut loss, mut margin, mut right, mut n) = (0.0, 0.0, 0.0, 0.0);
        for (chunk, refs) in self.held_out.chunks(16).zip(self.held_out_refs.chunks(16)) {
            let pairs: Vec<&Pair> = chunk.iter().collect();
            let (out, _) = self.forward(model, &pairs, refs)?;
            let m = (&out.chosen_rewards - &out.rejected_rewards)?.to_vec1::<f32>()?;
            loss += f64::from(out.losses.sum_all()?.to_scalar::<f32>()?);
            margin += m.iter().map(|&x| f64::from(x)).sum::<f64>();
            right += m.iter().filter(|&&x| x > 0.0).count() as f64;
            n += m.len() as f64;
        }
        let n = f64::max(n, 1.0);
        Ok((loss / n, margin / n, right / n))
    }
}

impl TrainTask for DpoTask {
    fn loss(
        &mut self,
        model: &CausalLm,
        step: u64,
        micro: usize,
    ) -> candle_core::Result<StepOutput> {
        let mut rng = Rng::derive(self.seed, &format!("dpo-batch-{step}-{micro}"));
        let picks: Vec<usize> = (0..self.batch_size)
            .map(|_| rng.below(self.pairs.len()))
            .collect();
        let pairs: Vec<&Pair> = picks.iter().map(|&i| &self.pairs[i]).collect();
        let refs: Vec<RefLogps> = picks.iter().map(|&i| self.refs[i]).collect();
        let (out, tokens) = self.forward(model, &pairs, &refs)?;
        let mean = |t: &Tensor| -> candle_core::Result<f64> {
            Ok(f64::from(t.mean_all()?.to_scalar::<f32>()?))
        };
        let margins = (&out.chosen_rewards - &out.rejected_rewards)?;
        let accuracy = margins.gt(0f32)?.to_dtype(DType::F32)?;
        let metrics = BTreeMap::from([
            ("chosen_reward".to_owned(), mean(&out.chosen_rewards)?),
            ("rejected_reward".to_owned(), mean(&out.rejected_rewards)?),
            ("reward_margin".to_owned(), mean(&margins)?),
            ("reward_accuracy".to_owned(), mean(&accuracy)?),
        ]);
        Ok(StepOutput {
            loss: out.losses.mean_all()?,
            tokens,
            metrics,
        })
    }

    fn evaluate(
        &mut self,
        model: &CausalLm,
        _step: u64,
    ) -> candle_core::Result<BTreeMap<String, f64>> {
        let (loss, margin, accuracy) = self.held_out_stats(model)?;
        Ok(BTreeMap::from([
            ("eval_loss".to_owned(), loss),
            ("eval_reward_margin".to_owned(), margin),
            ("eval_reward_accuracy".to_owned(), accuracy),
        ]))
    }
}

/// The reference's log-probabilities of every pair, computed with `model` (the starting weights) in batches, or
/// read from `cache` when resuming and it holds them for the same number of pairs.
fn reference_logps(
    model: &CausalLm,
    pairs: &[Pair],
    pad: u32,
    max_len: usize,
    cache: &Path,
    resume: bool,
) -> Result<Vec<RefLogps>, RunError> {
    // Only a resumed run may trust the cache: a fresh run in the same directory may start from another model.
    if resume
        && let Ok(text) = std::fs::read_to_string(cache)
        && let Ok(refs) = serde_json::from_str::<Vec<RefLogps>>(&text)
        && refs.len() == pairs.len()
    {
        return Ok(refs);
    }
    let mut refs = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(16) {
        let items: Vec<Encoded> = chunk
            .iter()
            .map(|p| p.chosen.clone())
            .chain(chunk.iter().map(|p| p.rejected.clone()))
            .collect();
        let (sums, counts) = logps_of(model, &items, pad, max_len)?;
        let (sums, counts) = (sums.to_vec1::<f32>()?, counts.to_vec1::<f32>()?);
        let n = chunk.len();
        refs.extend((0..n).map(|i| RefLogps {
            chosen_sum: sums[i],
            rejected_sum: sums[n + i],
            chosen_tokens: counts[i] as u32,
            rejected_tokens: counts[n + i] as u32,
        }));
    }
    let json = serde_json::to_vec(&refs).expect("numbers serialise");
    checkpoint::write_atomic(cache, &json)?;
    Ok(refs)
}

/// On-policy pairs: `samples_per_prompt` responses of `model` at temperature 1 to each training prompt, best and
/// worst by the oracle's preference order (a safe answer beats an unsafe one, then the more helpful wins).
fn sample_pairs(
    model: &CausalLm,
    tok: &Tokenizer,
    template: rice_lm::text::Template,
    world: &World,
    data: &Datasets,
    cfg: &DpoConfig,
) -> Result<Vec<PreferencePair>, RunError> {
    let mut prompts: Vec<&str> = data.sft.iter().map(|r| r.row.prompt.as_str()).collect();
    Rng::new(cfg.train.seed ^ 0x5a3).shuffle(&mut prompts);
    if cfg.sample_prompts > 0 {
        prompts.truncate(cfg.sample_prompts);
    }
    let k = cfg.samples_per_prompt.max(2);
    let mut pairs = Vec::new();
    // About 64 sequences per generation batch.
    for (c, chunk) in prompts.chunks((64 / k).max(1)).enumerate() {
        let ids = chunk
            .iter()
            .map(|p| tok.encode(&template.prompt(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let repeated: Vec<Vec<u32>> = ids
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.clone(), k))
            .collect();
        let sampling = Sampling {
            temperature: 1.0,
            max_new_tokens: cfg.max_new_tokens,
            seed: cfg.train.seed.wrapping_add(c as u64),
            ..Sampling::default()
        };
        let out = generate_batch(model, tok, &repeated, &sampling, &[template.end()])?;
        for (i, prompt) in chunk.iter().enumerate() {
            let scored: Vec<(String, rice_toyworld::Score)> = out[i * k..(i + 1) * k]
                .iter()
                .map(|g| {
                    let text = g.text.trim().to_owned();
                    let score = world.score(prompt, &text);
                    (text, score)
                })
                .collect();
            let best = scored.iter().max_by(|a, b| a.1.preference(&b.1));
            let worst = scored.iter().min_by(|a, b| a.1.preference(&b.1));
            if let (Some(best), Some(worst)) = (best, worst)
                && best.1.preference(&worst.1).is_gt()
            {
                pairs.push(PreferencePair {
                    prompt: (*prompt).to_owned(),
                    chosen: best.0.clone(),
                    rejected: worst.0.clone(),
                });
            }
        }
    }
    Ok(pairs)
}

pub fn run(cfg: &DpoConfig, run_dir: &Path, resume: bool) -> Result<DpoSummary, RunError> {
    cfg.loss
        .validate()
        .map_err(|e| RunError::Usage(format!("loss: {e}")))?;
    // Before the reference log-probabilities and the toy evaluation, which take a while.
    cfg.train.validate().map_err(TrainError::Config)?;
    let template = rice_rlhf::template(&cfg.template)?;
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let device = cfg.train.open_device().map_err(TrainError::from)?;
    let loaded =
        checkpoint::load(&cfg.model, DType::F32, &device)?.with_precision(cfg.train.precision);
    checkpoint::check_tokenizer(loaded.model.config(), &tok, &tokenizer_path)?;

    let toy = cfg
        .data
        .is_none()
        .then(|| load_world(cfg.world_seed, &cfg.world_size))
        .transpose()?;
    let raw: Vec<PreferencePair> = match (&cfg.data, &toy) {
        (Some(path), _) => read_jsonl(path)?,
        (None, Some((world, data))) => match cfg.toy_pairs.as_str() {
            "world" => data
                .preference
                .iter()
                .map(|r| PreferencePair {
                    prompt: r.row.prompt.clone(),
                    chosen: r.row.chosen.clone(),
                    rejected: r.row.rejected.clone(),
                })
                .collect(),
            "sampled" => {
                let cache = run_dir.join("pairs.jsonl");
                match (resume, read_jsonl::<PreferencePair>(&cache)) {
                    (true, Ok(pairs)) => pairs,
                    _ => {
                        let pairs = sample_pairs(&loaded.model, &tok, template, world, data, cfg)?;
                        let lines: String = pairs
                            .iter()
                            .map(|p| {
                                serde_json::json!({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected})
                                    .to_string()
                                    + "\n"
                            })
                            .collect();
                        checkpoint::write_atomic(&cache, lines.as_bytes())?;
                        pairs
                    }
                }
            }
            other => {
                return Err(RunError::Usage(format!(
                    "toy_pairs must be `sampled` or `world`, got `{other}`"
                )));
            }
        },
        (None, None) => unreachable!("toy data exists when no file is given"),
    };
    let mut pairs = raw
        .iter()
        .map(|p| {
            Ok(Pair {
                chosen: Encoded::new(&tok, template, &p.prompt, &p.chosen)?,
                rejected: Encoded::new(&tok, template, &p.prompt, &p.rejected)?,
            })
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    if pairs.len() < 2 {
        return Err(RunError::Usage(format!(
            "preference optimisation needs at least 2 pairs, got {}",
            pairs.len()
        )));
    }
    Rng::new(cfg.train.seed ^ 0xd90).shuffle(&mut pairs);
    let held_out =
        pairs.split_off(pairs.len() - (pairs.len() / 20).clamp(1, 64).min(pairs.len() - 1));

    let answers = |model: &CausalLm| {
        answers_if(
            toy.as_ref(),
            model,
            &tok,
            cfg.eval_prompts_per_family,
            cfg.max_new_tokens,
        )
    };
    // `loaded` holds the starting weights until `train` (which, when resuming, loads the checkpoint).
    let start_answers = answers(&loaded.model)?;
    let refs = reference_logps(
        &loaded.model,
        &pairs,
        tok.pad_id,
        cfg.max_len,
        &run_dir.join("reference_logps.json"),
        resume,
    )?;
    let held_out_refs = reference_logps(
        &loaded.model,
        &held_out,
        tok.pad_id,
        cfg.max_len,
        &run_dir.join("reference_logps_held_out.json"),
        resume,
    )?;
    let mut task = DpoTask {
        pairs,
        refs,
        held_out,
        held_out_refs,
        loss: cfg.loss.clone(),
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        pad: tok.pad_id,
        seed: cfg.train.seed,
    };
    let (_, margin_before, _) = task.held_out_stats(&loaded.model)?;
    let count = task.pairs.len();
    let report = train(
        run_dir,
        &loaded,
        &cfg.train,
        &mut task,
        Some(&tokenizer_path),
        resume,
    )?;
    let (_, margin_after, accuracy_after) = task.held_out_stats(&loaded.model)?;
    let end_answers = answers(&loaded.model)?;

    let comparison = match (&start_answers, &end_answers) {
        (Some(b), Some(a)) => Some(Comparison::new(b, a)),
        _ => None,
    };
    let name = cfg.loss.kind.name();
    // Per-step values come from a few pairs each: the train series are plotted as 5-step moving averages.
    let smooth = |key: &str| moving_average(&dir.metric(key), 5);
    dir.write_plot(
        "loss",
        &line_chart(
            &format!("Preference optimisation ({name} loss)"),
            "step",
            "loss",
            &[
                ("train", dir.metric("loss")),
                ("held-out", dir.metric("eval_loss")),
            ],
        ),
    )?;
    dir.write_plot(
        "rewards",
        &line_chart(
            "Implicit rewards of chosen and rejected responses",
            "step",
            "reward",
            &[
                ("chosen (5-step mean)", smooth("chosen_reward")),
                ("rejected (5-step mean)", smooth("rejected_reward")),
                ("margin (5-step mean)", smooth("reward_margin")),
                ("held-out margin", dir.metric("eval_reward_margin")),
            ],
        ),
    )?;
    dir.write_plot(
        "accuracy",
        &line_chart(
            "Pairs whose chosen response has the higher implicit reward",
            "step",
            "share of pairs",
            &[
                ("train (5-step mean)", smooth("reward_accuracy")),
                ("held-out", dir.metric("eval_reward_accuracy")),
            ],
        ),
    )?;
    let summary = DpoSummary {
        method: "dpo",
        loss: name,
        pairs: count,
        train: report,
        margin_before,
        margin_after,
        accuracy_after,
        toy: comparison,
        checkpoint: rice_lm::trainer::checkpoint_dir(run_dir),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
