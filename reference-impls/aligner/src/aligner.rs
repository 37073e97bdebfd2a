//! The corrector: an aligner model reads a question and an answer and writes the corrected answer.

use std::path::Path;

use rice_lm::CausalLm;
use rice_lm::generate::{Generated, Sampling, generate_batch};
use rice_lm::text::{Template, Tokenizer};

use crate::local::{generate_streaming, load_model};
use crate::template::AlignerFormat;

/// An aligner model with its input format.
pub struct Aligner {
    pub id: String,
    pub model: CausalLm,
    pub tok: Tokenizer,
    pub format: AlignerFormat,
    /// The model's chat template (used by formats that do not fix their own).
    pub template: Template,
    pub max_new_tokens: usize,
}

impl Aligner {
    pub fn load(
        dir: &Path,
        format: AlignerFormat,
        template: Template,
        max_new_tokens: usize,
    ) -> Result<Aligner, String> {
        let (id, model, tok) = load_model(dir)?;
        Ok(Aligner {
            id,
            model,
            tok,
            format,
            template,
            max_new_tokens,
        })
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            max_new_tokens: self.max_new_tokens,
            ..Sampling::default()
        }
    }

    fn stops(&self) -> [&'static str; 1] {
        [self.format.chat(self.template).end()]
    }

    /// Corrects one answer greedily; `emit` receives the correction as it is written (leading whitespace left
    /// out, so the pieces add up to the returned text).
    pub fn correct(
        &self,
        question: &str,
        answer: &str,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> candle_core::Result<Generated> {
        let prompt = self.format.prompt(self.template, question, answer);
        let ids = self.tok.encode(&prompt).map_err(candle_core::Error::msg)?;
        let mut started = false;
        let mut out = generate_streaming(
            &self.model,
            &self.tok,
            &ids,
            &self.sampling(),
            &self.stops(),
            &mut |piece| {
                let piece = if started { piece } else { piece.trim_start() };
                started |= !piece.is_empty();
                piece.is_empty() || emit(piece)
            },
        )?;
        out.text = out.text.trim_start().to_owned();
        Ok(out)
    }

    /// Corrects many `(question, answer)` pairs greedily, in batches.
    pub fn correct_all(&self, pairs: &[(String, String)]) -> candle_core::Result<Vec<String>> {
        let mut out = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(16) {
            let prompts = chunk
                .iter()
                .map(|(q, a)| self.tok.encode(&self.format.prompt(self.template, q, a)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(candle_core::Error::msg)?;
            let done = generate_batch(
                &self.model,
                &self.tok,
                &prompts,
                &self.sampling(),
                &self.stops(),
            )?;
            out.extend(done.into_iter().map(|g| g.text.trim().to_owned()));
        }
        Ok(out)
    }
}
