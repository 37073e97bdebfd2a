//! The OpenAI chat-completions protocol, both ways: a server (`/v1/chat/completions`, `/v1/models`, with `stream:
//! true` as server-sent events) over any [`ChatBackend`], and a blocking [`Client`] for upstream endpoints (any
//! OpenAI-compatible server: vLLM, llama.cpp, `rice lm serve`, OpenAI itself).
//!
//! The server is what `rice lm serve` (a local model) and `rice aligner serve` (the correcting proxy) run; the client
//! is how the proxy and the composition code reach an upstream model.

use std::convert::Infallible;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, MissingJsonContentType};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One message of a conversation. Requests may give `content` as a string or as a list of parts
/// (`[{"type": "text", "text": "…"}]`); the text parts are joined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(deserialize_with = "content_text")]
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

fn content_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
        Null(()),
    }
    Ok(match Content::deserialize(d)? {
        Content::Text(s) => s,
        Content::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
        Content::Null(()) => String::new(),
    })
}

/// `stop` is a string or a list of strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn strings(&self) -> Vec<&str> {
        match self {
            Stop::One(s) => vec![s.as_str()],
            Stop::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A `/v1/chat/completions` request. Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// The newer name of `max_tokens`; wins when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Only 1 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(default)]
    pub stream: bool,
    /// vLLM's extension: the last message is an assistant turn to continue (a pre-filled answer prefix) rather than
    /// a finished one. `rice lm serve` also continues a final assistant message when this is absent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_final_message: bool,
    /// vLLM's companion of `continue_final_message` (false when continuing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
}

impl ChatRequest {
    /// The token budget the request asks for, if any.
    pub fn max_new_tokens(&self) -> Option<usize> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The content of the last user message (what Aligner calls the question).
    pub fn last_user(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
    }
}

/// Why a completion ended, in OpenAI's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
}

/// What a backend produced for one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// Why a backend could not answer; each maps to an HTTP status and an OpenAI-style JSON error.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// 400: the request cannot be served as asked (e.g. `n` > 1).
    #[error("{0}")]
    Invalid(String),
    /// 422: well-formed JSON whose content is unusable (e.g. no user message).
    #[error("{0}")]
    Unprocessable(String),
    /// 502: the upstream model failed, timed out or sent something unusable.
    #[error("{0}")]
    Upstream(String),
    /// 500: a failure of our own (the model's forward pass, say).
    #[error("{0}")]
    Internal(String),
}

/// Something that answers chat requests: a local model, or a correcting proxy.
pub trait ChatBackend: Send + Sync + 'static {
    /// The model id shown by `/v1/models` and in responses.
    fn model_id(&self) -> String;
    /// Answers `request`. `emit` receives each piece of text as soon as it is final (the server streams them);
    /// it returns false once nobody listens any more (the client went away), and the backend should then stop early.
    /// Runs on a blocking thread.
    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError>;
}

// ---------------------------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------------------------

/// How the server treats requests.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// A connection that has not sent a whole request head this long after it opened (or after its last answer) is
    /// closed: idle and slowly-sent ("slowloris") connections cannot pile up. Answers may take as long as they need.
    pub header_read_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_bytes: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// The whole HTTP API over `backend`: `GET /v1/models`, `POST /v1/chat/completions`, `GET /healthz`; anything else
/// is a JSON 404 (or 405).
pub fn router(backend: Arc<dyn ChatBackend>, options: ServerOptions) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(backend)
}

/// Serves [`router`] on `listener` until ctrl-c or SIGTERM, then lets running requests finish. Connections that send
/// no whole request head within `header_read_timeout` are closed (see `rice-http`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    backend: Arc<dyn ChatBackend>,
    options: ServerOptions,
) -> std::io::Result<()> {
    let header_read_timeout = options.header_read_timeout;
    let mut app = router(backend, options);
    if listener.local_addr()?.ip().is_loopback() {
        app = app.layer(axum::middleware::from_fn(loopback_hosts_only));
    }
    rice_http::serve(listener, app, header_read_timeout).await
}

