//! Model sizes for the toy world. Same architecture and checkpoint format as real Llama/Qwen2 models; only the
//! sizes differ (size matters for the elasticity scaling experiments).

use rice_lm::Config;

/// The names accepted by `--preset`.
pub const MODEL_PRESETS: [&str; 3] = ["toy-xs", "toy-s", "toy-m"];

/// The model configuration of a preset, for a tokenizer of `vocab_size` tokens.
pub fn model(preset: &str, vocab_size: usize) -> Option<Config> {
    let (hidden, layers, heads, kv_heads) = match preset {
        "toy-xs" => (64, 2, 4, 2),
        "toy-s" => (128, 4, 4, 2),
        "toy-m" => (256, 6, 8, 4),
        _ => return None,
    };
    Some(Config::qwen2(
        vocab_size,
        hidden,
        layers,
        heads,
        kv_heads,
        hidden * 8 / 3 / 16 * 16,
    ))
}

/// Parameters of a configuration (tied embeddings counted once).
pub fn parameters(cfg: &Config) -> usize {
    let (h, i, kv) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.kv_heads() * cfg.head_dim(),
    );
    let attention = h * h * 2 + h * kv * 2 + if cfg.qkv_bias() { h + 2 * kv } else { 0 };
    let layer = attention + 3 * h * i + 2 * h;
    let embeddings = cfg.vocab_size * h * if cfg.tie_word_embeddings { 1 } else { 2 };
    embeddings + cfg.num_hidden_layers * layer + h
}
