//! Generation with the KV cache: greedy or sampled (temperature, top-k, top-p), stopping at the end-of-sequence
//! token, at a stop string, or when the caller's predicate says so (Stream Aligner stops at a sentence boundary).

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{CausalLm, KvCache};
use crate::rng::Rng;
use crate::text::Tokenizer;

/// How to pick each next token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            max_new_tokens: 128,
            seed: 0,
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfSequence,
    StopString,
    Predicate,
    MaxTokens,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Generated {
    pub ids: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
}

/// Continues `prompt` (token ids). `stop_strings` end generation as soon as the decoded text contains one (the text
/// is cut before it); `until` sees the decoded text after each token and ends generation when it returns true.
pub fn generate(
    model: &CausalLm,
    tok: &Tokenizer,
    prompt: &[u32],
    sampling: &Sampling,
    stop_strings: &[&str],
    until: &mut dyn FnMut(&str) -> bool,
) -> Result<Generated> {
    let device = model.backbone.embeddings().embeddings().device().clone();
    let mut cache = KvCache::new(model.config());
    let mut rng = Rng::new(sampling.seed);
    let mut ids: Vec<u32> = Vec::new();
    let max_positions = model.config().max_position_embeddings;
    // Keep the prompt's tail if it would not leave room to generate.
    let room = max_positions.saturating_sub(sampling.max_new_tokens).max(1);
    let prompt = &prompt[prompt.len().saturating_sub(room)..];
    let mut input = Tensor::new(prompt, &device)?.unsqueeze(0)?;
    let mut stop = StopReason::MaxTokens;
    let mut text = String::new();
    for _ in 0..sampling.max_new_tokens {
        if cache.len() + input.dim(1)? > max_positions {
            break;
        }
        let logits = model.forward_cached(&input, &mut cache)?;
        let last = logits
            .squeeze(0)?
            .get(input.dim(1)? - 1)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let next = pick(&last, sampling, &mut rng);
        if next == tok.eos_id {
            stop = StopReason::EndOfSequence;
            break;
        }
        ids.push(next);
        text = tok.decode(&ids).map_err(candle_core::Error::msg)?;
        if let Some(at) = stop_strings.iter().filter_map(|s| text.find(s)).min() {
            text.truncate(at);
            stop = StopReason::StopString;
            break;
        }
        if until(&text) {
            stop = StopReason::Predicate;
            break;
        }
        input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
    }
    Ok(Generated { ids, text, stop })
}

/// Continues every prompt of a batch at once (greedy or sampled, one stream of randomness per row): prompts are
/// padded on the left, finished rows keep decoding padding until all are done. Stop strings apply per row.
pub fn generate_batch(
    model: &CausalLm,
    tok: &Tokenizer,
    prompts: &[Vec<u32>],
    sampling: &Sampling,
    stop_strings: &[&str],
) -> Result<Vec<Generated>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let device = model.backbone.embeddings().embeddings().device().clone();
    let room = model
        .config()
        .max_position_embeddings
        .saturating_sub(sampling.max_new_tokens)
        .max(1);
    let prompts: Vec<&[u32]> = prompts
        .iter()
        .map(|p| &p[p.len().saturating_sub(room)..])
        .collect();
    let width = prompts.iter().map(|p| p.len()).max().unwrap_or(1).max(1);
    let b = prompts.len();
    let mut ids = Vec::with_capacity(b * width);
    let mut padding = Vec::with_capacity(b * width);
    for p in &prompts {
        let pad = width - p.len();
        ids.extend(std::iter::repeat_n(tok.pad_id, pad).chain(p.iter().copied()));
        padding.extend(std::iter::repeat_n(0u8, pad).chain(std::iter::repeat_n(1u8, p.len())));
    }
    let mut cache = KvCache::new(model.config());
    let mut rngs: Vec<Rng> = (0..b)
        .map(|i| Rng::derive(sampling.seed, &format!("row-{i}")))
        .collect();
    let mut out: Vec<Generated> = (0..b)
        .map(|_| Generated {
            ids: Vec::new(),
            text: String::new(),
            stop: StopReason::MaxTokens,
        })
        .collect();
    let mut done = vec![false; b];
    let mut input = Tensor::from_vec(ids, (b, width), &device)?;
    let mut mask = Some(Tensor::from_vec(padding, (b, width), &device)?);
    for _ in 0..sampling.max_new_tokens {
        if cache.len() + input.dim(1)? > model.config().max_position_embeddings {
            break;
        }
        let logits = model.forward_cached_padded(&input, mask.as_ref(), &mut cache)?;
        let t = input.dim(1)?;
        let last = logits
            .narrow(1, t - 1, 1)?
            .squeeze(1)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec2::<f32>()?;
        let mut next = vec![tok.pad_id; b];
        for i in 0..b {
            if done[i] {
                continue;
            }
            let token = pick(&last[i], sampling, &mut rngs[i]);
            if token == tok.eos_id {
                done[i] = true;
                out[i].stop = StopReason::EndOfSequence;
                continue;
            }
            out[i].ids.push(token);
            next[i] = token;
            out[i].text = tok.decode(&out[i].ids).map_err(candle_core::Error::msg)?;
            if let Some(at) = stop_strings
                .iter()
                .filter_map(|s| out[i].text.find(s))
                .min()
            {
                out[i].text.truncate(at);
                out[i].stop = StopReason::StopString;
                done[i] = true;
            }
        }
        if done.iter().all(|d| *d) {
            break;
        }
        input = Tensor::from_vec(next, (b, 1), &device)?;
        mask = None;
    }
    Ok(out)
}

