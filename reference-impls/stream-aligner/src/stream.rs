//! The Stream Aligner loop and its corrector (Stream Aligner, htlou/stream-aligner, AAAI 2025).
//!
//! Round by round: the upstream continues the answer so far (`prefix`) **only until its first sentence is
//! complete** — a stop predicate on the streamed text, so no tokens are spent past the sentence (the reference
//! implementation generates up to 2,048 tokens per round and keeps one sentence); the aligner reads the question, the
//! prefix and that sentence and writes its revision; the prefix becomes `prefix + " " + revision`. The loop stops
//! when the upstream ends right after the prefix, when the aligner marks the answer complete (`EOS: [[TRUE]]`), or
//! after a round cap (16, as the reference's generation script).

use std::path::Path;
use std::time::Instant;

use rice_aligner::local::{generate_streaming, load_model};
use rice_aligner::openai::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, Completion, FinishReason,
};
use rice_lm::CausalLm;
use rice_lm::generate::Sampling;
use rice_lm::text::{Template, Tokenizer};
use serde::Serialize;

use crate::split::{is_sentence_complete, split_first};

/// The aligner's input, as the reference's `correction-plus` dataset renders it (then wrapped in the model's chat
/// template).
pub const INPUT_FORMAT: &str = "##Question: {question} | ##Answer_Prefix: {prefix} | ##Answer_Last_Sentence: {last} | ##Your_Revision: ";

/// What the aligner writes after a revision that completes the answer (the reference's annotation format).
pub const END_MARKER: &str = "EOS: [[TRUE]]";

/// The reference's round cap.
pub const DEFAULT_MAX_ROUNDS: usize = 16;

/// [`INPUT_FORMAT`] filled in, in one pass (text that contains a placeholder is left alone).
pub fn input(question: &str, prefix: &str, last: &str) -> String {
    let mut out = String::new();
    let mut rest = INPUT_FORMAT;
    for (slot, value) in [
        ("{question}", question),
        ("{prefix}", prefix),
        ("{last}", last),
    ] {
        let (before, after) = rest.split_once(slot).expect("the format has every slot");
        out.push_str(before);
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The training target for one tuple: the revision, the end marker when it completes the answer, the end token.
pub fn target(template: Template, correction: &str, end: bool) -> String {
    let marker = if end {
        format!(" {END_MARKER}")
    } else {
        String::new()
    };
    format!("{correction}{marker}{}", template.end())
}

/// An aligner's output: the revised sentence and whether it completes the answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Revision {
    pub text: String,
    pub end: bool,
}

/// Reads an aligner's raw output: an `EOS: [[TRUE]]` / `EOS: [[FALSE]]` marker anywhere is taken out (and sets
/// `end`), and the reference annotators' `CORRECTION: [[…]]` wrapper is unwrapped.
pub fn parse_revision(raw: &str) -> Revision {
    let mut text = raw.to_owned();
    let mut end = false;
    for (marker, is_end) in [(END_MARKER, true), ("EOS: [[FALSE]]", false)] {
        if let Some(at) = text.find(marker) {
            end |= is_end;
            text.replace_range(at..at + marker.len(), "");
        }
    }
    if let Some(start) = text.find("CORRECTION: [[") {
        let inner = &text[start + "CORRECTION: [[".len()..];
        text = inner.split("]]").next().unwrap_or(inner).to_owned();
    }
    Revision {
        text: text.trim().to_owned(),
        end,
    }
}

/// Whatever revises the last sentence: a Stream Aligner model, or (in tests) a rule.
pub trait Reviser {
    fn revise(&self, question: &str, prefix: &str, last: &str) -> candle_core::Result<Revision>;
}

impl Reviser for StreamAligner {
    fn revise(&self, question: &str, prefix: &str, last: &str) -> candle_core::Result<Revision> {
        StreamAligner::revise(self, question, prefix, last)
    }
}

/// A Stream Aligner model.
pub struct StreamAligner {
    pub id: String,
    pub model: CausalLm,
    pub tok: Tokenizer,
    pub template: Template,
    pub max_new_tokens: usize,
}

impl StreamAligner {
    pub fn load(
        dir: &Path,
        template: Template,
        max_new_tokens: usize,
    ) -> Result<StreamAligner, String> {
        let (id, model, tok) = load_model(dir)?;
        Ok(StreamAligner {
            id,
            model,
            tok,
            template,
            max_new_tokens,
        })
    }

    fn prompt_ids(
        &self,
        question: &str,
        prefix: &str,
        last: &str,
    ) -> candle_core::Result<Vec<u32>> {
        self.tok
            .encode(&self.template.prompt(&input(question, prefix, last)))
            .map_err(candle_core::Error::msg)
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            max_new_tokens: self.max_new_tokens,
            ..Sampling::default()
        }
    }

    /// Revises `last` greedily.
    pub fn revise(
        &self,
        question: &str,
        prefix: &str,
        last: &str,
    ) -> candle_core::Result<Revision> {
        let ids = self.prompt_ids(question, prefix, last)?;
        let out = generate_streaming(
            &self.model,
            &self.tok,
            &ids,
            &self.sampling(),
            &[self.template.end()],
            &mut |_| true,
        )?;
        Ok(parse_revision(&out.text))
    }
}