/// On a server that listens on loopback, refuses requests that name another host (403). A web page whose domain is
/// re-pointed at 127.0.0.1 ("DNS rebinding") could otherwise drive the server from the user's browser — and the
/// proxy spends the upstream's key. A request without `Host` (HTTP/1.0) is let through: browsers always send one.
async fn loopback_hosts_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(host) = request.headers().get(header::HOST)
        && !is_loopback_host(host.to_str().unwrap_or(""))
    {
        let shown: String = String::from_utf8_lossy(host.as_bytes())
            .chars()
            .take(100)
            .collect();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "host `{shown}` is not this server: it listens on loopback only (use --addr 0.0.0.0:PORT to serve \
                 other hosts)"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(inside, _)| inside),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error as OpenAI sends it, `{"error": {"message", "type", "code": null}}`, with a fitting HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the client is told, e.g. "only n = 1 is supported".
    pub fn message(&self) -> &str {
        &self.message
    }

    fn body(&self) -> Value {
        let kind = match self.status {
            StatusCode::BAD_GATEWAY => "upstream_error",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": self.message, "type": kind, "code": null}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> ApiError {
        let status = match &error {
            BackendError::Invalid(_) => StatusCode::BAD_REQUEST,
            BackendError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BackendError::Upstream(_) => StatusCode::BAD_GATEWAY,
            BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        // A field of the wrong type is as much a malformed request as a syntax error (axum says 422); we keep 422
        // for well-formed requests whose content is unusable. The text names the field, line and column.
        let status = match rejection {
            JsonRejection::JsonDataError(_) => StatusCode::BAD_REQUEST,
            _ => rejection.status(),
        };
        ApiError::new(status, rejection.body_text())
    }
}

/// The backend's worker thread ended without an answer (it panicked).
fn worker_died() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the model stopped without an answer (see the server log)",
    )
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn models(State(backend): State<Arc<dyn ChatBackend>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": backend.model_id(), "object": "model", "created": 0, "owned_by": "rice"}],
    }))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; this server answers POST /v1/chat/completions and GET /v1/models",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not answer {method}", uri.path()),
    )
}

/// A `/v1/chat/completions` body as the server reads it: JSON parsed exactly as axum's `Json` extractor parses it
/// (a syntax error or a field of the wrong type is a 400 naming the field, line and column), then checked against
/// what the backends can honour. Every error is a client error (4xx).
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let Json(request) = Json::<ChatRequest>::from_bytes(body)?;
    validate(&request)?;
    Ok(request)
}

/// `Content-Type: application/json` or `application/*+json`, as axum's `Json` extractor requires.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|name| name == "json"))
        })
}

/// Refuses what the backend cannot honour before it runs.
fn validate(request: &ChatRequest) -> Result<(), ApiError> {
    let invalid = |message: &str| Err(ApiError::new(StatusCode::BAD_REQUEST, message));
    if request.messages.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`messages` must hold at least one message",
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return invalid("only n = 1 is supported");
    }
    if request
        .temperature
        .is_some_and(|t| !(0.0..=2.0).contains(&t))
    {
        return invalid("`temperature` must lie in [0, 2]");
    }
    if request.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return invalid("`top_p` must lie in (0, 1]");
    }
    Ok(())
}

/// What the JSON objects of one answer share: its id, creation time and model.
struct Answer {
    id: String,
    created: u64,
    model: String,
}

impl Answer {
    fn new(model: String) -> Answer {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Answer {
            // Unique within this process (the counter) and across restarts (the clock).
            id: format!(
                "chatcmpl-{:x}{:04x}",
                now.as_micros(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            created: now.as_secs(),
            model,
        }
    }

    /// The `chat.completion` object of a whole answer.
    fn completion(&self, completion: &Completion) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }],
            "usage": usage(completion),
        })
    }

    /// One `chat.completion.chunk` of a streamed answer.
    fn chunk(&self, delta: Value, finish_reason: Option<FinishReason>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
    }
}

