//! A local model directory behind the chat-completions API (`rice lm serve`), and the streaming generation every
//! local model here uses: text goes to the listener as soon as it can no longer change.

use std::path::Path;

use candle_core::{DType, Device};
use rice_lm::CausalLm;
use rice_lm::generate::{Generated, Sampling, StopReason, generate};
use rice_lm::text::{Template, Tokenizer};

use crate::openai::{BackendError, ChatBackend, ChatRequest, Completion, FinishReason};

/// Tokens generated when a request sets no limit.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// A model directory (config.json, model.safetensors, tokenizer.json) that answers chat requests.
pub struct LocalModel {
    id: String,
    pub model: CausalLm,
    pub tok: Tokenizer,
    pub template: Template,
}

/// A model directory loaded for generation: the model, its tokenizer and the id it is served under (the directory's
/// name, or its parent's for a run's `checkpoint/`).
pub fn load_model(dir: &Path) -> Result<(String, CausalLm, Tokenizer), String> {
    load_model_on(dir, &Device::Cpu, DType::F32)
}

/// [`load_model`] with the weights in `dtype` on `device`.
pub fn load_model_on(
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Result<(String, CausalLm, Tokenizer), String> {
    let tokenizer = dir.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer).map_err(|e| e.to_string())?;
    let loaded = rice_lm::checkpoint::load(dir, dtype, device).map_err(|e| e.to_string())?;
    rice_lm::checkpoint::check_tokenizer(loaded.model.config(), &tok, &tokenizer)
        .map_err(|e| e.to_string())?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let id = match name(dir).as_deref() {
        Some("checkpoint") | None => dir.parent().and_then(name),
        Some(n) => Some(n.to_owned()),
    }
    .unwrap_or_else(|| "model".into());
    Ok((id, loaded.model, tok))
}

impl LocalModel {
    pub fn load(dir: &Path, template: Template) -> Result<LocalModel, String> {
        LocalModel::load_on(dir, template, &Device::Cpu, DType::F32)
    }

    /// [`LocalModel::load`] with the weights in `dtype` on `device`.
    pub fn load_on(
        dir: &Path,
        template: Template,
        device: &Device,
        dtype: DType,
    ) -> Result<LocalModel, String> {
        let (id, model, tok) = load_model_on(dir, device, dtype)?;
        Ok(LocalModel {
            id,
            model,
            tok,
            template,
        })
    }
}

/// Generates like [`generate`], handing each piece of text to `emit` as soon as it is final: text that could still
/// turn into a stop string, or an incomplete UTF-8 character, is held back. Stops early when `emit` returns false.
pub fn generate_streaming(
    model: &CausalLm,
    tok: &Tokenizer,
    prompt: &[u32],
    sampling: &Sampling,
    stops: &[&str],
    emit: &mut dyn FnMut(&str) -> bool,
) -> candle_core::Result<Generated> {
    let mut sent = 0;
    let mut listening = true;
    let mut out = generate(model, tok, prompt, sampling, stops, &mut |text| {
        let ready = settled_len(text, stops);
        if ready > sent && text.is_char_boundary(sent) {
            listening = emit(&text[sent..ready]);
            sent = ready;
        }
        !listening
    })?;
    if listening && out.text.len() > sent && out.text.is_char_boundary(sent) {
        emit(&out.text[sent..]);
    }
    if !listening {
        out.stop = StopReason::Predicate;
    }
    Ok(out)
}

/// How much of `text` can no longer change: all of it but a trailing replacement character (half a UTF-8 sequence)
/// and a suffix that is the start of a stop string.
fn settled_len(text: &str, stops: &[&str]) -> usize {
    let mut end = text.trim_end_matches('\u{fffd}').len();
    for stop in stops {
        for (i, _) in stop.char_indices().skip(1) {
            if text[..end].ends_with(&stop[..i]) {
                end -= i;
                break;
            }
        }
    }
    end
}

pub fn finish_reason(stop: StopReason) -> FinishReason {
    match stop {
        StopReason::MaxTokens => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// The request's sampling settings, OpenAI's defaults where it gives none (temperature 1).
pub fn sampling_of(request: &ChatRequest, default_max_tokens: usize) -> Sampling {
    Sampling {
        temperature: request.temperature.unwrap_or(1.0),
        top_k: None,
        top_p: request.top_p.filter(|p| *p < 1.0),
        max_new_tokens: request.max_new_tokens().unwrap_or(default_max_tokens),
        seed: request.seed.unwrap_or(0),
    }
}

impl ChatBackend for LocalModel {
    fn model_id(&self) -> String {
        self.id.clone()
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        let mut turns = Vec::with_capacity(request.messages.len());
        for (i, m) in request.messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(BackendError::Unprocessable(format!(
                    "messages[{i}].role: `{}` is not system, user or assistant",
                    m.role
                )));
            }
            turns.push((m.role.as_str(), m.content.as_str()));
        }
        let text = self.template.conversation(&turns);
        let ids = self
            .tok
            .encode(&text)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        let sampling = sampling_of(request, DEFAULT_MAX_TOKENS);
        let mut stops = vec![self.template.end()];
        if let Some(s) = &request.stop {
            stops.extend(s.strings().into_iter().filter(|s| !s.is_empty()));
        }
        let out = generate_streaming(&self.model, &self.tok, &ids, &sampling, &stops, emit)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        Ok(Completion {
            text: out.text,
            finish_reason: finish_reason(out.stop),
            prompt_tokens: ids.len(),
            completion_tokens: out.ids.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::settled_len;

    #[test]
    fn text_that_may_become_a_stop_string_is_held_back() {
        assert_eq!(settled_len("Hello <|im_", &["<|im_end|>"]), 6);
        assert_eq!(settled_len("Hello <", &["<|im_end|>"]), 6);
        assert_eq!(settled_len("Hello", &["<|im_end|>"]), 5);
        assert_eq!(settled_len("caf\u{fffd}", &[]), 3);
    }
}
