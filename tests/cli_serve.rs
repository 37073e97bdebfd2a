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
    let mut command = Command::new(env!("CARGO_BIN_EXE_rice"));
    command.args(args).current_dir(cwd);
    start_command(command)
}

/// [`start`] for a command the caller set up (its environment, say).
fn start_command(mut command: Command) -> Server {
    let mut child = command
        .args(["--addr", "127.0.0.1:0"])
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
fn an_upstream_that_dies_mid_response_hangs_or_answers_garbage_is_a_502_within_the_timeout() {
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
    let garbage = bad_upstream(|mut s| {
        // A complete answer that is not the chat-completions JSON at all.
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 23\r\n\r\n<html>Welcome!</html>\r\n");
        let _ = s.flush();
    });
    let wrong_shape = bad_upstream(|mut s| {
        // JSON, but not an answer: no `choices`.
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"object\":1}");
        let _ = s.flush();
    });
    for (upstream, within) in [(&dying, 5), (&hanging, 5), (&garbage, 5), (&wrong_shape, 5)] {
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
        eprintln!("{upstream}: 502 {body}");
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

// ── Security and load: loopback by default, no forwarded credentials, timeouts kept under a storm ─────────────

/// A model to serve where its answers do not matter: two steps of toy-xs pre-training (a few seconds).
fn untrained_model(dir: &Path) -> String {
    let out = common::rice_in(
        &[
            "run",
            "pretrain",
            "--preset",
            "toy-xs",
            "--steps",
            "2",
            "--out",
            "untrained",
        ],
        dir,
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    "untrained/checkpoint".into()
}

/// The sockets `pid` listens on, as `(address, port)` from `/proc/net/tcp` and `/proc/net/tcp6` (hex, as the kernel
/// writes them; 127.0.0.1 is `0100007F`).
#[cfg(target_os = "linux")]
fn listening_sockets(pid: u32) -> Vec<(String, u16)> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st (0A: LISTEN) field 3, inode field 9.
            if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                let (address, port) = fields[1].split_once(':').unwrap();
                sockets.push((address.to_owned(), u16::from_str_radix(port, 16).unwrap()));
            }
        }
    }
    sockets
}

/// `rice serve`, `rice lm serve` and `rice aligner serve` started without `--addr` listen on 127.0.0.1 only (the
/// kernel's socket table says so), or — when another program holds the default port — fail naming that loopback
/// address.
#[cfg(target_os = "linux")]
#[test]
fn every_server_binds_to_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = untrained_model(d);
    for (args, port) in [
        (vec!["serve"], 8080),
        (vec!["lm", "serve", "--model", &model], 8081),
        (
            vec![
                "aligner",
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--upstream-model",
                "m",
                "--aligner",
                &model,
            ],
            8090,
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rice"))
            .args(&args)
            .current_dir(d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            // It could not start: the only acceptable reason is the default port in use, named as loopback.
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(!child.wait().unwrap().success());
            assert!(
                stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
                "{args:?}: {stderr}"
            );
            continue;
        }
        let server = Server {
            child,
            url: String::new(),
        };
        let sockets = listening_sockets(server.child.id());
        drop(server);
        assert!(
            line.contains(&format!("http://127.0.0.1:{port}/")),
            "{args:?}: {line}"
        );
        assert_eq!(
            sockets,
            [("0100007F".to_owned(), port)],
            "{args:?} listens elsewhere too"
        );
    }
}

/// Sends one raw HTTP/1.1 POST with `headers` and reads the answer until the server closes:
/// (status, body, how long it took).
fn post_raw(url: &str, path: &str, headers: &[&str], body: &str) -> (u16, String, Duration) {
    let address = url.trim_start_matches("http://");
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned(), elapsed)
}

/// An upstream on loopback that records every request it receives (head and body, lowercased) and answers each
/// with a fixed whole chat completion.
fn recording_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut request = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                request.push_str(&line);
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            request.push_str(&String::from_utf8_lossy(&body));
            record.lock().unwrap().push(request.to_lowercase());
            let answer = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Brew it slowly."},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3}}"#;
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