fn usage(completion: &Completion) -> Value {
    json!({
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
    })
}

async fn chat_completions(
    State(backend): State<Arc<dyn ChatBackend>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !is_json(&headers) {
        return Err(JsonRejection::from(MissingJsonContentType::default()).into());
    }
    let request = parse_request(&body.map_err(JsonRejection::from)?)?;
    let answer = Answer::new(backend.model_id());
    if request.stream {
        return stream_completion(backend, request, answer).await;
    }
    let completion = tokio::task::spawn_blocking(move || backend.complete(&request, &mut |_| true))
        .await
        .map_err(|_| worker_died())??;
    Ok(Json(answer.completion(&completion)).into_response())
}

/// What the backend's worker thread tells the response stream.
enum Progress {
    Piece(String),
    Done(Result<Completion, BackendError>),
}

/// Streams the answer as server-sent events: a role chunk, one chunk per piece the backend emits, a final chunk with
/// the finish reason, then `[DONE]`. The final chunk also carries `usage` (as llama.cpp's server does), so that
/// streaming clients learn the token counts; OpenAI's own clients ignore it. A failure mid-stream becomes one `{"error": …}` event and the
/// stream ends without `[DONE]`.
async fn stream_completion(
    backend: Arc<dyn ChatBackend>,
    request: ChatRequest,
    answer: Answer,
) -> Result<Response, ApiError> {
    let (sender, mut receiver) = mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        // The send fails once the response stream is dropped, i.e. the client went away.
        let mut emit = |piece: &str| {
            sender
                .blocking_send(Progress::Piece(piece.to_owned()))
                .is_ok()
        };
        let result = backend.complete(&request, &mut emit);
        // Nobody may be listening any more; then there is nobody to tell.
        let _ = sender.blocking_send(Progress::Done(result));
    });

    // A backend that fails before its first piece gets a plain JSON error with its real status, not a 200 stream.
    let first = match receiver.recv().await {
        Some(Progress::Done(Err(error))) => return Err(error.into()),
        Some(progress) => progress,
        None => return Err(worker_died()),
    };

    let role = answer.chunk(json!({"role": "assistant", "content": ""}), None);
    let rest = stream::unfold(Some((receiver, Some(first), answer)), |state| async move {
        let (mut receiver, first, answer) = state?;
        let progress = match first {
            Some(progress) => Some(progress),
            None => receiver.recv().await,
        };
        let (data, next) = match progress {
            Some(Progress::Piece(piece)) => {
                let chunk = answer.chunk(json!({"content": piece}), None);
                (vec![chunk.to_string()], Some((receiver, None, answer)))
            }
            Some(Progress::Done(Ok(completion))) => {
                let mut last = answer.chunk(json!({}), Some(completion.finish_reason));
                last["usage"] = usage(&completion);
                (vec![last.to_string(), "[DONE]".to_owned()], None)
            }
            Some(Progress::Done(Err(error))) => {
                (vec![ApiError::from(error).body().to_string()], None)
            }
            None => (vec![worker_died().body().to_string()], None),
        };
        Some((stream::iter(data), next))
    })
    .flatten();
    let events = stream::once(async move { role.to_string() })
        .chain(rest)
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Ok(Sse::new(events).into_response())
}

// ---------------------------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------------------------

/// Why a request to an upstream endpoint failed. Every message starts with the URL.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No complete answer within the client's timeout.
    #[error("{0}")]
    Timeout(String),
    /// The endpoint could not be reached, or the connection broke.
    #[error("{0}")]
    Connect(String),
    /// The endpoint answered with a non-2xx status.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        /// The endpoint's own error message if its body is OpenAI-shaped JSON, else the body (at most 300 chars).
        message: String,
    },
    /// The answer could not be understood, or a stream ended with an error event.
    #[error("{0}")]
    Protocol(String),
}

