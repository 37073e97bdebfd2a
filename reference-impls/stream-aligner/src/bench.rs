//! Latency of the two correction styles on the same prompts (`rice bench aligners`): how long a user waits for the
//! first corrected sentence with Stream Aligner, against how long they wait for the corrected answer with Aligner
//! (which must first let the upstream finish its whole answer).

use std::time::Instant;

use rice_aligner::Aligner;
use rice_aligner::local::LocalModel;
use rice_aligner::openai::{BackendError, ChatBackend, ChatMessage, ChatRequest};
use serde::Serialize;

use crate::stream::{StreamAligner, StreamSettings, correct_stream};

/// Seconds per prompt for each way of answering, and the ratios of their medians.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub prompts: usize,
    /// The upstream's whole answer, uncorrected.
    pub upstream_answer: Summary,
    /// Aligner: the upstream's whole answer, then the aligner's first token.
    pub aligner_first_token: Summary,
    /// Aligner: the upstream's whole answer, then the whole correction.
    pub aligner_answer: Summary,
    /// Stream Aligner: the first corrected sentence.
    pub stream_first_sentence: Summary,
    /// Stream Aligner: the whole corrected answer.
    pub stream_answer: Summary,
    /// median(stream first sentence) ÷ median(aligner answer): below 1, Stream Aligner shows text sooner.
    pub first_sentence_over_aligner_answer: f64,
    /// median(stream answer) ÷ median(aligner answer).
    pub stream_answer_over_aligner_answer: f64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub median: f64,
    pub mean: f64,
    pub p90: f64,
}

impl Summary {
    fn of(mut xs: Vec<f64>) -> Summary {
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| {
            xs.get(((xs.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Summary {
            median: at(0.5),
            mean: xs.iter().sum::<f64>() / xs.len().max(1) as f64,
            p90: at(0.9),
        }
    }
}

/// Times both pipelines on every prompt, one prompt at a time, greedy, `repeats` times each (the fastest of the
/// repeats counts, which takes out scheduler noise on a shared machine).
pub fn latency(
    upstream: &LocalModel,
    aligner: &Aligner,
    stream_aligner: &StreamAligner,
    settings: &StreamSettings,
    prompts: &[String],
    max_tokens: usize,
    repeats: usize,
) -> Result<Latency, BackendError> {
    let internal = |e: candle_core::Error| BackendError::Internal(e.to_string());
    let (mut up, mut first_token, mut whole, mut first_sentence, mut stream_whole) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for prompt in prompts {
        let messages = vec![ChatMessage::new("user", prompt)];
        let request = ChatRequest {
            messages: messages.clone(),
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..ChatRequest::default()
        };
        let mut best = [f64::INFINITY; 5];
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let answer = upstream.complete(&request, &mut |_| true)?;
            let t_up = start.elapsed().as_secs_f64();
            let mut t_first = None;
            aligner
                .correct(prompt, &answer.text, &mut |_| {
                    t_first.get_or_insert(start.elapsed().as_secs_f64());
                    true
                })
                .map_err(internal)?;
            let t_whole = start.elapsed().as_secs_f64();
            let streamed =
                correct_stream(upstream, stream_aligner, &messages, settings, &mut |_| true)?;
            let times = [
                t_up,
                t_first.unwrap_or(t_whole),
                t_whole,
                streamed.first_sentence_seconds.unwrap_or(streamed.seconds),
                streamed.seconds,
            ];
            for (b, t) in best.iter_mut().zip(times) {
                *b = b.min(t);
            }
        }
        for (list, t) in [
            &mut up,
            &mut first_token,
            &mut whole,
            &mut first_sentence,
            &mut stream_whole,
        ]
        .into_iter()
        .zip(best)
        {
            list.push(t);
        }
    }
    let (up, first_token, whole, first_sentence, stream_whole) = (
        Summary::of(up),
        Summary::of(first_token),
        Summary::of(whole),
        Summary::of(first_sentence),
        Summary::of(stream_whole),
    );
    Ok(Latency {
        prompts: prompts.len(),
        first_sentence_over_aligner_answer: first_sentence.median / whole.median,
        stream_answer_over_aligner_answer: stream_whole.median / whole.median,
        upstream_answer: up,
        aligner_first_token: first_token,
        aligner_answer: whole,
        stream_first_sentence: first_sentence,
        stream_answer: stream_whole,
    })
}
