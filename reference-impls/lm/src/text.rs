//! Text in and out of the model: the tokenizer (`tokenizer.json`), chat templates, dataset readers whose errors name
//! the file, line and field, and batching with padding and prompt masking.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

// ── Tokenizer ──────────────────────────────────────────────────────────────────────────────────────────────────

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{path}: cannot load the tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("tokenizing: {0}")]
    Encode(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: no usable records")]
    Empty { path: PathBuf },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

/// A Hugging Face `tokenizer.json` and the ids the loops need.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub eos_id: u32,
    pub pad_id: u32,
}

impl Tokenizer {
    /// Loads `path`; the end-of-sequence token is the first of `eos_candidates` the vocabulary has.
    pub fn load(path: &Path) -> Result<Tokenizer, TextError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| TextError::Tokenizer {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let eos_id = find(&["<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<eos>"]).ok_or_else(|| TextError::Tokenizer {
            path: path.to_owned(),
            message: "no end-of-sequence token (<|im_end|>, <|endoftext|>, </s>, <|eot_id|> or <eos>)".into(),
        })?;
        let pad_id = find(&["<pad>", "<|endoftext|>", "</s>"]).unwrap_or(eos_id);
        Ok(Tokenizer {
            inner,
            eos_id,
            pad_id,
        })
    }

    /// A word-level tokenizer over ids `0..vocab` (token `i` is the text `t{i} `), for tests that need ids only.
    #[doc(hidden)]
    pub fn for_tests(vocab: u32, eos_id: u32, pad_id: u32) -> Tokenizer {
        use std::collections::HashMap;
        let map: HashMap<String, u32> = (0..vocab).map(|i| (format!("t{i}"), i)).collect();
        let model = tokenizers::models::wordlevel::WordLevel::builder()
            .vocab(map.into_iter().collect())
            .unk_token("t0".into())
            .build()
            .expect("a word-level vocabulary");
        Tokenizer {
            inner: tokenizers::Tokenizer::new(model),
            eos_id,
            pad_id,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TextError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, TextError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TextError::Encode(e.to_string()))
    }
}

// ── Chat templates ─────────────────────────────────────────────────────────────────────────────────────────────

/// How a prompt and a response are laid out for a model family. The response ends with the template's end token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// `{prompt}\n{response}<|endoftext|>`
    Plain,
    /// `<s>[INST] {prompt} [/INST] {response} </s>`
    Llama2,
    /// Llama 3: header tokens and `<|eot_id|>`.
    Llama3,
    /// ChatML, as Qwen uses: `<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n…<|im_end|>`.
    ChatMl,
    /// Gemma: `<start_of_turn>user\n…<end_of_turn>\n<start_of_turn>model\n…<end_of_turn>`.
    Gemma,
    /// PKU-Alignment's (safe-rlhf, Aligner): `BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:{response}`.
    Pku,
}