impl From<ClientError> for BackendError {
    fn from(error: ClientError) -> BackendError {
        BackendError::Upstream(format!("upstream {error}"))
    }
}

/// A blocking client for any OpenAI-compatible chat-completions endpoint.
#[derive(Clone, Debug)]
pub struct Client {
    agent: ureq::Agent,
    /// The API root, ending in `/v1`.
    base: String,
    api_key: Option<String>,
    timeout: Duration,
}

/// The parts of a `chat.completion` or `chat.completion.chunk` (or an error body) the client reads.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    choices: Vec<ReplyChoice>,
    #[serde(default)]
    usage: Option<ReplyUsage>,
    #[serde(default)]
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyChoice {
    /// Set in whole answers.
    #[serde(default)]
    message: Option<ReplyContent>,
    /// Set in stream chunks.
    #[serde(default)]
    delta: Option<ReplyContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ReplyContent {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Default, Deserialize)]
struct ReplyUsage {
    #[serde(default)]
    prompt_tokens: usize,
    #[serde(default)]
    completion_tokens: usize,
}

#[derive(Deserialize)]
struct ReplyError {
    message: String,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// At most 300 characters of `text`, for error messages.
fn excerpt(text: &str) -> String {
    let mut excerpt: String = text.chars().take(300).collect();
    if excerpt.len() < text.len() {
        excerpt.push('…');
    }
    excerpt
}

impl Client {
    /// A client for the endpoint at `base_url` (`http://host:port`, with or without a trailing `/` or `/v1`).
    /// Every request, the whole streamed body included, must finish within `timeout`. With an `api_key`, requests
    /// carry `Authorization: Bearer <key>`.
    pub fn new(base_url: &str, timeout: Duration, api_key: Option<String>) -> Client {
        let root = base_url.trim_end_matches('/');
        let root = root.strip_suffix("/v1").unwrap_or(root);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Error bodies carry the upstream's explanation; read them instead of failing on the status.
            .http_status_as_error(false)
            .build()
            .new_agent();
        Client {
            agent,
            base: format!("{root}/v1"),
            api_key,
            timeout,
        }
    }

    /// The ids of the models the endpoint serves (`GET /v1/models`).
    pub fn models(&self) -> Result<Vec<String>, ClientError> {
        let url = format!("{}/models", self.base);
        let body = self.read_body(&url, self.send(&url, None)?)?;
        let list: ModelList = self.parse(&url, &body)?;
        Ok(list.data.into_iter().map(|model| model.id).collect())
    }