/// Picks a token from logits: argmax at temperature 0, else a sample after top-k and top-p filtering.
pub fn pick(logits: &[f32], sampling: &Sampling, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    if sampling.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if let Some(k) = sampling.top_k {
        order.truncate(k.max(1));
    }
    let max = logits[order[0]] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / sampling.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(top_p) = sampling.top_p {
        // Smallest prefix whose mass reaches top_p (at least one token).
        let mut mass = 0.0;
        let keep = probs.iter().position(|p| {
            mass += p;
            mass >= top_p
        });
        let keep = keep.map_or(probs.len(), |i| i + 1);
        probs.truncate(keep);
        order.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut u = rng.uniform();
    for (p, &i) in probs.iter().zip(&order) {
        if u < *p {
            return i as u32;
        }
        u -= p;
    }
    order[order.len() - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_greedy_generation_equals_one_prompt_at_a_time() {
        use candle_core::{DType, Device};
        let cfg = crate::tiny_config(40);
        let loaded = crate::checkpoint::init(&cfg, DType::F32, &Device::Cpu, 11).unwrap();
        let tok = crate::text::Tokenizer::for_tests(40, 39, 0);
        let prompts = vec![vec![5u32, 6, 7, 8, 9, 10], vec![3], vec![20, 21, 22]];
        let sampling = Sampling {
            max_new_tokens: 12,
            ..Sampling::default()
        };
        let batched = generate_batch(&loaded.model, &tok, &prompts, &sampling, &[]).unwrap();
        for (prompt, b) in prompts.iter().zip(&batched) {
            let single =
                generate(&loaded.model, &tok, prompt, &sampling, &[], &mut |_| false).unwrap();
            assert_eq!(b.ids, single.ids, "prompt {prompt:?}");
        }
    }

    #[test]
    fn greedy_takes_the_argmax_and_filters_restrict_sampling() {
        let logits = [0.1f32, 3.0, 2.9, -1.0];
        let mut rng = Rng::new(1);
        assert_eq!(pick(&logits, &Sampling::default(), &mut rng), 1);
        let top1 = Sampling {
            temperature: 1.0,
            top_k: Some(1),
            ..Sampling::default()
        };
        assert!((0..50).all(|_| pick(&logits, &top1, &mut rng) == 1));
        let top_p = Sampling {
            temperature: 1.0,
            top_p: Some(0.9),
            ..Sampling::default()
        };
        let picks: Vec<u32> = (0..400).map(|_| pick(&logits, &top_p, &mut rng)).collect();
        assert!(
            picks.iter().all(|&i| i == 1 || i == 2),
            "top-p 0.9 keeps the two likely tokens only"
        );
        assert!(picks.contains(&1) && picks.contains(&2));
    }
}
