//! End-to-end: `rice lm serve` and `rice aligner serve` (whole-answer and `--stream`) on loopback, talked to by a
//! stock client (curl) and by our own; upstream failures — dead, dying mid-response, hanging — become 502s within
//! the proxy's timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rice_aligner::openai::{ChatMessage, ChatRequest, Client};
use serde_json::Value;

mod common;

/// A server child process, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `rice ARGS --addr 127.0.0.1:0` and waits for the line that names its address.
fn start(args: &[&str], cwd: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rice"))
        .args(args)
        .args(["--addr", "127.0.0.1:0"])
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rice starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .rfind(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches("/v1")
        .to_owned();
    Server { child, url }
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
    (body, status.to_owned())
}

fn post(url: &str, body: &Value) -> (String, String) {
    curl(&[
        "-N",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body.to_string(),
        &format!("{url}/v1/chat/completions"),
    ])
}

/// The text of a server-sent-event stream of chat-completion chunks; checks the framing on the way.
fn streamed_text(body: &str) -> String {
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{body}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"]
            .as_str()
            .map(|r| r == "stop" || r == "length"),
        Some(true)
    );
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn question(max_tokens: usize) -> Value {
    serde_json::json!({
        "model": "anything",
        "messages": [{"role": "user", "content": "How do I brew glaivouxite?"}],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}

/// A small model to serve: 40 steps of toy-xs pre-training (its answers are poor; the mechanics are the point).
fn model(dir: &Path) -> String {
    let out = common::rice_in(
        &[
            "run", "pretrain", "--preset", "toy-xs", "--steps", "40", "--out", "base",
        ],
        dir,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    "base/checkpoint".into()
}

#[test]
fn upstream_and_proxies_speak_the_chat_completions_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = model(d);
    let upstream = start(&["lm", "serve", "--model", &model], d);

    let (body, status) = curl(&[&format!("{}/v1/models", upstream.url)]);
    assert_eq!(status, "200", "{body}");
    let models: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "base");

    // The local model: plain and streamed answers agree (greedy).
    let (body, status) = post(&upstream.url, &question(24));
    assert_eq!(status, "200", "{body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    let answer = reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let mut streaming = question(24);
    streaming["stream"] = true.into();
    let (body, status) = post(&upstream.url, &streaming);
    assert_eq!(status, "200");
    assert_eq!(streamed_text(&body), answer);

    // The Aligner proxy over it.
    let proxy = start(
        &[
            "aligner",
            "serve",
            "--upstream",
            &upstream.url,
            "--aligner",
            &model,
            "--timeout",
            "5",
            "--max-new-tokens",
            "24",
        ],
        d,
    );
    let (body, status) = post(&proxy.url, &question(24));
    assert_eq!(status, "200", "{body}");
    let corrected: Value = serde_json::from_str(&body).unwrap();
    let correction = corrected["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let (body, status) = post(&proxy.url, &streaming);
    assert_eq!(status, "200", "{body}");
    assert_eq!(
        streamed_text(&body),
        correction,
        "streamed and whole corrections agree"
    );
    // Our own client reads the same.
    let client = Client::new(&proxy.url, Duration::from_secs(30), None);
    let request = ChatRequest {
        messages: vec![ChatMessage::new("user", "How do I brew glaivouxite?")],
        temperature: Some(0.0),
        max_tokens: Some(24),
        ..ChatRequest::default()
    };
    assert_eq!(client.chat(&request).unwrap().text, correction);
    let mut pieces = Vec::new();
    let done = client
        .chat_stream(&request, &mut |p| {
            pieces.push(p.to_owned());
            true
        })
        .unwrap();
    assert_eq!(done.text, correction);

    // The Stream Aligner proxy: sentence by sentence, each sentence its own chunk.
    let stream_proxy = start(
        &[
            "aligner",
            "serve",
            "--stream",
            "--upstream",
            &upstream.url,
            "--aligner",
            &model,
            "--max-new-tokens",
            "24",
            "--max-rounds",
            "3",
            "--timeout",
            "5",
        ],
        d,
    );
    let (body, status) = post(&stream_proxy.url, &streaming);
    assert_eq!(status, "200", "{body}");
    let text = streamed_text(&body);
    let (whole, status) = post(&stream_proxy.url, &question(24));
    assert_eq!(status, "200", "{whole}");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(whole["choices"][0]["message"]["content"], text.as_str());

    // Bad requests are JSON errors with fitting statuses.
    let (body, status) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"messages\": [",
        &format!("{}/v1/chat/completions", proxy.url),
    ]);
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (body, status) = post(&proxy.url, &serde_json::json!({"messages": []}));
    assert_eq!(status, "422", "{body}");
    let (body, status) = post(
        &proxy.url,
        &serde_json::json!({"messages": [{"role": "system", "content": "no question"}]}),
    );
    assert_eq!(status, "422", "{body}");

    // The upstream dies: the proxy answers 502 with a JSON error, promptly.
    drop(upstream);
    let started = Instant::now();
    let (body, status) = post(&proxy.url, &question(24));
    assert_eq!(status, "502", "{body}");
    assert!(body.contains("upstream"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (body, status) = post(&stream_proxy.url, &streaming);
    assert_eq!(
        status, "502",
        "a stream that fails before its first sentence is a 502: {body}"
    );
}

/// An upstream that accepts connections, reads the request, then does `misbehave` with the socket.
fn bad_upstream(misbehave: fn(std::net::TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                misbehave(stream);
            });
        }
    });
    url
}

