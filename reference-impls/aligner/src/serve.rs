//! Upstreams and the correcting proxy: a remote endpoint ([`RemoteModel`], reached with the [`Client`]), the choice
//! between it and a local model ([`upstream`]), and [`AlignerBackend`] (`rice aligner serve`): the upstream answers,
//! the aligner corrects, the client gets the correction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rice_lm::text::Template;

use crate::aligner::Aligner;
use crate::local::{LocalModel, finish_reason};
use crate::openai::{BackendError, ChatBackend, ChatRequest, Client, Completion};

/// An OpenAI-compatible endpoint as an upstream. A streaming request streams from the endpoint, so that `emit`
/// returning false drops the connection: the upstream stops generating (vLLM aborts a request whose client left).
pub struct RemoteModel {
    pub client: Client,
    /// The model name sent upstream; `None` passes the caller's through.
    pub model: Option<String>,
    pub url: String,
}

impl RemoteModel {
    /// `url` (e.g. `http://127.0.0.1:8081` or `https://api.openai.com/v1`); every call fails within `timeout`. The
    /// API key comes from `OPENAI_API_KEY` when set. Without a `model`, the endpoint's first listed model is used
    /// if it answers `/v1/models`.
    pub fn new(url: &str, model: Option<String>, timeout: Duration) -> RemoteModel {
        let client = Client::new(url, timeout, std::env::var("OPENAI_API_KEY").ok());
        let model = model.or_else(|| client.models().ok().and_then(|m| m.into_iter().next()));
        RemoteModel {
            client,
            model,
            url: url.to_owned(),
        }
    }
}

impl ChatBackend for RemoteModel {
    fn model_id(&self) -> String {
        self.model.clone().unwrap_or_else(|| self.url.clone())
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        let mut request = request.clone();
        if self.model.is_some() {
            request.model = self.model.clone();
        }
        if request.stream {
            Ok(self.client.chat_stream(&request, emit)?)
        } else {
            let done = self.client.chat(&request)?;
            emit(&done.text);
            Ok(done)
        }
    }
}

/// The upstream named on the command line: an `http(s)://` URL, or a local model directory.
pub fn upstream(
    spec: &str,
    template: Template,
    model: Option<String>,
    timeout: Duration,
) -> Result<Arc<dyn ChatBackend>, String> {
    if spec.starts_with("http://") || spec.starts_with("https://") {
        Ok(Arc::new(RemoteModel::new(spec, model, timeout)))
    } else {
        Ok(Arc::new(LocalModel::load(Path::new(spec), template)?))
    }
}

/// The correcting proxy: every request goes to the upstream as it came (sampling settings included); the aligner
/// then corrects the upstream's answer to the last user message, greedily, and that correction is the reply. With
/// `stream: true` the correction streams token by token (it can only start once the upstream's answer is complete;
/// Stream Aligner's proxy starts after the first sentence).
pub struct AlignerBackend {
    pub upstream: Arc<dyn ChatBackend>,
    pub aligner: Aligner,
}

impl ChatBackend for AlignerBackend {
    fn model_id(&self) -> String {
        format!("{}+{}", self.upstream.model_id(), self.aligner.id)
    }

    fn complete(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Completion, BackendError> {
        let question = request.last_user().ok_or_else(|| {
            BackendError::Unprocessable("messages: no user message whose answer to correct".into())
        })?;
        let mut upstream_request = request.clone();
        upstream_request.stream = false;
        let answer = self.upstream.complete(&upstream_request, &mut |_| true)?;
        let out = self
            .aligner
            .correct(question, &answer.text, emit)
            .map_err(|e| BackendError::Internal(e.to_string()))?;
        Ok(Completion {
            text: out.text,
            finish_reason: finish_reason(out.stop),
            prompt_tokens: answer.prompt_tokens,
            completion_tokens: answer.completion_tokens + out.ids.len(),
        })
    }
}
