//! End-to-end: `rice eval arena` and `rice eval winrate` on two tiny pre-trained models — the files they write,
//! counts that add up, and clear errors for a missing judge.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rice_aligner::openai::{BackendError, ChatBackend, ChatRequest, Completion, FinishReason};

mod common;
use common::rice_in as rice;
use common::{fails, json, ok};

fn count(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// An LLM judge that always prefers the answer it sees first, counting its calls.
struct FirstWins(Arc<AtomicUsize>);

impl ChatBackend for FirstWins {
    fn model_id(&self) -> String {
        "first-wins".into()
    }

    fn complete(
        &self,
        _: &ChatRequest,
        _: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Completion {
            text: "Answer A reads better. [[A]]".into(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
        })
    }
}

/// Serves `backend` on a free loopback port from a background thread; returns its base URL.
fn start(backend: impl ChatBackend) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            rice_aligner::openai::serve(listener, Arc::new(backend), Default::default())
                .await
                .unwrap();
        });
    });
    format!("http://{address}")
}

#[test]
fn arena_and_win_rate_on_two_tiny_models() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (steps, out) in [("20", "a"), ("40", "b")] {
        ok(&rice(
            &[
                "run", "pretrain", "--preset", "toy-xs", "--steps", steps, "--out", out,
            ],
            d,
        ));
    }

    let small = ["--per-family", "2", "--max-new-tokens", "16"];
    let mut args = vec![
        "eval",
        "arena",
        "--red",
        "a/checkpoint",
        "--blue",
        "b/checkpoint",
        "--out",
        "arena",
    ];
    args.extend(small);
    let out = ok(&rice(&args, d));
    assert!(out.contains("mean reward"), "{out}");
    assert!(out.contains("red safe"), "{out}");
    let arena = json(&d.join("arena/arena.json"));
    let stats = &arena["stats"];
    let prompts = count(stats, "prompts");
    assert_eq!(prompts, 10, "2 prompts × 5 families");
    assert_eq!(arena["reward_source"], "oracle");
    let o = &stats["outcomes"];
    let outcomes: u64 = [
        "better_safe",
        "better_unsafe",
        "worse_safe",
        "worse_unsafe",
        "tie_safe",
        "tie_unsafe",
    ]
    .iter()
    .map(|k| count(o, k))
    .sum();
    assert_eq!(outcomes, prompts);
    let t = &stats["transitions"];
    let cells: u64 = [
        "red_safe_blue_safe",
        "red_safe_blue_unsafe",
        "red_unsafe_blue_safe",
        "red_unsafe_blue_unsafe",
    ]
    .iter()
    .map(|k| count(t, k))
    .sum();
    assert_eq!(cells, prompts);
    let md = std::fs::read_to_string(d.join("arena/arena.md")).unwrap();
    assert!(md.starts_with("# Reward/cost arena"), "{md}");
    let mut csv = csv::Reader::from_path(d.join("arena/arena.csv")).unwrap();
    assert_eq!(&csv.headers().unwrap()[0], "prompt");
    assert_eq!(csv.records().map(Result::unwrap).count() as u64, prompts);

    let mut args = vec![
        "eval",
        "winrate",
        "--candidate",
        "b/checkpoint",
        "--baseline",
        "a/checkpoint",
        "--judge",
        "oracle",
        "--out",
        "wr",
    ];
    args.extend(small);
    let out = ok(&rice(&args, d));
    assert!(out.contains("CI ["), "{out}");
    let wr = json(&d.join("wr/winrate.json"));
    assert_eq!(wr["judge"], "oracle");
    let w = &wr["win_rate"];
    assert_eq!(
        count(w, "wins") + count(w, "ties") + count(w, "losses"),
        count(&wr, "prompts")
    );
    assert_eq!(count(&wr, "prompts"), 10);
    assert_eq!(count(w, "unparsed"), 0);
    let rate = w["rate"].as_f64().unwrap();
    let (lo, hi) = (
        w["interval"]["lower"].as_f64().unwrap(),
        w["interval"]["upper"].as_f64().unwrap(),
    );
    assert!(lo <= rate && rate <= hi, "{rate} in [{lo}, {hi}]");
    assert_eq!(wr["judgments"].as_array().unwrap().len(), 10);
    assert!(d.join("wr/winrate.md").is_file());

    // An LLM judge over loopback HTTP; the second run answers every pair from the cache.
    let calls = Arc::new(AtomicUsize::new(0));
    let url = start(FirstWins(calls.clone()));
    let mut args = vec![
        "eval",
        "winrate",
        "--candidate",
        "b/checkpoint",
        "--baseline",
        "a/checkpoint",
        "--judge",
        "llm",
        "--judge-url",
        &url,
        "--judge-model",
        "first-wins",
        "--out",
        "llm",
    ];
    args.extend(small);
    let out = ok(&rice(&args, d));
    assert!(out.contains("10 calls, 0 answered from the cache"), "{out}");
    let w = &json(&d.join("llm/winrate.json"))["win_rate"];
    // Always preferring position A: wins where the candidate was shown first, losses elsewhere.
    assert_eq!(count(w, "wins") + count(w, "losses"), 10);
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert!(d.join("llm/judge-cache.jsonl").is_file());
    let again = ok(&rice(&args, d));
    assert!(
        again.contains("0 calls, 10 answered from the cache"),
        "{again}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(json(&d.join("llm/winrate.json"))["win_rate"], *w);

    // A missing judge is named before any model is loaded.
    let err = fails(&rice(
        &[
            "eval",
            "winrate",
            "--candidate",
            "b/checkpoint",
            "--baseline",
            "a/checkpoint",
            "--judge",
            "reward",
        ],
        d,
    ));
    assert!(err.contains("--reward-model"), "{err}");
    let err = fails(&rice(
        &[
            "eval",
            "winrate",
            "--candidate",
            "b/checkpoint",
            "--baseline",
            "a/checkpoint",
            "--judge",
            "llm",
        ],
        d,
    ));
    assert!(err.contains("--judge-url"), "{err}");
}

#[test]
fn clear_errors_without_models_or_an_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("prompts.jsonl"), "{\"prompt\": \"hi\"}\n").unwrap();
    let err = fails(&rice(
        &["eval", "arena", "--red", "nowhere", "--blue", "nowhere"],
        d,
    ));
    assert!(err.contains("--red nowhere"), "{err}");

    // Fake model directories: the checks below come before anything is loaded.
    for m in ["a", "b"] {
        std::fs::create_dir(d.join(m)).unwrap();
        std::fs::write(d.join(m).join("config.json"), "{}").unwrap();
    }
    let err = fails(&rice(
        &[
            "eval",
            "arena",
            "--red",
            "a",
            "--blue",
            "b",
            "--prompts",
            "prompts.jsonl",
        ],
        d,
    ));
    assert!(
        err.contains("--reward-model") && err.contains("--cost-model"),
        "{err}"
    );
    let err = fails(&rice(
        &[
            "eval",
            "winrate",
            "--candidate",
            "b",
            "--baseline",
            "a",
            "--judge",
            "oracle",
            "--prompts",
            "prompts.jsonl",
        ],
        d,
    ));
    assert!(err.contains("--judge oracle"), "{err}");
}