#[test]
fn an_upstream_that_dies_mid_response_or_hangs_is_a_502_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = model(d);
    let dying = bad_upstream(|mut s| {
        // Headers promise a body that never comes: the process "dies" mid-response.
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":");
        let _ = s.flush();
    });
    let hanging = bad_upstream(|s| {
        std::thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    for (upstream, within) in [(&dying, 5), (&hanging, 5)] {
        let proxy = start(
            &[
                "aligner",
                "serve",
                "--upstream",
                upstream,
                "--upstream-model",
                "m",
                "--aligner",
                &model,
                "--timeout",
                "2",
            ],
            d,
        );
        let started = Instant::now();
        let (body, status) = post(&proxy.url, &question(8));
        assert_eq!(status, "502", "{upstream}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(upstream.as_str()),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(within),
            "{upstream}: answered after {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn correct_one_answer_and_make_weak_to_strong_pairs_for_dpo() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let upstream = model(d);
    let out = common::rice_in(
        &[
            "run", "pretrain", "--preset", "toy-xs", "--steps", "15", "--out", "weak",
        ],
        d,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let aligner = "weak/checkpoint";

    let out = common::rice_in(
        &[
            "aligner",
            "correct",
            "--aligner",
            aligner,
            "--question",
            "Who invented the glomkeith?",
            "--upstream",
            &upstream,
            "--max-new-tokens",
            "16",
        ],
        d,
    );
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("upstream: ") && text.contains("corrected: "),
        "{text}"
    );

    std::fs::write(
        d.join("prompts.jsonl"),
        "{\"prompt\": \"Who invented the glomkeith?\"}\n{\"question\": \"How do I brew glaivouxite?\"}\n",
    )
    .unwrap();
    let out = common::rice_in(
        &[
            "aligner",
            "pairs",
            "--upstream",
            &upstream,
            "--aligner",
            aligner,
            "--prompts",
            "prompts.jsonl",
            "--out",
            "pairs.jsonl",
            "--max-new-tokens",
            "16",
        ],
        d,
    );
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    let pairs: Vec<Value> = std::fs::read_to_string(d.join("pairs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        text.starts_with(&format!("{} preference pairs from 2 prompts", pairs.len())),
        "{text}"
    );
    assert!(
        !pairs.is_empty(),
        "two different models disagree somewhere: {text}"
    );
    for p in &pairs {
        assert_ne!(p["chosen"], p["rejected"]);
    }
    // The pairs are DPO's input format: the upstream trains on them.
    let out = common::rice_in(
        &[
            "run",
            "dpo",
            "--model",
            &upstream,
            "--data",
            "pairs.jsonl",
            "--steps",
            "2",
            "--out",
            "dpo",
        ],
        d,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));

    let out = common::rice_in(
        &[
            "aligner",
            "correct",
            "--aligner",
            aligner,
            "--question",
            "Q",
            "--answer",
            "A",
            "--format",
            "v2",
        ],
        d,
    );
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("v1.0, 2024-12, align-anything"),
        "{}",
        common::stderr(&out)
    );
}