impl Template {
    pub const ALL: [(&'static str, Template); 6] = [
        ("plain", Template::Plain),
        ("llama2", Template::Llama2),
        ("llama3", Template::Llama3),
        ("chatml", Template::ChatMl),
        ("gemma", Template::Gemma),
        ("pku", Template::Pku),
    ];

    pub fn by_name(name: &str) -> Option<Template> {
        Template::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// The text up to where the response starts.
    pub fn prompt(self, prompt: &str) -> String {
        match self {
            Template::Plain => format!("{prompt}\n"),
            Template::Llama2 => format!("<s>[INST] {prompt} [/INST] "),
            Template::Llama3 => format!(
                "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
            ),
            Template::ChatMl => {
                format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
            }
            Template::Gemma => {
                format!("<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n")
            }
            Template::Pku => format!("BEGINNING OF CONVERSATION: USER: {prompt} ASSISTANT:"),
        }
    }

    /// A conversation of `(role, content)` turns (`system`, `user`, `assistant`), rendered up to where the model
    /// writes next. When the last turn is the assistant's, it is left open — a pre-filled answer the model continues;
    /// otherwise an assistant turn is opened. One user turn renders exactly as [`Template::prompt`]. Templates without
    /// a system role (Gemma, PKU, plain) put the system text before the first user turn.
    pub fn conversation(self, turns: &[(&str, &str)]) -> String {
        let (open, closed) = match turns.split_last() {
            Some(((role, content), rest)) if *role == "assistant" => (*content, rest),
            _ => ("", turns),
        };
        let has_system_role = matches!(self, Template::ChatMl | Template::Llama3);
        let mut system = String::new();
        let mut pieces: Vec<(&str, String)> = Vec::new();
        for (role, content) in closed {
            match *role {
                "system" if !has_system_role => system.push_str(content),
                "user" if !system.is_empty() && !has_system_role => {
                    let joined = if self == Template::Llama2 {
                        format!("<<SYS>>\n{system}\n<</SYS>>\n\n{content}")
                    } else {
                        format!("{system}\n\n{content}")
                    };
                    system.clear();
                    pieces.push(("user", joined));
                }
                _ => pieces.push((role, content.to_string())),
            }
        }
        let mut out = String::new();
        match self {
            Template::ChatMl => {
                for (role, content) in &pieces {
                    out += &format!("<|im_start|>{role}\n{content}<|im_end|>\n");
                }
                out += "<|im_start|>assistant\n";
            }
            Template::Llama3 => {
                out += "<|begin_of_text|>";
                for (role, content) in &pieces {
                    out += &format!(
                        "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
                    );
                }
                out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            }
            Template::Gemma => {
                for (role, content) in &pieces {
                    let role = if *role == "assistant" { "model" } else { role };
                    out += &format!("<start_of_turn>{role}\n{content}<end_of_turn>\n");
                }
                out += "<start_of_turn>model\n";
            }
            Template::Pku => {
                out += "BEGINNING OF CONVERSATION:";
                for (role, content) in &pieces {
                    if *role == "assistant" {
                        out += &format!(" ASSISTANT:{content}");
                    } else {
                        out += &format!(" USER: {content}");
                    }
                }
                out += " ASSISTANT:";
            }
            Template::Llama2 => {
                for (role, content) in &pieces {
                    if *role == "assistant" {
                        out += &format!("{content} </s>");
                    } else {
                        out += &format!("<s>[INST] {content} [/INST] ");
                    }
                }
            }
            Template::Plain => {
                for (_, content) in &pieces {
                    out += content;
                    out += "\n";
                }
            }
        }
        out + open
    }

    /// What follows the response.
    pub fn end(self) -> &'static str {
        match self {
            Template::Plain => "<|endoftext|>",
            Template::Llama2 => " </s>",
            Template::Llama3 => "<|eot_id|>",
            Template::ChatMl => "<|im_end|>",
            Template::Gemma => "<end_of_turn>",
            Template::Pku => "</s>",
        }
    }
}

// ── Datasets ───────────────────────────────────────────────────────────────────────────────────────────────────

/// A supervised example: TRL's `prompt`/`completion` (a `messages` list is converted by [`read_sft`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SftExample {
    pub prompt: String,
    pub completion: String,
}

/// A preference pair: TRL's `prompt`/`chosen`/`rejected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// One record of PKU-SafeRLHF: two responses, which is more helpful (`better`) and which is safer, and whether each
/// is safe.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SafetyPair {
    pub prompt: String,
    pub response_0: String,
    pub response_1: String,
    pub better_response_id: u8,
    pub safer_response_id: u8,
    pub is_response_0_safe: bool,
    pub is_response_1_safe: bool,
}

/// Aligner's correction triple.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CorrectionTriple {
    pub question: String,
    pub answer: String,
    pub correction: String,
}

/// Stream Aligner's sentence-level tuple.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SentenceCorrection {
    pub question: String,
    pub prefix: String,
    pub last: String,
    pub correction: String,
}

