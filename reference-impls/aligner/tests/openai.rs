//! The OpenAI protocol end to end over loopback HTTP: the server with small test backends, read both with the
//! crate's own [`Client`] and with raw HTTP over a `TcpStream` (to see the exact bytes of errors and event streams).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rice_aligner::openai::{
    BackendError, ChatBackend, ChatMessage, ChatRequest, Client, ClientError, Completion,
    FinishReason, ServerOptions, parse_request, serve,
};
use serde_json::{Value, json};

/// Answers with the last user message, emitted word by word (`"a"`, `" b"`, …); `max_tokens` cuts it short.
struct Echo;

impl ChatBackend for Echo {
    fn model_id(&self) -> String {
        "echo".into()
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        let words: Vec<&str> = request
            .last_user()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let budget = request.max_new_tokens().unwrap_or(usize::MAX);
        let mut text = String::new();
        for (i, word) in words.iter().take(budget).enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            text.push_str(&piece);
            if !emit(&piece) {
                break;
            }
        }
        let prompt_tokens = request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum();
        Ok(Completion {
            text,
            finish_reason: if words.len() > budget {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
            prompt_tokens,
            completion_tokens: words.len().min(budget),
        })
    }
}

/// Fails before answering anything, as a proxy does when its upstream is down.
struct Down;

impl ChatBackend for Down {
    fn model_id(&self) -> String {
        "down".into()
    }

    fn complete(
        &self,
        _: &ChatRequest,
        _: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        Err(BackendError::Upstream("the upstream is down".into()))
    }
}

/// Emits one piece, then fails.
struct BreaksOff;

impl ChatBackend for BreaksOff {
    fn model_id(&self) -> String {
        "breaks-off".into()
    }

    fn complete(
        &self,
        _: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        emit("partial");
        Err(BackendError::Internal("the model broke down".into()))
    }
}

/// Emits a piece every 20 ms for up to 20 s, and records when `emit` says nobody listens any more.
struct Slow {
    stopped: Arc<AtomicBool>,
}

impl ChatBackend for Slow {
    fn model_id(&self) -> String {
        "slow".into()
    }

    fn complete(
        &self,
        _: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        for _ in 0..1000 {
            if !emit("tick ") {
                self.stopped.store(true, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Completion {
            text: String::new(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
        })
    }
}

/// Serves `backend` on a free loopback port from a background thread; returns `http://127.0.0.1:<port>`.
fn start(backend: impl ChatBackend, options: ServerOptions) -> String {
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
            serve(listener, Arc::new(backend), options).await.unwrap();
        });
    });
    format!("http://{address}")
}

fn client(base: &str) -> Client {
    Client::new(base, Duration::from_secs(10), None)
}

fn ask(question: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", question),
        ],
        ..ChatRequest::default()
    }
}

/// An HTTP response as read off the socket, with a chunked body decoded.
struct Raw {
    status: u16,
    /// Lowercased `name: value` lines.
    headers: Vec<String>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.headers.iter().find_map(|h| h.strip_prefix(&prefix))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `data:` payloads of an event stream, in order; fails on any other non-blank line.
    fn events(&self) -> Vec<String> {
        self.body
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| {
                line.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("not a data line: {line:?}"))
                    .to_owned()
            })
            .collect()
    }
}

fn request_head(
    base: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    length: usize,
) -> String {
    let host = base.trim_start_matches("http://");
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{content_type}Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Sends one raw HTTP/1.1 request and reads the response until the server closes the connection.
fn raw(base: &str, method: &str, path: &str, content_type: Option<&str>, body: &str) -> Raw {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(request_head(base, method, path, content_type, body.len()).as_bytes())
        .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<String> = lines.map(str::to_lowercase).collect();
    let chunked = headers.iter().any(|h| h == "transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Raw {
        status,
        headers,
        body,
    }
}

/// Decodes `Transfer-Encoding: chunked`: hex size line, that many bytes, CRLF; size 0 ends it.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

fn post_json(base: &str, body: &Value) -> Raw {
    raw(
        base,
        "POST",
        "/v1/chat/completions",
        Some("application/json"),
        &body.to_string(),
    )
}

fn assert_error(response: &Raw, status: u16, kind: &str) -> String {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], Value::Null);
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn whole_answers_have_the_openai_shape() {
    let base = start(Echo, ServerOptions::default());
    let response = post_json(
        &base,
        &json!({"messages": [{"role": "user", "content": "hello there world"}]}),
    );
    assert_eq!(response.status, 200);
    let body = response.json();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "echo");
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "hello there world"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );

    let completion = client(&base)
        .chat(&ChatRequest {
            max_tokens: Some(2),
            ..ask("one two three")
        })
        .unwrap();
    assert_eq!(
        completion,
        Completion {
            text: "one two".into(),
            finish_reason: FinishReason::Length,
            prompt_tokens: 5,
            completion_tokens: 2
        }
    );
}

