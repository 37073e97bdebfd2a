//! `rice-lm`: the language-model engine under every RICE Atlas reference implementation.
//!
//! What it is for: a decoder-only transformer (Llama / Qwen2 family) that trains on CPU and GPU with candle —
//! every op differentiable, logits for every position, a KV cache for generation — and that reads and writes Hugging
//! Face checkpoint directories, so a model trained here opens in other tools and the reverse.
//!
//! What it is not for: any alignment method. Method crates (`rice-rlhf`, `rice-dpo`, …) hold their losses and loops
//! and share this engine; this crate knows no method.
//!
//! Map: `model` (the transformer), `checkpoint` (Hugging Face directories), `optim` (AdamW, schedule, clipping),
//! `trainer` (the loop, checkpoints, resume), `text` (tokenizer, chat templates, dataset readers, batching, log-probs),
//! `generate` (KV-cache decoding and sampling), `rng` (seeded randomness), `device` (`--device`, `--precision`).

pub mod checkpoint;
pub mod device;
pub mod generate;
pub mod model;
pub mod optim;
pub mod rng;
pub mod run;
pub mod text;
pub mod trainer;

pub use checkpoint::{CheckpointError, Loaded};
pub use device::{DeviceError, DeviceSpec, Precision};
pub use model::{CausalLm, Config, KvCache, ScoreModel};

/// A tiny configuration for tests and examples: 2 layers, hidden 32, 4 query heads over 2 key/value heads.
pub fn tiny_config(vocab_size: usize) -> Config {
    Config {
        max_position_embeddings: 128,
        tie_word_embeddings: false,
        ..Config::qwen2(vocab_size, 32, 2, 4, 2, 64)
    }
}