    /// Asks for a whole answer (`stream: false`, whatever `request` says).
    pub fn chat(&self, request: &ChatRequest) -> Result<Completion, ClientError> {
        let url = format!("{}/chat/completions", self.base);
        let request = ChatRequest {
            stream: false,
            ..request.clone()
        };
        let body = self.read_body(&url, self.send(&url, Some(&request))?)?;
        let reply: Reply = self.parse(&url, &body)?;
        let Some(choice) = reply.choices.into_iter().next() else {
            return Err(ClientError::Protocol(format!(
                "{url}: the answer has no choices: {}",
                excerpt(&body)
            )));
        };
        let usage = reply.usage.unwrap_or_default();
        Ok(Completion {
            text: choice.message.and_then(|m| m.content).unwrap_or_default(),
            finish_reason: finish_reason(choice.finish_reason.as_deref()),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }

    /// Asks for a streamed answer (`stream: true`) and hands each piece of text to `on_delta` as it arrives. When
    /// `on_delta` returns false, reading stops at once and the connection is dropped (the upstream stops
    /// generating); the text so far is returned with finish reason `stop`. Without usage in the stream,
    /// `completion_tokens` counts the pieces.
    pub fn chat_stream(
        &self,
        request: &ChatRequest,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, ClientError> {
        let url = format!("{}/chat/completions", self.base);
        let request = ChatRequest {
            stream: true,
            ..request.clone()
        };
        let response = self.send(&url, Some(&request))?;
        let lines = std::io::BufReader::new(response.into_body().into_reader()).lines();
        let mut completion = Completion {
            text: String::new(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: 0,
            completion_tokens: 0,
        };
        let mut pieces = 0;
        let mut usage = None;
        for line in lines {
            let line = line.map_err(|e| self.transport_error(&url, e.into()))?;
            // Events arrive on `data:` lines; comments, other fields and the blank separators carry nothing.
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let chunk: Reply = self.parse(&url, data)?;
            if let Some(error) = chunk.error {
                return Err(ClientError::Protocol(format!(
                    "{url}: the stream broke off: {}",
                    error.message
                )));
            }
            usage = chunk.usage.or(usage);
            let Some(choice) = chunk.choices.into_iter().next() else {
                continue;
            };
            if choice.finish_reason.is_some() {
                completion.finish_reason = finish_reason(choice.finish_reason.as_deref());
            }
            let piece = choice.delta.and_then(|d| d.content).unwrap_or_default();
            if piece.is_empty() {
                continue;
            }
            completion.text.push_str(&piece);
            pieces += 1;
            if !on_delta(&piece) {
                // Returning drops the response, and with it the connection.
                completion.finish_reason = FinishReason::Stop;
                usage = None;
                break;
            }
        }
        let usage = usage.unwrap_or(ReplyUsage {
            prompt_tokens: 0,
            completion_tokens: pieces,
        });
        completion.prompt_tokens = usage.prompt_tokens;
        completion.completion_tokens = usage.completion_tokens;
        Ok(completion)
    }

    /// Sends a GET (no body) or a POST of `request`; a non-2xx answer becomes [`ClientError::Status`].
    fn send(
        &self,
        url: &str,
        request: Option<&ChatRequest>,
    ) -> Result<ureq::http::Response<ureq::Body>, ClientError> {
        let authorization = self.api_key.as_ref().map(|key| format!("Bearer {key}"));
        let sent = match request {
            Some(request) => {
                let mut builder = self.agent.post(url);
                if let Some(value) = &authorization {
                    builder = builder.header("Authorization", value);
                }
                builder.send_json(request)
            }
            None => {
                let mut builder = self.agent.get(url);
                if let Some(value) = &authorization {
                    builder = builder.header("Authorization", value);
                }
                builder.call()
            }
        };
        let response = sent.map_err(|e| self.transport_error(url, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = self.read_body(url, response)?;
        let message = match serde_json::from_str::<Reply>(&body) {
            Ok(Reply {
                error: Some(error), ..
            }) => error.message,
            _ => excerpt(&body),
        };
        Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
        })
    }

    fn read_body(
        &self,
        url: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<String, ClientError> {
        response
            .into_body()
            .read_to_string()
            .map_err(|e| self.transport_error(url, e))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &str,
    ) -> Result<T, ClientError> {
        serde_json::from_str(body).map_err(|e| {
            ClientError::Protocol(format!("{url}: unusable answer ({e}): {}", excerpt(body)))
        })
    }

    fn transport_error(&self, url: &str, error: ureq::Error) -> ClientError {
        use std::io::ErrorKind;
        match error {
            ureq::Error::Timeout(_) => {
                ClientError::Timeout(format!("{url}: no answer within {:?}", self.timeout))
            }
            ureq::Error::Io(e)
                if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                ClientError::Timeout(format!("{url}: no answer within {:?}", self.timeout))
            }
            ureq::Error::Io(e) if e.kind() == ErrorKind::InvalidData => {
                ClientError::Protocol(format!("{url}: unusable answer: {e}"))
            }
            ureq::Error::Io(e) => ClientError::Connect(format!("{url}: {e}")),
            e @ (ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BadUri(_)) => ClientError::Connect(format!("{url}: {e}")),
            e => ClientError::Protocol(format!("{url}: {e}")),
        }
    }
}