/// Reads JSONL records of type `T`. Every bad line is reported with its number and what is wrong (a missing or
/// mistyped field is named); extra fields are ignored, as datasets carry many.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, TextError> {
    parse_jsonl(&read_bytes(path)?, path)
}

/// [`read_jsonl`] with each record's 1-based line in the file (blank lines are skipped, so lines and records
/// differ), for checks made after parsing that must still name the line.
pub fn read_jsonl_numbered<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Vec<(usize, T)>, TextError> {
    numbered_records(&read_bytes(path)?, path)
}

/// [`read_jsonl`] on the bytes of a file already read; `path` is only named in errors.
pub fn parse_jsonl<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<T>, TextError> {
    Ok(numbered_records(bytes, path)?
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, TextError> {
    std::fs::read(path).map_err(|source| TextError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The records of a JSONL text with their 1-based line numbers (blank lines are skipped, so the two differ).
fn numbered_records<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    path: &Path,
) -> Result<Vec<(usize, T)>, TextError> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let record = |message: String| TextError::Record {
            path: path.to_owned(),
            line: i + 1,
            message,
        };
        let line =
            std::str::from_utf8(line).map_err(|e| record(format!("not valid UTF-8 ({e})")))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = named_fields(&mut de)
            .and_then(|r| de.end().map(|()| r).map_err(|e| e.to_string()))
            .map_err(record)?;
        out.push((i + 1, parsed));
    }
    if out.is_empty() {
        return Err(TextError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Deserializes one record, naming the field a problem is in (`field `completion`: invalid type: …`); a missing
/// field is named by serde itself.
fn named_fields<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(de: D) -> Result<T, String> {
    serde_path_to_error::deserialize(de).map_err(|e| match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("field `{path}`: {}", e.inner()),
    })
}

/// Reads SFT data: `prompt`/`completion` records, or `messages` lists whose last assistant turn is the completion.
pub fn read_sft(path: &Path) -> Result<Vec<SftExample>, TextError> {
    parse_sft(&read_bytes(path)?, path)
}

/// [`read_sft`] on the bytes of a file already read; `path` is only named in errors.
pub fn parse_sft(bytes: &[u8], path: &Path) -> Result<Vec<SftExample>, TextError> {
    #[derive(Deserialize)]
    struct Message {
        role: String,
        content: String,
    }
    #[derive(Deserialize)]
    struct Pair {
        prompt: String,
        completion: String,
    }
    #[derive(Deserialize)]
    struct Chat {
        messages: Vec<Message>,
    }
    /// A `messages` key makes it a chat: the shape is chosen first so that an error names the field (serde's
    /// untagged enums only say that no shape matched).
    enum Record {
        Pair(Pair),
        Chat(Chat),
    }
    impl<'de> Deserialize<'de> for Record {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
            let value = serde_json::Value::deserialize(d)?;
            let record = if value.get("messages").is_some() {
                named_fields(value).map(Record::Chat)
            } else {
                named_fields(value).map(Record::Pair)
            };
            record.map_err(serde::de::Error::custom)
        }
    }
    let records: Vec<(usize, Record)> = numbered_records(bytes, path)?;
    records
        .into_iter()
        .map(|(line, r)| match r {
            Record::Pair(Pair { prompt, completion }) => Ok(SftExample { prompt, completion }),
            Record::Chat(Chat { mut messages }) => {
                let last = messages
                    .pop()
                    .filter(|m| m.role == "assistant")
                    .ok_or_else(|| TextError::Record {
                        path: path.to_owned(),
                        line,
                        message: "`messages` must end with an assistant turn".into(),
                    })?;
                let prompt = messages
                    .iter()
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(SftExample {
                    prompt,
                    completion: last.content,
                })
            }
        })
        .collect()
}

// ── Batching ───────────────────────────────────────────────────────────────────────────────────────────────────

/// A tokenized prompt and response.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

impl Encoded {
    pub fn new(
        tok: &Tokenizer,
        template: Template,
        prompt: &str,
        response: &str,
    ) -> Result<Encoded, TextError> {
        let prompt_ids = tok.encode(&template.prompt(prompt))?;
        let response_ids = tok.encode(&format!("{response}{}", template.end()))?;
        Ok(Encoded {
            prompt: prompt_ids,
            response: response_ids,
        })
    }
}

/// Right-padded token ids with the masks the losses need.
pub struct Batch {
    /// (batch, seq) token ids.
    pub ids: Tensor,
    /// (batch, seq): 1 for real tokens, 0 for padding.
    pub padding: Tensor,
    /// (batch, seq − 1) as f32: 1 where the *next* token is a response token (the positions a loss counts).
    pub response_mask: Tensor,
    /// Response tokens counted.
    pub tokens: usize,
}

/// Pads `items` to a common length (at most `max_len`, truncating the prompt from the left first, then the response
/// from the right) and builds the masks.
pub fn batch(
    items: &[Encoded],
    pad_id: u32,
    max_len: usize,
    device: &Device,
) -> Result<Batch, TextError> {
    let fitted: Vec<(Vec<u32>, usize)> = items
        .iter()
        .map(|e| {
            let response: Vec<u32> = e
                .response
                .iter()
                .copied()
                .take(max_len.saturating_sub(1).max(1))
                .collect();
            let room = max_len.saturating_sub(response.len());
            let prompt = &e.prompt[e.prompt.len().saturating_sub(room)..];
            ([prompt, &response].concat(), prompt.len())
        })
        .collect();
    let width = fitted
        .iter()
        .map(|(ids, _)| ids.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let (mut ids, mut padding, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    let mut tokens = 0;
    for (row, prompt_len) in &fitted {
        for j in 0..width {
            ids.push(row.get(j).copied().unwrap_or(pad_id));
            padding.push(u8::from(j < row.len()));
        }
        // Position j predicts token j + 1: count it when token j + 1 is a response token.
        for j in 0..width - 1 {
            let counted = j + 1 >= *prompt_len && j + 1 < row.len();
            tokens += usize::from(counted);
            mask.push(if counted { 1f32 } else { 0.0 });
        }
    }
    let b = fitted.len();
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, width), device)?,
        padding: Tensor::from_vec(padding, (b, width), device)?,
        response_mask: Tensor::from_vec(mask, (b, width - 1), device)?,
        tokens,
    })
}

