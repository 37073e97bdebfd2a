//! Hugging Face model directories: `config.json` + `model.safetensors` (or sharded `model-0000x-of-0000y.safetensors`
//! with `model.safetensors.index.json`), and `tokenizer.json` / `generation_config.json` when present.
//!
//! Saving writes every file under a temporary name and renames it into place, so a reader (or a crash) never sees a
//! half-written checkpoint file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use crate::model::{CausalLm, Config, ScoreModel};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid config.json: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error(
        "{path} has {tokens} tokens but the model only {vocab_size} (config.json's vocab_size): the tokenizer does \
         not belong to this model"
    )]
    TokenizerMismatch {
        path: PathBuf,
        tokens: usize,
        vocab_size: usize,
    },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename). On failure (a full
/// disk) the temporary file is removed, `path` is left as it was, and the error names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = temp_name(path);
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io(path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// Writes `tensors` as a safetensors file at `path` atomically, like [`write_atomic`]. Errors name the file; an I/O
/// failure (a full disk) stays a [`CheckpointError::Io`] so that its cause can be told apart.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), CheckpointError> {
    let tmp = temp_name(path);
    candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| match io_cause(&e) {
            Some(source) => CheckpointError::Io {
                path: path.to_owned(),
                source,
            },
            None => CheckpointError::Weights {
                path: path.to_owned(),
                message: format!("cannot write safetensors: {e}"),
            },
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io(path)))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
}