/// The correcting proxy sends the upstream its own key (`OPENAI_API_KEY`) and nothing of the client's: not its
/// Authorization, cookies, API-key or forwarding headers. Without a key of its own it sends no Authorization at all.
#[test]
fn the_proxy_never_forwards_the_clients_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = untrained_model(d);
    let (upstream, seen) = recording_upstream();
    let client_secrets = [
        "Authorization: Bearer sk-client-secret",
        "Cookie: session=client-cookie",
        "X-Api-Key: client-x-key",
        "OpenAI-Organization: org-client-secret",
        "Proxy-Authorization: Basic Y2xpZW50LXByb3h5",
        "X-Forwarded-For: 10.9.8.7",
    ];
    for key in [Some("sk-proxy-own-key"), None] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rice"));
        command
            .args([
                "aligner",
                "serve",
                "--upstream",
                &upstream,
                "--upstream-model",
                "m",
            ])
            .args([
                "--aligner",
                &model,
                "--max-new-tokens",
                "4",
                "--timeout",
                "10",
            ])
            .current_dir(d);
        match key {
            Some(key) => command.env("OPENAI_API_KEY", key),
            None => command.env_remove("OPENAI_API_KEY"),
        };
        let proxy = start_command(command);
        seen.lock().unwrap().clear();
        let (status, body, _) = post_raw(
            &proxy.url,
            "/v1/chat/completions",
            &client_secrets,
            &question(4).to_string(),
        );
        assert_eq!(status, 200, "{body}");
        let requests = seen.lock().unwrap().clone();
        assert_eq!(requests.len(), 1, "{requests:?}");
        let request = &requests[0];
        assert!(
            request.starts_with("post /v1/chat/completions "),
            "{request}"
        );
        assert!(
            request.contains("glaivouxite"),
            "the question goes up: {request}"
        );
        for secret in [
            "sk-client-secret",
            "client-cookie",
            "client-x-key",
            "org-client-secret",
            "y2xpzw50lxbyb3h5",
            "10.9.8.7",
            "cookie:",
            "x-forwarded-for:",
            "proxy-authorization:",
        ] {
            assert!(
                !request.contains(secret),
                "{secret} was forwarded: {request}"
            );
        }
        match key {
            Some(key) => assert!(
                request.contains(&format!("authorization: bearer {key}")),
                "{request}"
            ),
            None => assert!(!request.contains("authorization:"), "{request}"),
        }
    }
}

/// 32 streaming clients at once through `rice aligner serve --timeout 1` whose upstream is slow — half the
/// connections hang silent, half trickle a body a byte every 300 ms — each get the documented 502 (OpenAI error
/// shape) within the timeout plus a second; `/healthz` answers promptly throughout; once the upstream recovers, a
/// normal streamed answer goes through.
#[test]
fn the_proxy_keeps_its_timeout_for_many_streaming_clients_of_a_slow_upstream() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CLIENTS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = untrained_model(d);

    let healthy = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let state = healthy.clone();
    std::thread::spawn(move || {
        let count = AtomicUsize::new(0);
        for stream in listener.incoming().flatten() {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let healthy = state.load(Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 8192];
                let _ = stream.read(&mut buffer);
                if healthy {
                    let answer = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Brew it slowly."},"finish_reason":"stop"}]}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                } else if n.is_multiple_of(2) {
                    std::thread::sleep(Duration::from_secs(30));
                } else {
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                    );
                    for byte in std::iter::repeat_n(b" ", 100) {
                        if stream.write_all(byte).is_err() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    }
                }
            });
        }
    });
    let proxy = start(
        &[
            "aligner",
            "serve",
            "--upstream",
            &upstream,
            "--upstream-model",
            "m",
            "--aligner",
            &model,
            "--timeout",
            "1",
            "--max-new-tokens",
            "4",
        ],
        d,
    );
    let mut streaming = question(8);
    streaming["stream"] = true.into();
    let body = streaming.to_string();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, body) = (proxy.url.clone(), body.clone());
            std::thread::spawn(move || post_raw(&url, "/v1/chat/completions", &[], &body))
        })
        .collect();
    // Meanwhile the proxy's own health check answers at once.
    let mut health = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        let started = Instant::now();
        let (body, status) = curl(&[&format!("{}/healthz", proxy.url)]);
        assert_eq!(status, "200", "{body}");
        health.push(started.elapsed());
    }
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (status, body, elapsed) = client.join().unwrap();
        assert_eq!(status, 502, "{body}");
        let error: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(error["error"]["type"], "upstream_error", "{body}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no answer within 1s"),
            "{body}"
        );
        slowest = slowest.max(elapsed);
    }
    let health_slowest = health.iter().max().unwrap();
    eprintln!(
        "{CLIENTS} clients: slowest 502 after {slowest:?}; slowest /healthz during the storm {health_slowest:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a client waited {slowest:?}"
    );
    assert!(
        *health_slowest < Duration::from_millis(500),
        "/healthz took {health_slowest:?}"
    );

    healthy.store(true, Ordering::SeqCst);
    let (body, status) = post(&proxy.url, &streaming);
    assert_eq!(status, "200", "{body}");
    streamed_text(&body);
}