/// Log-probability of each next token: (batch, seq − 1), from logits (batch, seq, vocab) and ids (batch, seq).
pub fn token_logprobs(logits: &Tensor, ids: &Tensor) -> candle_core::Result<Tensor> {
    let (_, t, _) = logits.dims3()?;
    let logp = candle_nn::ops::log_softmax(
        &logits.narrow(1, 0, t - 1)?.to_dtype(DType::F32)?,
        candle_core::D::Minus1,
    )?;
    let next = ids.narrow(1, 1, t - 1)?.unsqueeze(2)?;
    logp.gather(&next.contiguous()?, 2)?.squeeze(2)
}

/// Mean negative log-likelihood of the response tokens:
/// $\mathcal{L} = -\frac{1}{\sum m}\sum_{i,t} m_{i,t} \log \pi_\theta(y_{i,t+1} \mid y_{i,\le t})$.
pub fn response_nll(logits: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
    let logp = token_logprobs(logits, &batch.ids)?;
    let total = (logp * &batch.response_mask)?.sum_all()?;
    total.neg()? / (batch.tokens.max(1) as f64)
}

/// Sum of response-token log-probabilities per sequence, (batch,): what preference losses compare.
pub fn sequence_logprobs(logits: &Tensor, batch: &Batch) -> candle_core::Result<Tensor> {
    (token_logprobs(logits, &batch.ids)? * &batch.response_mask)?.sum(1)
}
