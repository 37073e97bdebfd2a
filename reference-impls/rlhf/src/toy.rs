//! Measuring a model on the toy world: greedy answers to held-out prompts, scored by the exact oracle.

use std::collections::BTreeMap;

use rice_lm::CausalLm;
use rice_lm::generate::{Sampling, generate_batch};
use rice_lm::text::{Template, Tokenizer};
use rice_toyworld::{Datasets, Family, World};
use serde::{Deserialize, Serialize};

/// Oracle metrics for one family of prompts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyMetrics {
    pub prompts: usize,
    /// Mean helpfulness in [0, 1].
    pub helpfulness: f64,
    /// Share of answers the oracle finds unsafe.
    pub unsafe_rate: f64,
    /// Share of answers that refuse.
    pub refusal_rate: f64,
    /// Share of answers whose checkable claims are all true (among answers that made a claim).
    pub truthful_rate: Option<f64>,
}

/// Oracle metrics over held-out prompts, per family and overall, with a few sample answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToyMetrics {
    pub helpfulness: f64,
    /// Unsafe answers among hazard prompts: what alignment should lower.
    pub hazard_unsafe_rate: f64,
    /// Refusals among harmless look-alike prompts: over-refusal, which alignment should not raise.
    pub lookalike_refusal_rate: f64,
    pub families: BTreeMap<String, FamilyMetrics>,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub family: String,
    pub prompt: String,
    pub answer: String,
    pub helpfulness: f32,
    #[serde(rename = "unsafe")]
    pub is_unsafe: bool,
}

/// One held-out prompt, a model's greedy answer and the oracle's verdict.
#[derive(Clone, Debug)]
pub struct Answer {
    pub family: Family,
    pub prompt: String,
    pub answer: String,
    pub score: rice_toyworld::Score,
}

/// Answers `per_family` held-out prompts of every family greedily and scores them.
pub fn evaluate(
    model: &CausalLm,
    tok: &Tokenizer,
    world: &World,
    data: &Datasets,
    per_family: usize,
    max_new_tokens: usize,
) -> candle_core::Result<ToyMetrics> {
    Ok(metrics(&answer_all(
        model,
        tok,
        world,
        data,
        per_family,
        &greedy(max_new_tokens),
        1,
    )?))
}

/// Greedy decoding of up to `max_new_tokens`.
pub fn greedy(max_new_tokens: usize) -> Sampling {
    Sampling {
        max_new_tokens,
        ..Sampling::default()
    }
}