#[test]
fn streamed_answers_are_openai_chunks_that_reassemble_to_the_whole_answer() {
    let base = start(Echo, ServerOptions::default());
    let request =
        json!({"messages": [{"role": "user", "content": "the quick brown fox"}], "stream": true});
    let response = post_json(&base, &request);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-cache"));

    let events = response.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        chunks.len(),
        1 + 4 + 1,
        "role, four words, finish: {events:?}"
    );
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "echo");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let text: String = chunks[1..5]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "the quick brown fox");
    assert!(
        chunks[1..5]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(chunks[5]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");

    let mut deltas = Vec::new();
    let streamed = client(&base)
        .chat_stream(&ask("the quick brown fox"), &mut |piece| {
            deltas.push(piece.to_owned());
            true
        })
        .unwrap();
    assert_eq!(deltas, ["the", " quick", " brown", " fox"]);
    assert_eq!(
        streamed,
        client(&base).chat(&ask("the quick brown fox")).unwrap()
    );
}

#[test]
fn models_health_and_base_url_forms() {
    let base = start(Echo, ServerOptions::default());
    let response = raw(&base, "GET", "/v1/models", None, "");
    assert_eq!(
        response.json(),
        json!({"object": "list", "data": [{"id": "echo", "object": "model", "created": 0, "owned_by": "rice"}]})
    );
    assert_eq!(
        raw(&base, "GET", "/healthz", None, "").json(),
        json!({"status": "ok"})
    );
    for form in [
        base.clone(),
        format!("{base}/"),
        format!("{base}/v1"),
        format!("{base}/v1/"),
    ] {
        assert_eq!(client(&form).models().unwrap(), ["echo"], "{form}");
    }
}

#[test]
fn bad_requests_get_openai_shaped_errors() {
    let base = start(
        Echo,
        ServerOptions {
            max_body_bytes: 1024,
            ..ServerOptions::default()
        },
    );
    let path = "/v1/chat/completions";

    let malformed = raw(
        &base,
        "POST",
        path,
        Some("application/json"),
        "{\"messages\": [",
    );
    let message = assert_error(&malformed, 400, "invalid_request_error");
    assert!(message.contains("line 1 column"), "{message}");
    let wrong_type = post_json(&base, &json!({"messages": "hello"}));
    let message = assert_error(&wrong_type, 400, "invalid_request_error");
    assert!(
        message.contains("messages") && message.contains("line 1 column"),
        "{message}"
    );
    assert_error(
        &raw(&base, "POST", path, None, "{}"),
        415,
        "invalid_request_error",
    );

    let user = json!([{"role": "user", "content": "hi"}]);
    assert_error(
        &post_json(&base, &json!({"messages": []})),
        422,
        "invalid_request_error",
    );
    let message = assert_error(
        &post_json(&base, &json!({"messages": user, "n": 2})),
        400,
        "invalid_request_error",
    );
    assert_eq!(message, "only n = 1 is supported");
    assert_error(
        &post_json(&base, &json!({"messages": user, "temperature": 2.5})),
        400,
        "invalid_request_error",
    );
    assert_error(
        &post_json(&base, &json!({"messages": user, "top_p": 0.0})),
        400,
        "invalid_request_error",
    );
    assert_eq!(
        post_json(
            &base,
            &json!({"messages": user, "temperature": 0.0, "top_p": 1.0})
        )
        .status,
        200
    );

    let oversized = json!({"messages": [{"role": "user", "content": "word ".repeat(1000)}]});
    assert_error(&post_json(&base, &oversized), 413, "invalid_request_error");

    assert_error(
        &raw(&base, "GET", "/nowhere", None, ""),
        404,
        "invalid_request_error",
    );
    assert_error(
        &raw(
            &base,
            "POST",
            "/chat/completions",
            Some("application/json"),
            "{}",
        ),
        404,
        "invalid_request_error",
    );
    assert_error(
        &raw(&base, "GET", path, None, ""),
        405,
        "invalid_request_error",
    );

    // The client reports the server's own message.
    let error = client(&base)
        .chat(&ChatRequest {
            n: Some(2),
            ..ask("hi")
        })
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Status { status: 400, message, .. } if message == "only n = 1 is supported"),
        "{error:?}"
    );
}

