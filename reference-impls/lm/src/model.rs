//! A decoder-only transformer in the Llama / Qwen2 family: RMSNorm, rotary position embeddings, grouped-query
//! attention (optionally with QKV bias, as in Qwen2), a SwiGLU MLP, optionally tied embeddings.
//!
//! Parameter names match Hugging Face checkpoints (`model.layers.0.self_attn.q_proj.weight`, …), so a checkpoint
//! written here loads in `transformers` and the reverse. Unlike candle-transformers' inference models, every op here
//! has a backward pass (candle's fused `rms_norm`, `softmax_last_dim` and `rope` kernels silently cut the graph),
//! the forward pass returns logits for **every** position, and a KV cache serves generation.
//!
//! Precision, as PyTorch's autocast does it: the weights keep the dtype they were loaded in (f32 for training: the
//! master weights) and the matrix products run in the model's *compute dtype* ([`CausalLm::set_compute_dtype`]; by
//! default the weights' own). With bf16 compute every projection casts its input and its weight to bf16 inside the
//! graph (so gradients reach the f32 weights in f32) and attention runs in bf16, while the residual stream, the
//! RMSNorms, the attention softmax and the returned logits and scores stay f32 (f64 for an f64 model).

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, embedding, ops, rotary_emb};
use serde::{Deserialize, Serialize};

/// The subset of a Hugging Face `config.json` this model needs; unknown keys are ignored (HF configs carry many).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: fewer key/value heads than query heads. Defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections (Qwen2 has it, Llama does not). Qwen2 configs omit the key: see `model_type`.
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// `"llama"` or `"qwen2"`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_max_positions() -> usize {
    2048
}
fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_model_type() -> String {
    "llama".into()
}

impl Config {
    /// A Qwen2-shaped configuration (tied embeddings, QKV bias, 512 positions) of the given sizes.
    pub fn qwen2(
        vocab_size: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        kv_heads: usize,
        intermediate: usize,
    ) -> Config {
        Config {
            vocab_size,
            hidden_size: hidden,
            intermediate_size: intermediate,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: Some(kv_heads),
            max_position_embeddings: 512,
            rms_norm_eps: 1e-6,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            attention_bias: None,
            model_type: "qwen2".into(),
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type == "qwen2")
    }

    /// Checks the shape constraints a forward pass relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let heads = self.num_attention_heads;
        if heads == 0 || !self.hidden_size.is_multiple_of(heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {heads}",
                self.hidden_size
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head dimension {} must be even for rotary embeddings",
                self.head_dim()
            ));
        }
        if self.kv_heads() == 0 || !heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {}",
                self.kv_heads()
            ));
        }
        if self.vocab_size == 0 || self.num_hidden_layers == 0 || self.intermediate_size == 0 {
            return Err(
                "vocab_size, num_hidden_layers and intermediate_size must be positive".into(),
            );
        }
        Ok(())
    }

    /// The `config.json` a Hugging Face loader expects for this model.
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        let arch = if self.model_type == "qwen2" {
            "Qwen2ForCausalLM"
        } else {
            "LlamaForCausalLM"
        };
        v["architectures"] = serde_json::json!([arch]);
        v["num_key_value_heads"] = serde_json::json!(self.kv_heads());
        v["attention_bias"] = serde_json::json!(self.qkv_bias());
        v["hidden_act"] = serde_json::json!("silu");
        v["torch_dtype"] = serde_json::json!("float32");
        v
    }
}

/// Rotary embedding tables for every position up to `max_position_embeddings`.
#[derive(Clone, Debug)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(cfg: &Config, dtype: DType, device: &Device) -> Result<Rotary> {
        let dim = cfg.head_dim();
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / cfg.rope_theta.powf(i as f64 / dim as f64) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, dim / 2), device)?;
        let positions = Tensor::arange(0u32, cfg.max_position_embeddings as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_position_embeddings, 1))?;
        let freqs = positions.matmul(&inv_freq)?;
        Ok(Rotary {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// Rotates `x` of shape (batch, heads, seq, head_dim) for positions `offset..offset + seq`.
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        // `rope_slow` is built from differentiable ops (the fused `rope` kernel has no backward pass).
        rotary_emb::rope_slow(
            x,
            &self.cos.narrow(0, offset, seq)?.to_dtype(x.dtype())?,
            &self.sin.narrow(0, offset, seq)?.to_dtype(x.dtype())?,
        )
    }
}

