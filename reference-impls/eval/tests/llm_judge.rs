//! The LLM judge end to end over loopback HTTP: a scripted OpenAI-compatible judge that prefers the longer answer,
//! served by `rice_aligner::openai::serve`. Checks that verdicts come back mapped through the position swap, that an
//! unreadable reply is counted as unparsed, and that a second run with the same cache makes no calls.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rice_aligner::openai::{
    BackendError, ChatBackend, ChatRequest, Client, Completion, FinishReason, ServerOptions, serve,
};
use rice_eval::answers::AnswerPair;
use rice_eval::judge::{Judge, LlmJudge, candidate_is_a, judge_pairs, pair_hash};
use rice_eval::winrate::{Verdict, WinRate};

/// Prefers the longer of the two answers in the judge prompt; says nothing readable when the request mentions
/// "undecidable". Counts the requests it answers.
struct LongerWins {
    calls: Arc<AtomicUsize>,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect("the judge prompt has the marker") + start.len();
    let to = from
        + text[from..]
            .find(end)
            .expect("the judge prompt has the end marker");
    &text[from..to]
}

impl ChatBackend for LongerWins {
    fn model_id(&self) -> String {
        "longer-wins".into()
    }

    fn complete(
        &self,
        request: &ChatRequest,
        _: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(request.model.as_deref(), Some("longer-wins"));
        let text = request.last_user().unwrap_or_default();
        let a = between(text, "[Answer A]\n", "\n[End of answer A]");
        let b = between(text, "[Answer B]\n", "\n[End of answer B]");
        let reply = if text.contains("undecidable") {
            "Both have merit; I cannot decide.".to_owned()
        } else {
            // Quote the format first, as real judges do: the last marker must win.
            let verdict = if a.len() > b.len() { "[[A]]" } else { "[[B]]" };
            format!(
                "The format is [[A]], [[B]] or [[tie]]. The longer answer is better.\n{verdict}"
            )
        };
        Ok(Completion {
            text: reply,
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
        })
    }
}

/// Serves `backend` on a free loopback port from a background thread; returns its base URL.
fn start(backend: impl ChatBackend) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, Arc::new(backend), ServerOptions::default())
                .await
                .unwrap();
        });
    });
    format!("http://{address}")
}

fn pair(prompt: &str, baseline: &str, candidate: &str) -> AnswerPair {
    AnswerPair {
        family: None,
        prompt: prompt.into(),
        baseline: baseline.into(),
        candidate: candidate.into(),
        oracle: None,
    }
}

#[test]
fn verdicts_map_back_through_the_swap_and_the_cache_saves_every_call() {
    let calls = Arc::new(AtomicUsize::new(0));
    let url = start(LongerWins {
        calls: calls.clone(),
    });
    // Candidate longer in the even prompts, shorter in the odd ones, and one the judge cannot decide.
    let mut pairs: Vec<AnswerPair> = (0..12)
        .map(|i| {
            let (short, long) = ("No.", "Yes: 3 + 4 = 7, so the answer is 7.");
            if i % 2 == 0 {
                pair(&format!("question {i}"), short, long)
            } else {
                pair(&format!("question {i}"), long, short)
            }
        })
        .collect();
    pairs.push(pair("an undecidable question", "x", "y"));
    let shown_first: Vec<bool> = pairs
        .iter()
        .map(|p| candidate_is_a(pair_hash(&p.prompt, &p.candidate, &p.baseline)))
        .collect();
    assert!(
        shown_first.iter().any(|&f| f) && shown_first.iter().any(|&f| !f),
        "the test needs pairs shown in both orders: {shown_first:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.jsonl");
    let client = || Client::new(&url, Duration::from_secs(30), None);
    let mut llm = LlmJudge::new(client(), "longer-wins".into(), Some(&cache)).unwrap();
    let judgments = judge_pairs(&pairs, &mut Judge::Llm(&mut llm), &mut |_, _| {}).unwrap();
    let verdicts: Vec<Option<Verdict>> = judgments.iter().map(|j| j.verdict).collect();
    for (i, v) in verdicts.iter().take(12).enumerate() {
        let expected = if i % 2 == 0 {
            Verdict::Win
        } else {
            Verdict::Loss
        };
        assert_eq!(
            *v,
            Some(expected),
            "pair {i} (candidate shown first: {})",
            shown_first[i]
        );
    }
    assert_eq!(verdicts[12], None, "an unreadable reply is unparsed");
    assert_eq!(calls.load(Ordering::SeqCst), pairs.len());
    assert_eq!((llm.calls(), llm.cache_hits()), (pairs.len(), 0));

    let w = WinRate::new(&verdicts, 500, 0.95, 0);
    assert_eq!((w.wins, w.ties, w.losses, w.unparsed), (6, 0, 6, 1));
    assert_eq!(w.rate, 0.5);

    // A second run with the same cache asks the endpoint nothing and reaches the same verdicts.
    let mut again = LlmJudge::new(client(), "longer-wins".into(), Some(&cache)).unwrap();
    let second = judge_pairs(&pairs, &mut Judge::Llm(&mut again), &mut |_, _| {}).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), pairs.len(), "no new calls");
    assert_eq!((again.calls(), again.cache_hits()), (0, pairs.len()));
    assert_eq!(
        second.iter().map(|j| j.verdict).collect::<Vec<_>>(),
        verdicts
    );

    // A new pair is the only one asked for.
    pairs.push(pair(
        "question 99",
        "a short one",
        "a much, much longer one",
    ));
    let mut third = LlmJudge::new(client(), "longer-wins".into(), Some(&cache)).unwrap();
    let last = judge_pairs(&pairs, &mut Judge::Llm(&mut third), &mut |_, _| {}).unwrap();
    assert_eq!(third.calls(), 1);
    assert_eq!(last.last().unwrap().verdict, Some(Verdict::Win));
    assert_eq!(calls.load(Ordering::SeqCst), pairs.len());
}

#[test]
fn connect_names_the_first_listed_model_and_a_dead_endpoint_is_an_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let url = start(LongerWins { calls });
    let llm = LlmJudge::connect(&url, None, Duration::from_secs(30), None, None).unwrap();
    assert_eq!(llm.model(), "longer-wins");

    // Nothing listens on a port we bound and released.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut judge = LlmJudge::new(
        Client::new(&dead, Duration::from_secs(5), None),
        "m".into(),
        None,
    )
    .unwrap();
    let err = judge.judge("p", "a", "b").unwrap_err().to_string();
    assert!(err.contains("LLM judge"), "{err}");
}