/// The answers of `model` to the first `per_family` held-out prompts of every family, each prompt answered
/// `repeats` times in a row (use sampling for more than one), scored. Two models given the same `sampling` draw
/// their samples from the same random streams, which makes their win rate less noisy.
pub fn answer_all(
    model: &CausalLm,
    tok: &Tokenizer,
    world: &World,
    data: &Datasets,
    per_family: usize,
    sampling: &Sampling,
    repeats: usize,
) -> candle_core::Result<Vec<Answer>> {
    let mut out = Vec::new();
    for family in Family::ALL {
        let rows: Vec<_> = data
            .eval
            .iter()
            .filter(|r| r.family == Some(family))
            .take(per_family)
            .flat_map(|r| std::iter::repeat_n(r, repeats.max(1)))
            .collect();
        let prompts = rows
            .iter()
            .map(|r| tok.encode(&Template::ChatMl.prompt(&r.row.prompt)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(candle_core::Error::msg)?;
        // One batch per family: left-padded batched decoding gives the same greedy answers as one at a time.
        let answers = generate_batch(
            model,
            tok,
            &prompts,
            sampling,
            &["<|im_end|>", "<|im_start|>"],
        )?;
        for (row, answer) in rows.iter().zip(answers) {
            let answer = answer.text.trim().to_owned();
            let score = world.score(&row.row.prompt, &answer);
            out.push(Answer {
                family,
                prompt: row.row.prompt.clone(),
                answer,
                score,
            });
        }
    }
    Ok(out)
}

/// How often one model's answers beat another's on the same prompts, by the oracle's preference order (a safe
/// answer beats an unsafe one, then the more helpful wins).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
    /// (wins + ties / 2) / prompts: 0.5 means no better, no worse.
    pub rate: f64,
    /// wins / (wins + losses): the rate among prompts where the answers differ in quality.
    pub decisive_rate: Option<f64>,
}

/// The win rate of `candidate` over `baseline`; both must answer the same prompts in the same order.
pub fn win_rate(candidate: &[Answer], baseline: &[Answer]) -> WinRate {
    let mut w = WinRate::default();
    for (c, b) in candidate.iter().zip(baseline) {
        debug_assert_eq!(
            c.prompt, b.prompt,
            "win rates compare answers to the same prompt"
        );
        match c.score.preference(&b.score) {
            std::cmp::Ordering::Greater => w.wins += 1,
            std::cmp::Ordering::Equal => w.ties += 1,
            std::cmp::Ordering::Less => w.losses += 1,
        }
    }
    let n = w.wins + w.ties + w.losses;
    w.rate = (w.wins as f64 + w.ties as f64 / 2.0) / n.max(1) as f64;
    w.decisive_rate = (w.wins + w.losses > 0).then(|| w.wins as f64 / (w.wins + w.losses) as f64);
    w
}

/// Oracle metrics over scored answers, per family and overall, with the first answer of each family as a sample.
pub fn metrics(answers: &[Answer]) -> ToyMetrics {
    let mut scores: BTreeMap<Family, Vec<rice_toyworld::Score>> = BTreeMap::new();
    let mut samples = Vec::new();
    for a in answers {
        let list = scores.entry(a.family).or_default();
        if list.is_empty() {
            samples.push(Sample {
                family: a.family.to_string(),
                prompt: a.prompt.clone(),
                answer: a.answer.clone(),
                helpfulness: a.score.helpfulness,
                is_unsafe: a.score.is_unsafe,
            });
        }
        list.push(a.score.clone());
    }
    let rate = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let mut families = BTreeMap::new();
    let (mut help_sum, mut count) = (0.0, 0);
    for (family, list) in &scores {
        let claims: Vec<bool> = list.iter().filter_map(|s| s.truthful).collect();
        families.insert(
            family.to_string(),
            FamilyMetrics {
                prompts: list.len(),
                helpfulness: list.iter().map(|s| f64::from(s.helpfulness)).sum::<f64>()
                    / list.len().max(1) as f64,
                unsafe_rate: rate(list.iter().filter(|s| s.is_unsafe).count(), list.len()),
                refusal_rate: rate(list.iter().filter(|s| s.refused).count(), list.len()),
                truthful_rate: (!claims.is_empty())
                    .then(|| rate(claims.iter().filter(|t| **t).count(), claims.len())),
            },
        );
        help_sum += list.iter().map(|s| f64::from(s.helpfulness)).sum::<f64>();
        count += list.len();
    }
    let of = |f: Family| families.get(f.as_str()).cloned().unwrap_or_default();
    ToyMetrics {
        helpfulness: help_sum / count.max(1) as f64,
        hazard_unsafe_rate: of(Family::Hazard).unsafe_rate,
        lookalike_refusal_rate: of(Family::Lookalike).refusal_rate,
        families,
        samples,
    }
}

/// The start of the later stages on the toy world: a `preset` model pre-trained for `pretrain_steps` and
/// fine-tuned with SFT on the demonstrations of `families` (empty: all) for `sft_steps`, in `dir` (the SFT checkpoint is `dir/sft/checkpoint`), made unless a finished
/// one is already there. Built in a temporary directory and renamed into place, so an interrupted build leaves
/// nothing that looks finished. Tests share one start this way instead of each training their own.
pub fn sft_start(
    dir: &std::path::Path,
    preset: &str,
    pretrain_steps: u64,
    sft_steps: u64,
    families: &[&str],
) -> Result<std::path::PathBuf, crate::RunError> {
    let checkpoint = dir.join("sft").join("checkpoint");
    if checkpoint.join("config.json").is_file() {
        return Ok(checkpoint);
    }
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut base = crate::pretrain::PretrainConfig::preset(preset)
        .ok_or_else(|| crate::RunError::Usage(format!("unknown preset `{preset}`")))?;
    base.train.steps = pretrain_steps;
    crate::pretrain::run(&base, &tmp.join("pretrain"), false)?;
    let mut sft = crate::sft::SftConfig::toy(tmp.join("pretrain").join("checkpoint"));
    sft.train.steps = sft_steps;
    sft.families = families.iter().map(|f| f.to_string()).collect();
    crate::sft::run(&sft, &tmp.join("sft"), false)?;
    // The SFT config names the pre-trained checkpoint by its temporary path; nothing reads it after this.
    let io = |source| {
        crate::RunError::Run(rice_lm::run::RunError::Io {
            path: dir.to_owned(),
            source,
        })
    };
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(io)?;
    Ok(checkpoint)
}

/// A model's answers to the held-out prompts, greedy and sampled, for comparing it with another model.
pub struct Answers {
    pub greedy: Vec<Answer>,
    /// [`SAMPLED_REPEATS`] samples per prompt at temperature 1.
    pub sampled: Vec<Answer>,
}

/// The toy world of `seed` and `size` (`small` or `medium`) with its datasets.
pub fn load_world(seed: u64, size: &str) -> Result<(World, Datasets), crate::RunError> {
    let world = World::generate(seed, crate::pretrain::parse_size(size)?);
    let data = Datasets::build(&world);
    Ok((world, data))
}

/// `model`'s [`Answers`] on the toy world `toy`, or `None` for a run on a data file (no oracle to judge it).
pub fn answers_if(
    toy: Option<&(World, Datasets)>,
    model: &CausalLm,
    tok: &Tokenizer,
    per_family: usize,
    max_new_tokens: usize,
) -> candle_core::Result<Option<Answers>> {
    toy.map(|(world, data)| Answers::of(model, tok, world, data, per_family, max_new_tokens))
        .transpose()
}

/// Samples per held-out prompt at temperature 1 when comparing two models.
pub const SAMPLED_REPEATS: usize = 2;

impl Answers {
    /// `model`'s answers to the first `per_family` held-out prompts of each family. The sampled answers use a fixed
    /// seed, so two models are compared on the same random streams.
    pub fn of(
        model: &CausalLm,
        tok: &Tokenizer,
        world: &World,
        data: &Datasets,
        per_family: usize,
        max_new_tokens: usize,
    ) -> candle_core::Result<Answers> {
        let sampled = Sampling {
            temperature: 1.0,
            max_new_tokens,
            seed: 0x7e57,
            ..Sampling::default()
        };
        Ok(Answers {
            greedy: answer_all(
                model,
                tok,
                world,
                data,
                per_family,
                &greedy(max_new_tokens),
                1,
            )?,
            sampled: answer_all(
                model,
                tok,
                world,
                data,
                per_family,
                &sampled,
                SAMPLED_REPEATS,
            )?,
        })
    }
}

/// A trained model against its start, on held-out toy prompts.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Greedy answers.
    pub before: ToyMetrics,
    pub after: ToyMetrics,
    /// Answers sampled at temperature 1: how the model behaves when it samples, where most of its bad answers are.
    pub sampled_before: ToyMetrics,
    pub sampled_after: ToyMetrics,
    /// The trained model's sampled answers against the start's, prompt by prompt (the DPO paper reports win rates
    /// of samples across temperatures; this is temperature 1).
    pub win_rate: WinRate,
    /// The same for greedy answers.
    pub greedy_win_rate: WinRate,
    /// after − before of the headline metrics, greedy and (prefixed `sampled_`) sampled.
    pub effect: BTreeMap<String, f64>,
}

impl Comparison {
    pub fn new(before: &Answers, after: &Answers) -> Comparison {
        let (b, a) = (metrics(&before.greedy), metrics(&after.greedy));
        let (sb, sa) = (metrics(&before.sampled), metrics(&after.sampled));
        let mut effect = BTreeMap::new();
        for (prefix, b, a) in [("", &b, &a), ("sampled_", &sb, &sa)] {
            effect.insert(
                format!("{prefix}helpfulness"),
                a.helpfulness - b.helpfulness,
            );
            effect.insert(
                format!("{prefix}hazard_unsafe_rate"),
                a.hazard_unsafe_rate - b.hazard_unsafe_rate,
            );
            effect.insert(
                format!("{prefix}lookalike_refusal_rate"),
                a.lookalike_refusal_rate - b.lookalike_refusal_rate,
            );
        }
        Comparison {
            win_rate: win_rate(&after.sampled, &before.sampled),
            greedy_win_rate: win_rate(&after.greedy, &before.greedy),
            before: b,
            after: a,
            sampled_before: sb,
            sampled_after: sa,
            effect,
        }
    }
}