/// RMSNorm with the differentiable implementation.
#[derive(Clone, Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            eps: eps as f32,
        })
    }
}

impl Module for RmsNorm {
    /// `rms_norm_slow` takes the mean of squares in f32 whatever `x`'s dtype; the weight follows `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm_slow(x, &self.weight.to_dtype(x.dtype())?, self.eps)
    }
}

/// A linear layer whose weights may be stored in another dtype than it computes in: [`Proj::forward`] casts input
/// and weight to the compute dtype inside the graph (no-ops when they agree).
#[derive(Clone, Debug)]
struct Proj(Linear);

impl Proj {
    fn new(input: usize, output: usize, bias: bool, vb: VarBuilder) -> Result<Proj> {
        let linear = if bias {
            candle_nn::linear_b(input, output, true, vb)?
        } else {
            candle_nn::linear_no_bias(input, output, vb)?
        };
        Ok(Proj(linear))
    }

    /// `x · Wᵀ + b` in `dtype`.
    fn forward(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let x = x.to_dtype(dtype)?;
        if self.0.weight().dtype() == dtype {
            return self.0.forward(&x);
        }
        let cast = |t: &Tensor| t.to_dtype(dtype);
        Linear::new(cast(self.0.weight())?, self.0.bias().map(cast).transpose()?).forward(&x)
    }
}

/// Cached keys and values of one layer: (batch, kv_heads, positions so far, head_dim).
#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

/// The KV cache of a whole model, for incremental decoding.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// (batch, cached positions) as f32, 1 = real token, once any padded input went through (batched generation
    /// with left padding); `None` while every cached position is real.
    padding: Option<Tensor>,
}

impl KvCache {
    pub fn new(cfg: &Config) -> KvCache {
        KvCache {
            layers: vec![LayerCache::default(); cfg.num_hidden_layers],
            padding: None,
        }
    }

    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.kv.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached keys and values of `layer`: (batch, kv_heads, positions, head_dim) each.
    pub fn layer(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        self.layers.get(layer)?.kv.as_ref().map(|(k, v)| (k, v))
    }
}

#[derive(Clone, Debug)]
struct Attention {
    q_proj: Proj,
    k_proj: Proj,
    v_proj: Proj,
    o_proj: Proj,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Attention> {
        let (h, kv, d) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let bias = cfg.qkv_bias();
        Ok(Attention {
            q_proj: Proj::new(cfg.hidden_size, h * d, bias, vb.pp("q_proj"))?,
            k_proj: Proj::new(cfg.hidden_size, kv * d, bias, vb.pp("k_proj"))?,
            v_proj: Proj::new(cfg.hidden_size, kv * d, bias, vb.pp("v_proj"))?,
            o_proj: Proj::new(h * d, cfg.hidden_size, false, vb.pp("o_proj"))?,
            heads: h,
            kv_heads: kv,
            head_dim: d,
        })
    }

