//! The Stream Aligner loop with a scripted upstream and a rule for a reviser: what the upstream is asked, where it
//! is stopped, how the prefix grows, and every stop rule.

use std::sync::Mutex;

use rice_aligner::openai::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, Completion, FinishReason,
};
use rice_stream_aligner::stream::{Reviser, Revision, StreamSettings, StreamStop, correct_stream};

/// Continues any prefix with `answer`'s words after it, one word per emitted piece, and records each request's
/// prefix and how many pieces it got to emit before being stopped.
struct Scripted {
    answer: &'static str,
    calls: Mutex<Vec<(String, usize)>>,
}

impl Scripted {
    fn new(answer: &'static str) -> Scripted {
        Scripted {
            answer,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl ChatBackend for Scripted {
    fn model_id(&self) -> String {
        "scripted".into()
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        assert!(request.stream, "rounds stream, so the loop can stop them");
        let prefix = match request.messages.last() {
            Some(m) if m.role == "assistant" => {
                assert!(request.continue_final_message);
                m.content.clone()
            }
            _ => String::new(),
        };
        // The upstream continues after as many of its own sentences as the prefix holds.
        let done = prefix.matches('.').count();
        let rest: Vec<&str> = self
            .answer
            .split_inclusive('.')
            .skip(done)
            .flat_map(|s| s.split_inclusive(' '))
            .filter(|w| !w.trim().is_empty())
            .collect();
        let mut emitted = 0;
        let mut text = String::new();
        for word in rest {
            emitted += 1;
            text.push_str(word);
            if !emit(&format!(" {}", word.trim())) {
                break;
            }
        }
        self.calls.lock().unwrap().push((prefix, emitted));
        Ok(Completion {
            text,
            finish_reason: FinishReason::Stop,
            prompt_tokens: 1,
            completion_tokens: emitted,
        })
    }
}

/// Upper-cases every sentence; marks the answer complete at a sentence holding `END`.
struct Shout;

impl Reviser for Shout {
    fn revise(&self, question: &str, _prefix: &str, last: &str) -> candle_core::Result<Revision> {
        assert_eq!(question, "Q?");
        Ok(Revision {
            text: last.to_uppercase(),
            end: last.contains("END"),
        })
    }
}

fn run(
    upstream: &Scripted,
    settings: &StreamSettings,
) -> (rice_stream_aligner::stream::Streamed, Vec<String>) {
    let mut pieces = Vec::new();
    let out = correct_stream(
        upstream,
        &Shout,
        &[ChatMessage::new("user", "Q?")],
        settings,
        &mut |p| {
            pieces.push(p.to_owned());
            true
        },
    )
    .unwrap();
    (out, pieces)
}

#[test]
fn each_round_stops_the_upstream_at_its_first_sentence_and_extends_the_prefix() {
    let upstream = Scripted::new("one two. three four five. six.");
    let (out, pieces) = run(&upstream, &StreamSettings::default());
    assert_eq!(pieces, ["ONE TWO.", " THREE FOUR FIVE.", " SIX."]);
    assert_eq!(out.text, "ONE TWO. THREE FOUR FIVE. SIX.");
    assert_eq!(out.stop, StreamStop::UpstreamEnd);
    let calls = upstream.calls.lock().unwrap();
    let prefixes: Vec<&str> = calls.iter().map(|(p, _)| p.as_str()).collect();
    // The third round's upstream ended inside its sentence: no fourth round is needed to learn that it is done.
    assert_eq!(prefixes, ["", "ONE TWO.", "ONE TWO. THREE FOUR FIVE."]);
    // Stopped one word after the sentence's end (the word that shows the end is not a decimal point), never
    // generating the rest of the answer.
    let emitted: Vec<usize> = calls.iter().map(|(_, n)| *n).collect();
    assert_eq!(emitted, [3, 4, 1]);
    assert!(out.first_sentence_seconds.unwrap() <= out.seconds);
}

#[test]
fn the_aligners_end_marker_and_the_round_cap_stop_the_loop() {
    let upstream = Scripted::new("a. b END. c. d.");
    let (out, _) = run(&upstream, &StreamSettings::default());
    assert_eq!(out.text, "A. B END.");
    assert_eq!(out.stop, StreamStop::AlignerEnd);

    let upstream = Scripted::new("a. b. c. d. e.");
    let capped = StreamSettings {
        max_rounds: 2,
        ..StreamSettings::default()
    };
    let (out, _) = run(&upstream, &capped);
    assert_eq!(out.text, "A. B.");
    assert_eq!(out.stop, StreamStop::RoundCap);
    assert_eq!(out.rounds.len(), 2);
}

#[test]
fn a_listener_that_leaves_cancels_and_an_upstream_without_punctuation_still_ends() {
    let upstream = Scripted::new("a. b. c.");
    let out = correct_stream(
        &upstream,
        &Shout,
        &[ChatMessage::new("user", "Q?")],
        &StreamSettings::default(),
        &mut |_| false,
    )
    .unwrap();
    assert_eq!(out.stop, StreamStop::Cancelled);
    assert_eq!(upstream.calls.lock().unwrap().len(), 1);

    let upstream = Scripted::new("no full stop at all");
    let (out, _) = run(&upstream, &StreamSettings::default());
    assert_eq!(out.text, "NO FULL STOP AT ALL");
    assert_eq!(out.stop, StreamStop::UpstreamEnd);
    assert_eq!(out.rounds.len(), 1);
}

#[test]
fn a_conversation_without_a_user_message_is_unprocessable() {
    let err = correct_stream(
        &Scripted::new("a."),
        &Shout,
        &[ChatMessage::new("system", "hi")],
        &StreamSettings::default(),
        &mut |_| true,
    )
    .unwrap_err();
    assert!(matches!(err, BackendError::Unprocessable(_)), "{err}");
}