#[test]
fn the_server_refuses_exactly_what_parse_request_refuses() {
    // `parse_request` is the server's own path (the fuzz target `openai_request` runs it): the same body gets the
    // same status and message over HTTP.
    let base = start(Echo, ServerOptions::default());
    let path = "/v1/chat/completions";
    let user = r#"[{"role":"user","content":"hi"}]"#;
    for body in [
        r#"{"messages": ["#.to_owned(),
        r#"{"messages": "hello"}"#.to_owned(),
        r#"{"messages": []}"#.to_owned(),
        format!(r#"{{"messages": {user}, "n": 2}}"#),
        format!(r#"{{"messages": {user}, "temperature": 2.5}}"#),
        format!(r#"{{"messages": {user}, "top_p": 0}}"#),
        format!(r#"{{"messages": {user}, "max_tokens": -1}}"#),
        format!(r#"{{"messages": {user}}} trailing"#),
        format!(r#"{{"messages": [], "messages": {user}}}"#),
        format!(r#"{{"messages": {user}, "seed": 7, "stop": "."}}"#),
    ] {
        let response = raw(&base, "POST", path, Some("application/json"), &body);
        match parse_request(body.as_bytes()) {
            Ok(_) => assert_eq!(response.status, 200, "{body}: {}", response.body),
            Err(e) => {
                let message = assert_error(&response, e.status().as_u16(), "invalid_request_error");
                assert_eq!(message, e.message(), "{body}");
            }
        }
    }
    // The content types axum's `Json` accepts, and the ones it refuses with 415.
    let body = format!(r#"{{"messages": {user}}}"#);
    for accepted in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        assert_eq!(raw(&base, "POST", path, Some(accepted), &body).status, 200);
    }
    for refused in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("json"),
    ] {
        let message = assert_error(
            &raw(&base, "POST", path, refused, &body),
            415,
            "invalid_request_error",
        );
        assert_eq!(
            message, "Expected request with `Content-Type: application/json`",
            "{refused:?}"
        );
    }
}

#[test]
fn a_failing_backend_gives_502_whether_streamed_or_not() {
    let base = start(Down, ServerOptions::default());
    let user = json!([{"role": "user", "content": "hi"}]);
    let message = assert_error(
        &post_json(&base, &json!({"messages": user})),
        502,
        "upstream_error",
    );
    assert_eq!(message, "the upstream is down");
    assert_error(
        &post_json(&base, &json!({"messages": user, "stream": true})),
        502,
        "upstream_error",
    );

    let error = client(&base)
        .chat_stream(&ask("hi"), &mut |_| true)
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Status { status: 502, .. }),
        "{error:?}"
    );
    let error = BackendError::from(client(&base).chat(&ask("hi")).unwrap_err());
    let BackendError::Upstream(message) = error else {
        panic!("{error:?}")
    };
    assert!(
        message.starts_with(&format!("upstream {base}/v1/chat/completions: HTTP 502")),
        "{message}"
    );
    assert!(message.ends_with("the upstream is down"), "{message}");
}

#[test]
fn an_error_after_the_first_piece_ends_the_stream_with_an_error_event() {
    let base = start(BreaksOff, ServerOptions::default());
    let response = post_json(
        &base,
        &json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}),
    );
    assert_eq!(response.status, 200);
    let events = response.events();
    assert_eq!(events.len(), 3, "role, piece, error: {events:?}");
    let piece: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(piece["choices"][0]["delta"]["content"], "partial");
    let error: Value = serde_json::from_str(&events[2]).unwrap();
    assert_eq!(
        error,
        json!({"error": {"message": "the model broke down", "type": "server_error", "code": null}})
    );

    let mut seen = String::new();
    let error = client(&base)
        .chat_stream(&ask("hi"), &mut |piece| {
            seen.push_str(piece);
            true
        })
        .unwrap_err();
    assert_eq!(seen, "partial");
    assert!(
        matches!(&error, ClientError::Protocol(m) if m.contains("the model broke down")),
        "{error:?}"
    );
}

#[test]
fn a_stream_stops_when_the_caller_says_so() {
    let base = start(Echo, ServerOptions::default());
    let mut calls = 0;
    let completion = client(&base)
        .chat_stream(&ask("first second third"), &mut |_| {
            calls += 1;
            false
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(completion.text, "first");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert_eq!(completion.completion_tokens, 1);
}

#[test]
fn a_client_that_goes_away_stops_the_backend() {
    let stopped = Arc::new(AtomicBool::new(false));
    let base = start(
        Slow {
            stopped: stopped.clone(),
        },
        ServerOptions::default(),
    );
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "stream": true}).to_string();
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .write_all(
            request_head(
                &base,
                "POST",
                "/v1/chat/completions",
                Some("application/json"),
                body.len(),
            )
            .as_bytes(),
        )
        .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    while !String::from_utf8_lossy(&received).contains("tick") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended early");
        received.extend_from_slice(&buffer[..n]);
    }
    assert!(!stopped.load(Ordering::SeqCst));
    drop(stream);

    let start = Instant::now();
    while !stopped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the backend kept generating for a gone client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_upstream_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let (_connection, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(30));
    });
    let start = Instant::now();
    let error = Client::new(&base, Duration::from_secs(1), None)
        .chat(&ask("hi"))
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Timeout(m) if m.starts_with(&base)),
        "{error:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_client_sends_its_key_and_reports_a_plain_error_body() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buffer = [0; 4096];
        while !String::from_utf8_lossy(&request).contains("\r\n\r\n") {
            let n = connection.read(&mut buffer).unwrap();
            request.extend_from_slice(&buffer[..n]);
        }
        let page = "<html>".to_owned() + &"x".repeat(500);
        let answer = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        connection.write_all(answer.as_bytes()).unwrap();
        String::from_utf8_lossy(&request).to_lowercase()
    });
    let error = Client::new(&base, Duration::from_secs(5), Some("sk-test".into()))
        .models()
        .unwrap_err();
    let request = server.join().unwrap();
    assert!(request.starts_with("get /v1/models http/1.1"), "{request}");
    assert!(
        request.contains("authorization: bearer sk-test"),
        "{request}"
    );
    let ClientError::Status {
        status,
        message,
        url,
    } = error
    else {
        panic!("{error:?}")
    };
    assert_eq!((status, url), (401, format!("{base}/v1/models")));
    assert!(
        message.starts_with("<html>xxx") && message.chars().count() <= 301,
        "{message}"
    );
}