/// How the upstream continues each round.
#[derive(Clone, Debug, Serialize)]
pub struct StreamSettings {
    pub max_rounds: usize,
    /// Tokens the upstream may spend on one sentence.
    pub sentence_max_tokens: usize,
    /// The upstream's sampling temperature (0: greedy).
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            max_rounds: DEFAULT_MAX_ROUNDS,
            sentence_max_tokens: 64,
            temperature: 0.0,
            top_p: None,
            seed: None,
        }
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStop {
    /// The upstream had nothing more to say after the prefix (or ended inside the sentence just revised).
    UpstreamEnd,
    /// The aligner marked the answer complete.
    AlignerEnd,
    /// The round cap.
    RoundCap,
    /// The listener went away.
    Cancelled,
}

/// One round: the upstream's sentence and its revision.
#[derive(Clone, Debug, Serialize)]
pub struct Round {
    pub last: String,
    pub revision: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Streamed {
    /// The corrected answer: the revisions joined by spaces.
    pub text: String,
    pub rounds: Vec<Round>,
    pub stop: StreamStop,
    /// Seconds until the first revised sentence was ready.
    pub first_sentence_seconds: Option<f64>,
    pub seconds: f64,
    pub upstream_tokens: usize,
}

/// Runs the loop for the conversation `messages` (the question is the last user message): `emit` receives each
/// revised sentence as soon as it is ready (with a leading space after the first), and stops the loop by returning
/// false.
pub fn correct_stream(
    upstream: &dyn ChatBackend,
    aligner: &dyn Reviser,
    messages: &[ChatMessage],
    settings: &StreamSettings,
    emit: &mut dyn FnMut(&str) -> bool,
) -> Result<Streamed, BackendError> {
    let start = Instant::now();
    let question = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .ok_or_else(|| BackendError::Unprocessable("messages: no user message to answer".into()))?;
    let mut prefix = String::new();
    let mut rounds = Vec::new();
    let mut first_sentence_seconds = None;
    let mut upstream_tokens = 0;
    let mut stop = StreamStop::RoundCap;
    for _ in 0..settings.max_rounds {
        let mut request = ChatRequest {
            messages: messages.to_vec(),
            max_tokens: Some(settings.sentence_max_tokens),
            temperature: Some(settings.temperature),
            top_p: settings.top_p,
            seed: settings.seed,
            stream: true,
            ..ChatRequest::default()
        };
        if !prefix.is_empty() {
            request
                .messages
                .push(ChatMessage::new("assistant", &prefix));
            request.continue_final_message = true;
            request.add_generation_prompt = Some(false);
        }
        let mut text = String::new();
        let mut cut = false;
        let done = upstream.complete(&request, &mut |piece| {
            text.push_str(piece);
            cut = is_sentence_complete(text.trim_start());
            !cut
        })?;
        upstream_tokens += done.completion_tokens;
        let Some((last, _)) = split_first(text.trim_start(), true) else {
            stop = StreamStop::UpstreamEnd;
            break;
        };
        let revision = aligner
            .revise(&question, &prefix, last)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        rounds.push(Round {
            last: last.to_owned(),
            revision: revision.text.clone(),
        });
        if !revision.text.is_empty() {
            let piece = if prefix.is_empty() {
                revision.text.clone()
            } else {
                format!(" {}", revision.text)
            };
            first_sentence_seconds.get_or_insert(start.elapsed().as_secs_f64());
            if !emit(&piece) {
                stop = StreamStop::Cancelled;
                break;
            }
            prefix.push_str(&piece);
        }
        if revision.end {
            stop = StreamStop::AlignerEnd;
            break;
        }
        if !cut && done.finish_reason == FinishReason::Stop {
            stop = StreamStop::UpstreamEnd;
            break;
        }
    }
    Ok(Streamed {
        text: prefix,
        rounds,
        stop,
        first_sentence_seconds,
        seconds: start.elapsed().as_secs_f64(),
        upstream_tokens,
    })
}

/// The correcting proxy in stream mode (`rice aligner serve --stream`): each revised sentence goes to the client as
/// soon as it is ready.
pub struct StreamAlignerBackend {
    pub upstream: std::sync::Arc<dyn ChatBackend>,
    pub aligner: StreamAligner,
    pub settings: StreamSettings,
}

impl ChatBackend for StreamAlignerBackend {
    fn model_id(&self) -> String {
        format!("{}+{}", self.upstream.model_id(), self.aligner.id)
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        let mut settings = self.settings.clone();
        if let Some(t) = request.temperature {
            settings.temperature = t;
        }
        settings.top_p = request.top_p.or(settings.top_p);
        settings.seed = request.seed.or(settings.seed);
        let out = correct_stream(
            self.upstream.as_ref(),
            &self.aligner,
            &request.messages,
            &settings,
            emit,
        )?;
        let tokens = |text: &str| self.aligner.tok.encode(text).map_or(0, |ids| ids.len());
        Ok(Completion {
            prompt_tokens: request.last_user().map_or(0, tokens),
            completion_tokens: tokens(&out.text),
            text: out.text,
            finish_reason: if out.stop == StreamStop::RoundCap {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_format_is_byte_exact() {
        assert_eq!(
            input("Q?", "A.", "B."),
            "##Question: Q? | ##Answer_Prefix: A. | ##Answer_Last_Sentence: B. | ##Your_Revision: "
        );
        assert_eq!(
            Template::Gemma.prompt(&input("Q?", "", "B.")),
            "<start_of_turn>user\n##Question: Q? | ##Answer_Prefix:  | ##Answer_Last_Sentence: B. | ##Your_Revision: <end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            input("{prefix}", "p", "l"),
            "##Question: {prefix} | ##Answer_Prefix: p | ##Answer_Last_Sentence: l | ##Your_Revision: "
        );
    }

    #[test]
    fn revisions_lose_their_markers() {
        assert_eq!(
            parse_revision(" The answer is 7. EOS: [[TRUE]]"),
            Revision {
                text: "The answer is 7.".into(),
                end: true
            }
        );
        assert_eq!(
            parse_revision("CORRECTION: [[3 + 4 = 7.]]\nEOS: [[FALSE]]"),
            Revision {
                text: "3 + 4 = 7.".into(),
                end: false
            }
        );
        assert_eq!(
            target(Template::ChatMl, "Done.", true),
            "Done. EOS: [[TRUE]]<|im_end|>"
        );
        assert_eq!(target(Template::ChatMl, "Step.", false), "Step.<|im_end|>");
    }
}