/// The I/O error at the root of a candle error (kind and message), if that is what it is.
fn io_cause(e: &candle_core::Error) -> Option<std::io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(std::io::Error::new(io.kind(), io.to_string()));
        }
        cause = c.source();
    }
    None
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Reads and validates `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<Config, CheckpointError> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let cfg: Config = serde_json::from_str(&text).map_err(|e| CheckpointError::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    cfg.validate()
        .map_err(|message| CheckpointError::Config { path, message })?;
    Ok(cfg)
}

/// Checks that the tokenizer read from `path` fits a model of `cfg`: every token id needs a row in the embedding.
/// A tokenizer of another model fails here, by name, rather than deep in the forward pass or silently.
pub fn check_tokenizer(
    cfg: &Config,
    tokenizer: &crate::text::Tokenizer,
    path: &Path,
) -> Result<(), CheckpointError> {
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(CheckpointError::TokenizerMismatch {
            path: path.to_owned(),
            tokens: tokenizer.vocab_size(),
            vocab_size: cfg.vocab_size,
        });
    }
    Ok(())
}

/// Every tensor of the checkpoint's weight files, by name.
pub fn read_weights(
    dir: &Path,
    device: &Device,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Weights {
                path: index.clone(),
                message: e.to_string(),
            })?;
        let map = json["weight_map"]
            .as_object()
            .ok_or_else(|| CheckpointError::Weights {
                path: index.clone(),
                message: "no `weight_map` object".into(),
            })?;
        let mut names: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    } else {
        return Err(CheckpointError::Weights {
            path: dir.to_owned(),
            message: "no model.safetensors or model.safetensors.index.json".into(),
        });
    };
    let mut all = HashMap::new();
    for file in files {
        let tensors =
            candle_core::safetensors::load(&file, device).map_err(|e| match io_cause(&e) {
                Some(source) => CheckpointError::Io {
                    path: file.clone(),
                    source,
                },
                None => CheckpointError::Weights {
                    path: file.clone(),
                    message: match e {
                        // The header or the data do not add up.
                        candle_core::Error::SafeTensor(_) => format!(
                            "cannot read safetensors: {e} (the file is truncated or is not safetensors)"
                        ),
                        _ => format!("cannot read safetensors: {e}"),
                    },
                },
            })?;
        all.extend(tensors);
    }
    Ok(all)
}

/// A model and the variables that hold its weights (for training).
pub struct Loaded {
    pub model: CausalLm,
    pub vars: VarMap,
    /// Tensors in the files that the model does not use (e.g. a tied `lm_head.weight`, rotary buffers).
    pub unused: Vec<String>,
}

impl Loaded {
    /// Computes in `precision` over the loaded weights (f32 master weights under bf16 compute, for training).
    pub fn with_precision(mut self, precision: crate::Precision) -> Loaded {
        self.model.set_compute_dtype(precision.dtype());
        self
    }
}

/// Builds the model of `cfg` with fresh weights, reproducibly from `seed`: matrices and embeddings from
/// N(0, 0.02²) as Hugging Face initialises Llama/Qwen2, biases at 0, norm weights at 1.
pub fn init(
    cfg: &Config,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> Result<Loaded, CheckpointError> {
    let vars = VarMap::new();
    let model = CausalLm::new(cfg, VarBuilder::from_varmap(&vars, dtype, device))?;
    {
        let data = vars
            .data()
            .lock()
            .expect("the var map lock is not poisoned");
        for (name, var) in data.iter() {
            let n = var.elem_count();
            let values: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let mut rng = crate::rng::Rng::derive(seed, name);
                (0..n).map(|_| (rng.normal() * 0.02) as f32).collect()
            };
            var.set(&Tensor::from_vec(values, var.dims(), device)?.to_dtype(dtype)?)?;
        }
    }
    Ok(Loaded {
        model,
        vars,
        unused: Vec::new(),
    })
}

/// Loads a Hugging Face directory into trainable variables.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Loaded, CheckpointError> {
    let cfg = read_config(dir)?;
    let vars = VarMap::new();
    let model = CausalLm::new(&cfg, VarBuilder::from_varmap(&vars, dtype, device))?;
    let mut weights = read_weights(dir, device)?;
    assign(&vars, &mut weights, dir, dtype, &[])?;
    let mut unused: Vec<String> = weights.into_keys().collect();
    unused.sort();
    Ok(Loaded {
        model,
        vars,
        unused,
    })
}

/// Sets every variable from the tensor of the same name in `weights` (removing it, so that what remains is unused).
/// A variable missing from the file is an error, except those in `may_be_missing`, which are set to zero.
pub(crate) fn assign(
    vars: &VarMap,
    weights: &mut HashMap<String, Tensor>,
    dir: &Path,
    dtype: DType,
    may_be_missing: &[&str],
) -> Result<(), CheckpointError> {
    let data = vars
        .data()
        .lock()
        .expect("the var map lock is not poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut missing = Vec::new();
    for name in names {
        let var = &data[name];
        match weights.remove(name) {
            Some(t) if t.dims() == var.dims() => var.set(&t.to_dtype(dtype)?)?,
            Some(t) => {
                return Err(CheckpointError::Weights {
                    path: dir.to_owned(),
                    message: format!(
                        "`{name}` has shape {:?} in the file but {:?} in config.json",
                        t.dims(),
                        var.dims()
                    ),
                });
            }
            None if may_be_missing.contains(&name.as_str()) => {
                var.set(&var.as_tensor().zeros_like()?)?
            }
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(CheckpointError::Weights {
            path: dir.to_owned(),
            message: format!(
                "missing tensors: {} (does config.json match the weights?)",
                missing.join(", ")
            ),
        });
    }
    Ok(())
}

/// A score model (reward, cost or value) and its variables.
pub struct LoadedScore {
    pub model: ScoreModel,
    pub vars: VarMap,
}

impl LoadedScore {
    /// Computes in `precision` over the loaded weights; see [`Loaded::with_precision`].
    pub fn with_precision(mut self, precision: crate::Precision) -> LoadedScore {
        self.model.set_compute_dtype(precision.dtype());
        self
    }
}

/// Loads a score model from `dir`. The directory may hold a score model, or a causal language model (the usual
/// start of a reward model: the SFT checkpoint) — then its `lm_head` is dropped and the head starts at zero, so
/// every response first scores 0.
pub fn load_score(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<LoadedScore, CheckpointError> {
    let cfg = read_config(dir)?;
    let vars = VarMap::new();
    let model = ScoreModel::new(&cfg, VarBuilder::from_varmap(&vars, dtype, device))?;
    let mut weights = read_weights(dir, device)?;
    // A language-model checkpoint has no `score.weight`: the head then starts at zero.
    assign(&vars, &mut weights, dir, dtype, &["score.weight"])?;
    Ok(LoadedScore { model, vars })
}

/// Saves `vars` and `cfg` as a Hugging Face directory (created if needed): `config.json`, `model.safetensors`,
/// `generation_config.json` when the config names an end-of-sequence token, and a copy of `tokenizer` when given.
pub fn save(
    dir: &Path,
    cfg: &Config,
    vars: &VarMap,
    tokenizer: Option<&Path>,
) -> Result<(), CheckpointError> {
    save_with(dir, cfg, cfg.to_hf_json(), vars, tokenizer)
}

/// [`save`] for a score model: `config.json` names the `*ForSequenceClassification` architecture with one label,
/// so Hugging Face's `AutoModelForSequenceClassification` opens it as a reward model.
pub fn save_score(
    dir: &Path,
    cfg: &Config,
    vars: &VarMap,
    tokenizer: Option<&Path>,
) -> Result<(), CheckpointError> {
    let mut json = cfg.to_hf_json();
    let arch = if cfg.model_type == "qwen2" {
        "Qwen2ForSequenceClassification"
    } else {
        "LlamaForSequenceClassification"
    };
    json["architectures"] = serde_json::json!([arch]);
    json["num_labels"] = serde_json::json!(1);
    json["id2label"] = serde_json::json!({ "0": "LABEL_0" });
    json["label2id"] = serde_json::json!({ "LABEL_0": 0 });
    save_with(dir, cfg, json, vars, tokenizer)
}

fn save_with(
    dir: &Path,
    cfg: &Config,
    hf_config: serde_json::Value,
    vars: &VarMap,
    tokenizer: Option<&Path>,
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let config = serde_json::to_vec_pretty(&hf_config).expect("a config serialises");
    write_atomic(&dir.join("config.json"), &config)?;
    let tensors: HashMap<String, Tensor> = {
        let data = vars
            .data()
            .lock()
            .expect("the var map lock is not poisoned");
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    save_tensors(&tensors, &dir.join("model.safetensors"))?;
    if let Some(eos) = cfg.eos_token_id {
        let generation = serde_json::json!({ "eos_token_id": eos, "do_sample": false });
        write_atomic(
            &dir.join("generation_config.json"),
            &serde_json::to_vec_pretty(&generation).expect("json"),
        )?;
    }
    if let Some(tokenizer) = tokenizer {
        let bytes = std::fs::read(tokenizer).map_err(io(tokenizer))?;
        write_atomic(&dir.join("tokenizer.json"), &bytes)?;
        // Without a tokenizer_config.json, transformers picks the tokenizer class from model_type (Qwen2's rebuilds
        // the pre-tokenizer and splits digits differently); naming the generic class makes it use tokenizer.json
        // exactly as written. A config next to the source tokenizer is copied instead.
        let beside = tokenizer.with_file_name("tokenizer_config.json");
        let config = match std::fs::read(&beside) {
            Ok(bytes) => bytes,
            Err(_) => serde_json::to_vec_pretty(&serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "clean_up_tokenization_spaces": false,
            }))
            .expect("json"),
        };
        write_atomic(&dir.join("tokenizer_config.json"), &config)?;
    }
    Ok(())
}