/// Writes `request` on a new connection (from another thread: the server may answer and close before reading it
/// all) and reads the answer until the server closes: (status, body).
fn exchange(base: &str, request: Vec<u8>) -> (u16, String) {
    let stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut bytes = Vec::new();
    // A reset after the answer (the server closed with our request unread) ends the reading, not the test.
    let _ = (&stream).read_to_end(&mut bytes);
    sending.join().unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The limits of a chat server on the wire, with its default options: a body over 1 MiB is a 413 in OpenAI's error
/// shape, a 10 MB URI or 100 kB of headers hyper's own 431; connections that send nothing, or a request head a byte
/// at a time (slowloris), block no one and are closed `header_read_timeout` after they opened.
#[test]
fn oversized_requests_and_idle_connections_are_cut_off() {
    let base = start(
        Echo,
        ServerOptions {
            header_read_timeout: Duration::from_secs(1),
            ..ServerOptions::default()
        },
    );
    let host = base.trim_start_matches("http://").to_owned();
    let body = json!({"messages": [{"role": "user", "content": "x".repeat(2 << 20)}]}).to_string();
    let (status, answer) = exchange(
        &base,
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    assert_eq!(status, 413, "{answer}");
    let error: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert_eq!(error["error"]["code"], Value::Null);
    let uri = format!("/v1/models?{}", "a".repeat(10 << 20));
    let (status, _) = exchange(
        &base,
        format!("GET {uri} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes(),
    );
    assert_eq!(status, 431, "a 10 MB URI");
    let headers: String = (0..100)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)))
        .collect();
    let (status, _) = exchange(
        &base,
        format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n")
            .into_bytes(),
    );
    assert_eq!(status, 431, "100 kB of headers");

    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..100)
        .map(|i| {
            let mut s = TcpStream::connect(&host).unwrap();
            if i % 2 == 0 {
                s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    let slow = TcpStream::connect(&host).unwrap();
    let mut writer = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        while writer.write_all(b"X").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    assert_eq!(raw(&base, "GET", "/healthz", None, "").status, 200);
    assert!(started.elapsed() < Duration::from_millis(500));

    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buffer = [0u8; 256];
    let _ = (&slow).read(&mut buffer);
    let closed_after = opened.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "the slowloris was closed after {closed_after:?}"
    );
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Closed: end of stream or a reset; a read timeout would mean it is still open.
        let read = s.read(&mut buffer);
        assert!(
            matches!(&read, Ok(0)) || read.as_ref().is_err_and(|e| !is_timeout(e)),
            "an idle connection stayed open: {read:?}"
        );
    }
}

/// A server on loopback answers only requests that name a loopback host: a web page that re-points its own domain at
/// 127.0.0.1 (DNS rebinding) gets a 403 and cannot drive the server, or spend the proxy's upstream key.
#[test]
fn a_loopback_server_refuses_requests_for_other_hosts() {
    let base = start(Echo, ServerOptions::default());
    let port = base.rsplit(':').next().unwrap().to_owned();
    let body = r#"{"messages":[{"role":"user","content":"hi"}]}"#;
    let request = |host: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("[::2]:{port}"),
    ] {
        let (status, answer) = exchange(&base, request(&host));
        assert_eq!(status, 403, "{host}: {answer}");
        let error: Value = serde_json::from_str(&answer).unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("listens on loopback only"),
            "{answer}"
        );
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        "127.0.0.1".into(),
        format!("[::1]:{port}"),
    ] {
        let (status, answer) = exchange(&base, request(&host));
        assert_eq!(status, 200, "{host}: {answer}");
    }
}
