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

/// Answers `per_family` held-out prompts of every family greedily and scores them.
pub fn evaluate(
    model: &CausalLm,
    tok: &Tokenizer,
    world: &World,
    data: &Datasets,
    per_family: usize,
    max_new_tokens: usize,
) -> candle_core::Result<ToyMetrics> {
    let sampling = Sampling {
        max_new_tokens,
        ..Sampling::default()
    };
    let mut scores: BTreeMap<Family, Vec<rice_toyworld::Score>> = BTreeMap::new();
    let mut samples = Vec::new();
    for family in Family::ALL {
        let rows: Vec<_> = data
            .eval
            .iter()
            .filter(|r| r.family == Some(family))
            .take(per_family)
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
            &sampling,
            &["<|im_end|>", "<|im_start|>"],
        )?;
        for (i, (row, answer)) in rows.iter().zip(answers).enumerate() {
            let answer = answer.text.trim().to_owned();
            let score = world.score(&row.row.prompt, &answer);
            if i == 0 {
                samples.push(Sample {
                    family: family.to_string(),
                    prompt: row.row.prompt.clone(),
                    answer,
                    helpfulness: score.helpfulness,
                    is_unsafe: score.is_unsafe,
                });
            }
            scores.entry(family).or_default().push(score);
        }
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
    Ok(ToyMetrics {
        helpfulness: help_sum / count.max(1) as f64,
        hazard_unsafe_rate: of(Family::Hazard).unsafe_rate,
        lookalike_refusal_rate: of(Family::Lookalike).refusal_rate,
        families,
        samples,
    })
}