    /// `mask` is added to the attention scores: (batch or 1, 1, seq, positions), 0 where allowed, −inf where not.
    /// Computes in `dt`, and returns its result in `dt`.
    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        rotary: &Rotary,
        offset: usize,
        cache: Option<&mut LayerCache>,
        dt: DType,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let split = |y: Tensor, heads: usize| {
            y.reshape((b, t, heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = rotary.apply(&split(self.q_proj.forward(x, dt)?, self.heads)?, offset)?;
        let mut k = rotary.apply(&split(self.k_proj.forward(x, dt)?, self.kv_heads)?, offset)?;
        let mut v = split(self.v_proj.forward(x, dt)?, self.kv_heads)?;
        if let Some(cache) = cache {
            if let Some((past_k, past_v)) = &cache.kv {
                k = Tensor::cat(&[past_k, &k], 2)?;
                v = Tensor::cat(&[past_v, &v], 2)?;
            }
            // Detached: the cache serves generation, never a gradient. Kept attached, every cached tensor would hold
            // the graph of every earlier step (each concatenation points at the one before): memory grew with the
            // square of the generated length (7 GB for 8 × 256 tokens of toy-m).
            cache.kv = Some((k.detach(), v.detach()));
        }
        // Grouped-query attention: each key/value head serves `heads / kv_heads` query heads.
        let groups = self.heads / self.kv_heads;
        let (k, v) = if groups == 1 {
            (k, v)
        } else {
            (repeat_kv(&k, groups)?, repeat_kv(&v, groups)?)
        };
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        // `ops::softmax` is differentiable; `softmax_last_dim` is a fused kernel without a backward pass. In f32
        // whatever the compute dtype, as in Hugging Face's implementations.
        let wide = if dt == DType::F64 { dt } else { DType::F32 };
        let probs = ops::softmax(&scores.to_dtype(wide)?, D::Minus1)?.to_dtype(dt)?;
        let out = probs.matmul(&v.contiguous()?)?.transpose(1, 2)?.reshape((
            b,
            t,
            self.heads * self.head_dim,
        ))?;
        self.o_proj.forward(&out, dt)
    }
}

/// (b, kv_heads, s, d) → (b, kv_heads · groups, s, d), each head repeated `groups` times in place.
fn repeat_kv(x: &Tensor, groups: usize) -> Result<Tensor> {
    let (b, kv, s, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, kv, groups, s, d))?
        .reshape((b, kv * groups, s, d))
}

#[derive(Clone, Debug)]
struct Mlp {
    gate_proj: Proj,
    up_proj: Proj,
    down_proj: Proj,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Mlp> {
        Ok(Mlp {
            gate_proj: Proj::new(
                cfg.hidden_size,
                cfg.intermediate_size,
                false,
                vb.pp("gate_proj"),
            )?,
            up_proj: Proj::new(
                cfg.hidden_size,
                cfg.intermediate_size,
                false,
                vb.pp("up_proj"),
            )?,
            down_proj: Proj::new(
                cfg.intermediate_size,
                cfg.hidden_size,
                false,
                vb.pp("down_proj"),
            )?,
        })
    }
}

impl Mlp {
    /// SwiGLU: down(silu(gate(x)) ⊙ up(x)), in `dt`.
    fn forward(&self, x: &Tensor, dt: DType) -> Result<Tensor> {
        let gate = candle_nn::ops::silu(&self.gate_proj.forward(x, dt)?)?;
        self.down_proj
            .forward(&(gate * self.up_proj.forward(x, dt)?)?, dt)
    }
}

#[derive(Clone, Debug)]
struct Layer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Layer {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Layer> {
        Ok(Layer {
            input_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("input_layernorm"),
            )?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(
                cfg.hidden_size,
                cfg.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    /// `x` is the residual stream (f32 or f64); the sublayers compute in `dt` and are added back in `x`'s dtype.
    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        rotary: &Rotary,
        offset: usize,
        cache: Option<&mut LayerCache>,
        dt: DType,
    ) -> Result<Tensor> {
        let attn = self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            mask,
            rotary,
            offset,
            cache,
            dt,
        )?;
        let h = (x + attn.to_dtype(x.dtype())?)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h)?, dt)?;
        &h + mlp.to_dtype(h.dtype())?
    }
}

/// The backbone: embeddings, layers and the final norm. Returns hidden states; heads sit on top.
#[derive(Clone, Debug)]
pub struct Backbone {
    embed_tokens: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    rotary: Rotary,
    cfg: Config,
    /// The dtype activations are computed in; see the module's documentation.
    compute: DType,
}

