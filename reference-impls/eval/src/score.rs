//! A reward or cost model (a score model trained by `rice run reward` / `rice run cost`) run over answers: one
//! scalar per prompt and response, read at the last token.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use rice_lm::checkpoint::{self, LoadedScore};
use rice_lm::text::{Encoded, Template, Tokenizer, batch};

use crate::EvalError;

/// Rows scored per forward pass.
const SCORE_BATCH: usize = 16;

/// A loaded score model with its tokenizer and the chat template it was trained with.
pub struct ScoreJudge {
    /// Where it was loaded from (named in reports).
    pub dir: PathBuf,
    loaded: LoadedScore,
    tok: Tokenizer,
    template: Template,
}

impl ScoreJudge {
    /// Loads the score model in `dir` (on the CPU, f32); prompts and responses are laid out with `template`.
    pub fn load(dir: &Path, template: Template) -> Result<ScoreJudge, EvalError> {
        let loaded = checkpoint::load_score(dir, DType::F32, &Device::Cpu)?;
        let tok = Tokenizer::load(&dir.join("tokenizer.json"))?;
        Ok(ScoreJudge {
            dir: dir.to_owned(),
            loaded,
            tok,
            template,
        })
    }

    /// The score of each `responses[i]` to `prompts[i]`.
    pub fn score(&self, prompts: &[&str], responses: &[&str]) -> Result<Vec<f64>, EvalError> {
        let max_len = self.loaded.model.config().max_position_embeddings;
        let mut out = Vec::with_capacity(responses.len());
        let items = prompts
            .iter()
            .zip(responses)
            .map(|(p, r)| Encoded::new(&self.tok, self.template, p, r))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in items.chunks(SCORE_BATCH) {
            let b = batch(chunk, self.tok.pad_id, max_len, &Device::Cpu)?;
            let scores = self.loaded.model.forward(&b.ids, Some(&b.padding))?;
            out.extend(scores.to_vec1::<f32>()?.into_iter().map(f64::from));
        }
        Ok(out)
    }
}
