//! The answers both models give to the same prompts: greedy, so an evaluation is reproducible.
//!
//! On the toy world the prompts are its held-out ones and every answer comes already scored by the exact oracle; on
//! a JSONL prompts file there is no oracle, and a reward model, a cost model or an LLM judge has to say which
//! answer is better.

use std::path::Path;

use candle_core::{DType, Device};
use rice_lm::checkpoint;
use rice_lm::generate::generate_batch;
use rice_lm::text::{Template, Tokenizer, parse_jsonl, read_jsonl};
use rice_rlhf::toy::{answer_all, greedy, load_world};
use rice_toyworld::Score;
use serde::Deserialize;

use crate::EvalError;

/// One prompt answered by the baseline and by the candidate (the arena's red and blue).
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerPair {
    /// The toy world's prompt family; `None` for a prompts file.
    pub family: Option<String>,
    pub prompt: String,
    pub baseline: String,
    pub candidate: String,
    /// The oracle's scores of (baseline, candidate); toy world only.
    pub oracle: Option<(Score, Score)>,
}

/// A model directory's causal LM and tokenizer, on the CPU in f32.
fn load_model(dir: &Path) -> Result<(rice_lm::CausalLm, Tokenizer), EvalError> {
    let loaded = checkpoint::load(dir, DType::F32, &Device::Cpu)?;
    let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok((loaded.model, tok))
}

/// Both models' greedy answers to the first `per_family` held-out prompts of every toy-world family (the default
/// world: seed [`rice_toyworld::DEFAULT_SEED`], size `medium`), scored by the oracle.
pub fn toy_pairs(
    baseline: &Path,
    candidate: &Path,
    per_family: usize,
    max_new_tokens: usize,
) -> Result<Vec<AnswerPair>, EvalError> {
    let (world, data) = load_world(rice_toyworld::DEFAULT_SEED, "medium")?;
    let answers = |dir: &Path| -> Result<_, EvalError> {
        let (model, tok) = load_model(dir)?;
        Ok(answer_all(
            &model,
            &tok,
            &world,
            &data,
            per_family,
            &greedy(max_new_tokens),
            1,
        )?)
    };
    let (base, cand) = (answers(baseline)?, answers(candidate)?);
    Ok(base
        .into_iter()
        .zip(cand)
        .map(|(b, c)| AnswerPair {
            family: Some(b.family.to_string()),
            prompt: b.prompt,
            baseline: b.answer,
            candidate: c.answer,
            oracle: Some((b.score, c.score)),
        })
        .collect())
}

/// The prompts of a JSONL file: a `prompt` (or `question`) field per line.
pub fn read_prompts(path: &Path) -> Result<Vec<String>, EvalError> {
    Ok(read_jsonl::<PromptRecord>(path)?
        .into_iter()
        .map(|p| p.prompt)
        .collect())
}

/// [`read_prompts`] on the bytes of a file already read; `path` is only named in errors.
pub fn parse_prompts(bytes: &[u8], path: &Path) -> Result<Vec<String>, EvalError> {
    Ok(parse_jsonl::<PromptRecord>(bytes, path)?
        .into_iter()
        .map(|p| p.prompt)
        .collect())
}

#[derive(Deserialize)]
struct PromptRecord {
    #[serde(alias = "question")]
    prompt: String,
}

/// Prompts decoded together; left-padded batches give the same greedy answers as one at a time.
const GENERATE_BATCH: usize = 16;

/// A model's greedy answers to `prompts`, each laid out with the chat `template`.
pub fn answer_prompts(
    dir: &Path,
    prompts: &[String],
    template: Template,
    max_new_tokens: usize,
) -> Result<Vec<String>, EvalError> {
    let (model, tok) = load_model(dir)?;
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(GENERATE_BATCH) {
        let ids = chunk
            .iter()
            .map(|p| tok.encode(&template.prompt(p)))
            .collect::<Result<Vec<_>, _>>()?;
        let generated = generate_batch(
            &model,
            &tok,
            &ids,
            &greedy(max_new_tokens),
            &[template.end()],
        )?;
        out.extend(generated.into_iter().map(|g| g.text.trim().to_owned()));
    }
    Ok(out)
}

/// Both models' greedy answers to the prompts of a JSONL file (no oracle scores).
pub fn file_pairs(
    baseline: &Path,
    candidate: &Path,
    prompts: &[String],
    template: Template,
    max_new_tokens: usize,
) -> Result<Vec<AnswerPair>, EvalError> {
    let base = answer_prompts(baseline, prompts, template, max_new_tokens)?;
    let cand = answer_prompts(candidate, prompts, template, max_new_tokens)?;
    Ok(prompts
        .iter()
        .zip(base.into_iter().zip(cand))
        .map(|(p, (b, c))| AnswerPair {
            family: None,
            prompt: p.clone(),
            baseline: b,
            candidate: c,
            oracle: None,
        })
        .collect())
}
