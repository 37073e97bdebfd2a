//! The model's contract: gradients reach every parameter, the KV-cache path equals the full forward pass, padding
//! changes nothing for real tokens, and checkpoints round-trip bit-exactly.

use candle_core::{DType, Device, IndexOp, Tensor};
use rice_lm::{KvCache, checkpoint, tiny_config};

fn ids(device: &Device) -> Tensor {
    Tensor::new(
        &[[3u32, 17, 42, 5, 9, 11, 2, 30], [7, 7, 8, 1, 0, 4, 19, 25]],
        device,
    )
    .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn a_gradient_reaches_every_parameter() {
    let device = Device::Cpu;
    for tie in [false, true] {
        let mut cfg = tiny_config(50);
        cfg.tie_word_embeddings = tie;
        let loaded = checkpoint::init(&cfg, DType::F32, &device, 7).unwrap();
        let ids = ids(&device);
        let logits = loaded.model.forward(&ids, None).unwrap();
        assert_eq!(logits.dims(), &[2, 8, 50], "logits for every position");
        // Next-token loss over all positions.
        let inputs = logits.i((.., ..7, ..)).unwrap().reshape((14, 50)).unwrap();
        let targets = ids.i((.., 1..)).unwrap().reshape(14).unwrap();
        let loss = candle_nn::loss::cross_entropy(&inputs, &targets).unwrap();
        let grads = loss.backward().unwrap();
        let vars = loaded.vars.data().lock().unwrap();
        assert!(!vars.is_empty());
        for (name, var) in vars.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name} (tied: {tie})"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm {norm}"
            );
        }
        let expected = if tie { 2 + 2 * 12 } else { 3 + 2 * 12 };
        assert_eq!(
            vars.len(),
            expected,
            "embed, norm, (lm_head), and 12 tensors per layer with QKV bias"
        );
    }
}

#[test]
fn kv_cache_decoding_matches_the_full_forward() {
    let device = Device::Cpu;
    let loaded = checkpoint::init(&tiny_config(50), DType::F32, &device, 7).unwrap();
    let ids = ids(&device);
    let full = loaded.model.forward(&ids, None).unwrap();
    let mut cache = KvCache::new(loaded.model.config());
    // A prompt of 5 tokens at once, then one token at a time.
    let mut pieces = vec![
        loaded
            .model
            .forward_cached(&ids.i((.., ..5)).unwrap(), &mut cache)
            .unwrap(),
    ];
    for t in 5..8 {
        pieces.push(
            loaded
                .model
                .forward_cached(&ids.i((.., t..t + 1)).unwrap(), &mut cache)
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), 8);
    let incremental = Tensor::cat(&pieces, 1).unwrap();
    let diff = max_abs_diff(&full, &incremental);
    assert!(diff < 1e-4, "max |Δlogit| = {diff}");
    // The cache holds no autograd graph: one would chain every step to the one before, and memory would grow with
    // the square of the generated length.
    for layer in 0..loaded.model.config().num_hidden_layers {
        let (k, v) = cache.layer(layer).unwrap();
        assert!(
            !k.track_op() && !v.track_op(),
            "layer {layer}: cached keys/values are detached"
        );
    }
}