impl Backbone {
    /// `vb` is positioned at the `model.` prefix.
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Backbone> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, vb.pp("embed_tokens"))?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, vb.pp(format!("layers.{i}"))))
            .collect::<Result<_>>()?;
        Ok(Backbone {
            embed_tokens,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: Rotary::new(cfg, DType::F32, vb.device())?,
            cfg: cfg.clone(),
            compute: vb.dtype(),
        })
    }

    /// Compute in `dtype` (e.g. bf16 over f32 weights); the weights are untouched.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        self.compute = dtype;
    }

    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// The dtype of the residual stream and of the returned hidden states: f64 for an f64 model, else f32.
    pub fn residual_dtype(&self) -> DType {
        match self.embed_tokens.embeddings().dtype() {
            DType::F64 => DType::F64,
            _ => DType::F32,
        }
    }

    pub fn device(&self) -> &Device {
        self.embed_tokens.embeddings().device()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn embeddings(&self) -> &Embedding {
        &self.embed_tokens
    }

    /// Hidden states (batch, seq, hidden), in [`Backbone::residual_dtype`], for token ids (batch, seq) at positions
    /// `offset..`.
    ///
    /// `padding` (batch, seq) holds 1 for real tokens and 0 for padding: padded keys are never attended to. Pad on the
    /// right for training. For batched generation pad prompts on the left: the cache remembers which positions were
    /// padding, and rotary embeddings depend only on relative positions, so a shifted row attends exactly as it
    /// would alone. Attention is causal.
    pub fn forward(
        &self,
        ids: &Tensor,
        padding: Option<&Tensor>,
        offset: usize,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if offset + t > self.cfg.max_position_embeddings {
            candle_core::bail!(
                "sequence of {} positions exceeds max_position_embeddings {}",
                offset + t,
                self.cfg.max_position_embeddings
            );
        }
        // An id without a row in the embedding means the tokenizer is not this model's: say so rather than fail in
        // the lookup (or read another model's rows).
        let largest = match ids.elem_count() {
            0 => 0.0,
            _ => ids.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        };
        if largest >= self.cfg.vocab_size as f64 {
            // Not `bail!`: that appends a stack trace when RUST_BACKTRACE is set, and this is the user's mistake.
            return Err(candle_core::Error::Msg(format!(
                "token id {largest} is outside the model's vocabulary of {} tokens (config.json's vocab_size): \
                 the tokenizer does not belong to this model",
                self.cfg.vocab_size
            )));
        }
        // The padding of every key position: what the cache remembers, then the new tokens (real unless marked).
        let new = match padding {
            Some(p) => Some(p.to_dtype(DType::F32)?),
            None if cache.as_ref().is_some_and(|c| c.padding.is_some()) => {
                Some(Tensor::ones((b, t), DType::F32, ids.device())?)
            }
            None => None,
        };
        let keys = match (cache.as_ref().and_then(|c| c.padding.clone()), new) {
            (Some(past), Some(new)) => Some(Tensor::cat(&[&past, &new], 1)?),
            (None, Some(new)) if offset > 0 => Some(Tensor::cat(
                &[&Tensor::ones((b, offset), DType::F32, ids.device())?, &new],
                1,
            )?),
            (past, new) => new.or(past),
        };
        if let Some(c) = cache.as_deref_mut() {
            c.padding = keys.clone();
        }
        let mask = self.mask(b, t, offset, keys.as_ref(), ids.device())?;
        let mut x = self
            .embed_tokens
            .forward(ids)?
            .to_dtype(self.residual_dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(&x, &mask, &self.rotary, offset, layer_cache, self.compute)?;
        }
        self.norm.forward(&x)
    }

    /// Additive mask (b or 1, 1, t, offset + t): query i (at position offset + i) sees keys 0..=offset + i, and no
    /// padded key.
    fn mask(
        &self,
        b: usize,
        t: usize,
        offset: usize,
        padding: Option<&Tensor>,
        device: &Device,
    ) -> Result<Tensor> {
        let total = offset + t;
        let causal: Vec<f32> = (0..t)
            .flat_map(|i| {
                (0..total).map(move |j| {
                    if j <= offset + i {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let causal = Tensor::from_vec(causal, (1, 1, t, total), device)?;
        let dtype = self.compute;
        let mask = match padding {
            None => causal,
            Some(p) => {
                // `p` (b, total): 1 for a real key, 0 for padding, which is blocked.
                let blocked = ((p - 1.0)?.abs()? * 1e9)?.neg()?; // 0 for real, −1e9 for padding
                causal.broadcast_add(&blocked.reshape((b, 1, 1, total))?)?
            }
        };
        mask.to_dtype(dtype)
    }
}

/// The causal language model: backbone + `lm_head` (tied to the embeddings when the config says so).
#[derive(Clone, Debug)]
pub struct CausalLm {
    pub backbone: Backbone,
    lm_head: Proj,
}

impl CausalLm {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<CausalLm> {
        let backbone = Backbone::new(cfg, vb.pp("model"))?;
        let lm_head = if cfg.tie_word_embeddings {
            Proj(Linear::new(
                backbone.embeddings().embeddings().clone(),
                None,
            ))
        } else {
            Proj::new(cfg.hidden_size, cfg.vocab_size, false, vb.pp("lm_head"))?
        };
        Ok(CausalLm { backbone, lm_head })
    }

    pub fn config(&self) -> &Config {
        self.backbone.config()
    }

    /// Compute in `dtype` over the stored weights (see the module's documentation); logits stay f32.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        self.backbone.set_compute_dtype(dtype);
    }

    /// Logits from hidden states, in the residual dtype.
    fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head
            .forward(hidden, self.backbone.compute)?
            .to_dtype(hidden.dtype())
    }

    /// Logits (batch, seq, vocab) for every position, in f32 (f64 for an f64 model): what training needs.
    pub fn forward(&self, ids: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        self.head(&self.backbone.forward(ids, padding, 0, None)?)
    }

    /// Logits for `ids` appended after the cached positions; updates the cache. What generation needs.
    pub fn forward_cached(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.forward_cached_padded(ids, None, cache)
    }

    /// [`CausalLm::forward_cached`] for a left-padded batch: `padding` (batch, seq) marks the new tokens' padding.
    pub fn forward_cached_padded(
        &self,
        ids: &Tensor,
        padding: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let offset = cache.len();
        self.head(&self.backbone.forward(ids, padding, offset, Some(cache))?)
    }
}

/// A backbone with a scalar head: a reward model, a cost model or a value function. Names match Hugging Face's
/// `*ForSequenceClassification` with one label (`score.weight`), so a reward model saved here loads there.
#[derive(Clone, Debug)]
pub struct ScoreModel {
    pub backbone: Backbone,
    score: Proj,
}

impl ScoreModel {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<ScoreModel> {
        Ok(ScoreModel {
            backbone: Backbone::new(cfg, vb.pp("model"))?,
            score: Proj::new(cfg.hidden_size, 1, false, vb.pp("score"))?,
        })
    }

    pub fn config(&self) -> &Config {
        self.backbone.config()
    }

    /// Compute in `dtype` over the stored weights (see the module's documentation); scores stay f32.
    pub fn set_compute_dtype(&mut self, dtype: DType) {
        self.backbone.set_compute_dtype(dtype);
    }

    /// A score for every position, in f32 (f64 for an f64 model): (batch, seq). Value functions (PPO) use these per
    /// token.
    pub fn forward_all(&self, ids: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let hidden = self.backbone.forward(ids, padding, 0, None)?;
        self.score
            .forward(&hidden, self.backbone.compute)?
            .to_dtype(hidden.dtype())?
            .squeeze(2)
    }

    /// The score at the last real token of each right-padded row: (batch,). Reward and cost models use this.
    pub fn forward(&self, ids: &Tensor, padding: Option<&Tensor>) -> Result<Tensor> {
        let all = self.forward_all(ids, padding)?;
        let (b, t) = ids.dims2()?;
        let last: Vec<u32> = match padding {
            Some(p) => p
                .to_dtype(DType::U32)?
                .to_vec2::<u32>()?
                .iter()
                .map(|row| row.iter().rposition(|&m| m != 0).unwrap_or(0) as u32)
                .collect(),
            None => vec![(t - 1) as u32; b],
        };
        let last = Tensor::from_vec(last, b, ids.device())?;
        all.gather(&last.reshape((b, 1))?, 1)?.squeeze(1)
    }
}