#[test]
fn right_padding_does_not_change_the_real_positions() {
    let device = Device::Cpu;
    let loaded = checkpoint::init(&tiny_config(50), DType::F32, &device, 7).unwrap();
    let short = Tensor::new(&[[3u32, 17, 42, 5]], &device).unwrap();
    let alone = loaded.model.forward(&short, None).unwrap();
    let padded_ids = Tensor::new(&[[3u32, 17, 42, 5, 0, 0], [1, 2, 3, 4, 5, 6]], &device).unwrap();
    let padding = Tensor::new(&[[1u8, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], &device).unwrap();
    let batch = loaded.model.forward(&padded_ids, Some(&padding)).unwrap();
    let diff = max_abs_diff(&alone, &batch.i((0..1, ..4, ..)).unwrap());
    assert!(diff < 1e-5, "max |Δlogit| = {diff}");
}

#[test]
fn a_checkpoint_round_trips_bit_exactly() {
    let device = Device::Cpu;
    let cfg = tiny_config(50);
    let original = checkpoint::init(&cfg, DType::F32, &device, 7).unwrap();
    let dir = std::env::temp_dir().join(format!("rice-lm-ckpt-{}", std::process::id()));
    checkpoint::save(&dir, &cfg, &original.vars, None).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "Qwen2ForCausalLM");
    let loaded = checkpoint::load(&dir, DType::F32, &device).unwrap();
    assert!(loaded.unused.is_empty());
    let a = original.vars.data().lock().unwrap();
    let b = loaded.vars.data().lock().unwrap();
    assert_eq!(a.len(), b.len());
    for (name, var) in a.iter() {
        let x: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(
            x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
            "{name} changed"
        );
    }
    drop((a, b));
    let ids = ids(&device);
    let diff = max_abs_diff(
        &original.model.forward(&ids, None).unwrap(),
        &loaded.model.forward(&ids, None).unwrap(),
    );
    assert_eq!(diff, 0.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_checkpoints_get_errors_that_name_the_file() {
    let device = Device::Cpu;
    let dir = std::env::temp_dir().join(format!("rice-lm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = checkpoint::load(&dir, DType::F32, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.join("config.json"), r#"{"vocab_size": 50, "hidden_size": 30, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 4}"#).unwrap();
    let err = checkpoint::load(&dir, DType::F32, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not a multiple"), "{err}");
    let cfg = tiny_config(50);
    let other = checkpoint::init(&tiny_config(60), DType::F32, &device, 7).unwrap();
    checkpoint::save(&dir, &tiny_config(60), &other.vars, None).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec(&cfg.to_hf_json()).unwrap(),
    )
    .unwrap();
    let err = checkpoint::load(&dir, DType::F32, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("has shape [60, 32] in the file but [50, 32]"),
        "{err}"
    );
    std::fs::write(dir.join("model.safetensors"), b"truncated").unwrap();
    let err = checkpoint::load(&dir, DType::F32, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("cannot read"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A tokenizer with more tokens than the model's embedding is refused when paired with the model, and an id past
/// the embedding is an error that says so in any forward pass (not an index error, nor another row's vector).
#[test]
fn a_tokenizer_of_another_model_is_named() {
    let device = Device::Cpu;
    let cfg = tiny_config(50);
    let loaded = checkpoint::init(&cfg, DType::F32, &device, 7).unwrap();
    let path = std::path::Path::new("other/tokenizer.json");
    let err =
        checkpoint::check_tokenizer(&cfg, &rice_lm::text::Tokenizer::for_tests(60, 0, 0), path)
            .unwrap_err()
            .to_string();
    assert_eq!(
        err,
        "other/tokenizer.json has 60 tokens but the model only 50 (config.json's vocab_size): the tokenizer does not \
         belong to this model"
    );
    checkpoint::check_tokenizer(&cfg, &rice_lm::text::Tokenizer::for_tests(50, 0, 0), path)
        .unwrap();
    let ids = Tensor::new(&[[3u32, 50, 7]], &device).unwrap();
    let err = loaded.model.forward(&ids, None).unwrap_err().to_string();
    // Exactly this, with no stack trace even under RUST_BACKTRACE=1.
    assert_eq!(
        err,
        "token id 50 is outside the model's vocabulary of 50 tokens (config.json's vocab_size): the tokenizer does \
         not belong to this model"
    );
    let ids = Tensor::new(&[[3u32, 49, 7]], &device).unwrap();
    assert_eq!(loaded.model.forward(&ids, None).unwrap().dims(), [1, 3, 50]);
}

/// The analytic gradient agrees with a central finite difference (f64) for entries of several parameters.
#[test]
fn gradients_agree_with_finite_differences() {
    let device = Device::Cpu;
    let cfg = tiny_config(30);
    let loaded = checkpoint::init(&cfg, DType::F64, &device, 7).unwrap();
    let ids = Tensor::new(&[[3u32, 17, 22, 5, 9, 11]], &device).unwrap();
    let loss = |model: &rice_lm::CausalLm| {
        let logits = model.forward(&ids, None).unwrap();
        let inputs = logits.i((.., ..5, ..)).unwrap().reshape((5, 30)).unwrap();
        let targets = ids.i((.., 1..)).unwrap().reshape(5).unwrap();
        candle_nn::loss::cross_entropy(&inputs, &targets).unwrap()
    };
    let grads = loss(&loaded.model).backward().unwrap();
    let vars = loaded.vars.data().lock().unwrap();
    for name in [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.bias",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.input_layernorm.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        let var = &vars[name];
        let analytic: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let original: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let index = original.len() / 3 + 1;
        let h = 1e-5;
        let at = |delta: f64| {
            let mut values = original.clone();
            values[index] += delta;
            var.set(&Tensor::from_vec(values, var.dims(), &device).unwrap())
                .unwrap();
            loss(&loaded.model).to_scalar::<f64>().unwrap()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        at(0.0);
        let a = analytic[index];
        let relative = (a - numeric).abs() / a.abs().max(numeric.abs()).max(1e-8);
        assert!(
            relative < 1e-4,
            "{name}[{index}]: analytic {a:e}, numeric {numeric:e}"
        );
    }
}

#[test]
fn a_score_model_starts_from_a_language_model_and_reads_the_last_real_token() {
    let device = Device::Cpu;
    let cfg = tiny_config(50);
    let lm = checkpoint::init(&cfg, DType::F32, &device, 7).unwrap();
    let dir = std::env::temp_dir().join(format!("rice-lm-score-{}", std::process::id()));
    checkpoint::save(&dir, &cfg, &lm.vars, None).unwrap();
    let scored = checkpoint::load_score(&dir, DType::F32, &device).unwrap();
    // The head starts at zero: every response scores 0 until trained.
    let ids = Tensor::new(&[[3u32, 17, 42, 5, 0, 0], [1, 2, 3, 4, 5, 6]], &device).unwrap();
    let padding = Tensor::new(&[[1u8, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], &device).unwrap();
    assert_eq!(
        scored
            .model
            .forward(&ids, Some(&padding))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        vec![0.0, 0.0]
    );
    // With a non-zero head, the padded row's score is the score of its last real token.
    let head = scored.vars.data().lock().unwrap()["score.weight"].clone();
    head.set(&Tensor::ones((1, 32), DType::F32, &device).unwrap())
        .unwrap();
    let all = scored
        .model
        .forward_all(&ids, Some(&padding))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let last = scored
        .model
        .forward(&ids, Some(&padding))
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(last, vec![all[0][3], all[1][5]]);
    let alone = scored
        .model
        .forward(&ids.i((0..1, ..4)).unwrap(), None)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!((alone[0] - last[0]).abs() < 1e-5);
    // Gradients reach the head and the backbone.
    let grads = scored
        .model
        .forward(&ids, Some(&padding))
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in scored.vars.data().lock().unwrap().iter() {
        assert!(
            grads.get(var.as_tensor()).is_some(),
            "no gradient for {name}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// bf16 compute over f32 master weights (`--precision bf16`): logits stay f32 and close to f32 compute, every
/// parameter gets an f32 gradient close to the f32 one, and an optimizer step leaves the weights f32.
#[test]
fn bf16_compute_tracks_f32_and_trains_the_f32_weights() {
    let device = Device::Cpu;
    let cfg = tiny_config(50);
    let exact = checkpoint::init(&cfg, DType::F32, &device, 7).unwrap();
    let mixed = checkpoint::init(&cfg, DType::F32, &device, 7)
        .unwrap()
        .with_precision(rice_lm::Precision::Bf16);
    let ids = ids(&device);
    let loss_and_grads = |loaded: &rice_lm::Loaded| {
        let logits = loaded.model.forward(&ids, None).unwrap();
        assert_eq!(logits.dtype(), DType::F32, "logits are returned in f32");
        let inputs = logits.i((.., ..7, ..)).unwrap().reshape((14, 50)).unwrap();
        let targets = ids.i((.., 1..)).unwrap().reshape(14).unwrap();
        let loss = candle_nn::loss::cross_entropy(&inputs, &targets).unwrap();
        (logits, loss.backward().unwrap())
    };
    let (logits32, grads32) = loss_and_grads(&exact);
    let (logits16, grads16) = loss_and_grads(&mixed);
    let scale = |t: &Tensor| max_abs_diff(t, &t.zeros_like().unwrap());
    let logit_error = max_abs_diff(&logits16, &logits32) / scale(&logits32);
    assert!(
        logit_error > 0.0 && logit_error < 2e-2,
        "bf16 logits are within 2% of f32 (and not computed in f32): {logit_error}"
    );
    let exact_vars = exact.vars.data().lock().unwrap();
    for (name, var) in mixed.vars.data().lock().unwrap().iter() {
        assert_eq!(var.dtype(), DType::F32, "{name}: master weights stay f32");
        let g = grads16
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no bf16 gradient for {name}"));
        assert_eq!(g.dtype(), DType::F32, "{name}: gradients arrive in f32");
        let g32 = grads32.get(exact_vars[name].as_tensor()).unwrap();
        let norm = |t: &Tensor| {
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .sqrt()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let relative = norm(&(g - g32).unwrap()) / norm(g32);
        assert!(relative < 5e-2, "{name}: bf16 gradient off by {relative}");
    }
    let mut opt =
        rice_lm::optim::AdamW::new(&mixed.vars, rice_lm::optim::AdamWParams::default()).unwrap();
    opt.update(&grads16, 1e-3, 1.0).unwrap();
    for (name, var) in mixed.vars.data().lock().unwrap().iter() {
        assert_eq!(var.dtype(), DType::F32, "{name}: still f32 after a step");
    }
}
