//! `rice bench`: measurements of the engine — training and generation throughput on a named model size with random
//! weights and data, and the numerical agreement of a device against the CPU — plus the aligners' latency.
//!
//! `train` and `generate` print one JSON line each, with the same fields as the PyTorch twin
//! (`reference-impls/lm/benches/torch_twin.py`), so that `scripts/bench-train` and `scripts/gpu-check` can put the
//! two side by side from one run on one machine.

use std::time::Instant;

use anyhow::Context;
use candle_core::{D, DType, Device, IndexOp, Tensor};
use clap::{Args, Subcommand};
use rice_lm::optim::{AdamW, AdamWParams};
use rice_lm::rng::Rng;
use rice_lm::{CausalLm, Config, DeviceSpec, KvCache, Loaded, Precision, checkpoint};
use serde::Serialize;

use crate::aligner_cmd;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time to the first corrected sentence (Stream Aligner) against time to the corrected answer (Aligner), on
    /// the same held-out toy prompts with the same upstream; prints the ratio of medians.
    Aligners(aligner_cmd::BenchAlignersArgs),
    /// Training throughput: tokens/s of an SFT or DPO step (forward, loss, backward, AdamW) of a named model size
    /// with random weights and data. Prints one JSON line; `scripts/bench-train` and `scripts/gpu-check` compare
    /// it with PyTorch.
    Train(TrainArgs),
    /// Generation throughput: greedy decoding with the KV cache from random prompts (prefill included). Prints one
    /// JSON line.
    Generate(GenerateArgs),
    /// Numerical agreement of a device with the CPU in f32 on the same weights and batch: logits, the DPO loss and
    /// the gradients of four tensors, in f32 and in bf16. Exits with 1 when an error is over its tolerance.
    Agree(AgreeArgs),
}

/// The model and where it runs.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// tiny, toy-m, 20M (Qwen2-shaped, vocabulary 1024) or qwen2-0.5b (Qwen2-0.5B's shape: 494M parameters).
    #[arg(long, default_value = "toy-m")]
    pub size: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// f32, or bf16 (bf16 compute over f32 master weights when training; bf16 weights when generating).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// sft (next-token cross-entropy over every token) or dpo (pairs: the policy on chosen and rejected, a frozen
    /// reference, β = 0.1, the second half of each sequence is the response).
    #[arg(long, default_value = "sft")]
    pub method: String,
    /// Sequences per step (pairs, for dpo).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub seq: usize,
    /// Timed steps (the median counts), after `--warmup` untimed ones.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub prompt: usize,
    /// New tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Timed repeats (the median counts), after one untimed.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
}

#[derive(Debug, Args)]
pub struct AgreeArgs {
    /// The device compared with the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Model size (see `rice bench train --help`).
    #[arg(long, default_value = "toy-m")]
    pub size: String,
    /// Print the rows as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Aligners(args) => aligner_cmd::bench(args),
        BenchCommand::Train(args) => train(&args),
        BenchCommand::Generate(args) => generate(&args),
        BenchCommand::Agree(args) => agree(&args),
    }
}

/// The model shapes the benchmarks know. All are Qwen2-shaped (tied embeddings, QKV bias, grouped-query
/// attention), so the PyTorch twin builds the identical network from the same numbers.
pub fn size(name: &str) -> anyhow::Result<Config> {
    let with = |cfg: Config| Config {
        max_position_embeddings: 4096,
        ..cfg
    };
    Ok(match name.to_ascii_lowercase().as_str() {
        "tiny" => with(Config::qwen2(1024, 64, 2, 4, 2, 176)),
        "toy-m" => with(Config::qwen2(1024, 256, 6, 8, 4, 672)),
        "20m" => with(Config::qwen2(1024, 512, 6, 8, 4, 1376)),
        // Qwen2-0.5B's config.json: 24 layers, hidden 896, 14 query and 2 key/value heads, MLP 4864, θ = 10⁶.
        "qwen2-0.5b" => Config {
            rope_theta: 1_000_000.0,
            max_position_embeddings: 32_768,
            ..Config::qwen2(151_936, 896, 24, 14, 2, 4864)
        },
        _ => anyhow::bail!("unknown size `{name}`: use tiny, toy-m, 20M or qwen2-0.5b"),
    })
}

/// One measurement, as `scripts/bench-train` and `scripts/gpu-check` read it (the PyTorch twin prints the same).
#[derive(Debug, Serialize)]
struct Measurement {
    engine: &'static str,
    task: String,
    size: String,
    device: String,
    precision: String,
    parameters: usize,
    batch: usize,
    seq: usize,
    step_seconds: f64,
    tokens_per_second: f64,
    /// Peak resident memory of the process (CPU runs; GPU memory is sampled by `scripts/gpu-check`).
    peak_rss_mb: Option<f64>,
}

fn measurement(
    task: String,
    m: &ModelArgs,
    parameters: usize,
    shape: (usize, usize),
) -> Measurement {
    Measurement {
        engine: "rice-candle",
        task,
        size: m.size.clone(),
        device: m.device.to_string(),
        precision: m.precision.to_string(),
        parameters,
        batch: shape.0,
        seq: shape.1,
        step_seconds: 0.0,
        tokens_per_second: 0.0,
        peak_rss_mb: peak_rss_mb(),
    }
}

/// `VmHWM` of /proc/self/status, in MB (Linux).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn parameters(vars: &candle_nn::VarMap) -> usize {
    vars.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Random token ids (rows, cols) below `vocab`, reproducibly from `seed`.
fn random_ids(
    rows: usize,
    cols: usize,
    vocab: usize,
    seed: u64,
    device: &Device,
) -> anyhow::Result<Tensor> {
    let mut rng = Rng::new(seed);
    let ids: Vec<u32> = (0..rows * cols).map(|_| rng.below(vocab) as u32).collect();
    Ok(Tensor::from_vec(ids, (rows, cols), device)?)
}

/// Median of `times` in seconds.
fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A DPO batch: `pairs` chosen rows then as many rejected rows, each pair sharing its first half (the prompt), and
/// the response mask over next-token positions (1 from the last prompt token on).
struct PairBatch {
    ids: Tensor,
    mask: Tensor,
}

fn pair_batch(
    pairs: usize,
    seq: usize,
    vocab: usize,
    device: &Device,
) -> anyhow::Result<PairBatch> {
    let half = seq / 2;
    let prompt = random_ids(pairs, half, vocab, 3, device)?;
    let chosen = Tensor::cat(
        &[&prompt, &random_ids(pairs, seq - half, vocab, 4, device)?],
        1,
    )?;
    let rejected = Tensor::cat(
        &[&prompt, &random_ids(pairs, seq - half, vocab, 5, device)?],
        1,
    )?;
    let row: Vec<f32> = (0..seq - 1)
        .map(|t| if t + 1 >= half { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::new(row, device)?
        .unsqueeze(0)?
        .broadcast_as((2 * pairs, seq - 1))?
        .contiguous()?;
    Ok(PairBatch {
        ids: Tensor::cat(&[&chosen, &rejected], 0)?,
        mask,
    })
}

/// The DPO loss (β = 0.1) of `policy` against precomputed reference log-probabilities, as `rice run dpo` computes it.
fn dpo_loss(
    policy: &CausalLm,
    batch: &PairBatch,
    reference: &Tensor,
) -> candle_core::Result<Tensor> {
    let logits = policy.forward(&batch.ids, None)?;
    let logps = (rice_lm::text::token_logprobs(&logits, &batch.ids)? * &batch.mask)?.sum(1)?;
    let pairs = logps.dim(0)? / 2;
    let (chosen, rejected) = (logps.narrow(0, 0, pairs)?, logps.narrow(0, pairs, pairs)?);
    let (ref_chosen, ref_rejected) = (
        reference.narrow(0, 0, pairs)?,
        reference.narrow(0, pairs, pairs)?,
    );
    rice_dpo::loss::dpo(&chosen, &rejected, &ref_chosen, &ref_rejected, 0.1)?.mean_all()
}

/// Sequence log-probabilities of a frozen model (no graph kept).
fn reference_logps(model: &CausalLm, batch: &PairBatch) -> candle_core::Result<Tensor> {
    let logits = model.forward(&batch.ids, None)?.detach();
    (rice_lm::text::token_logprobs(&logits, &batch.ids)? * &batch.mask)?.sum(1)
}

/// Next-token cross-entropy over every position.
fn sft_loss(model: &CausalLm, ids: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let logits = model.forward(ids, None)?;
    let vocab = logits.dim(D::Minus1)?;
    let inputs = logits.i((.., ..t - 1, ..))?.reshape((b * (t - 1), vocab))?;
    let targets = ids.i((.., 1..))?.reshape(b * (t - 1))?;
    candle_nn::loss::cross_entropy(&inputs, &targets)
}

/// One optimizer step of a benchmark.
type Step<'a> = dyn FnMut(&mut AdamW) -> anyhow::Result<()> + 'a;

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = size(&args.model.size)?;
    anyhow::ensure!(
        args.seq >= 4 && args.batch >= 1 && args.steps >= 1,
        "--seq must be at least 4, --batch and --steps at least 1"
    );
    let device = args.model.device.open()?;
    let policy =
        checkpoint::init(&cfg, DType::F32, &device, 1)?.with_precision(args.model.precision);
    let mut opt = AdamW::new(&policy.vars, AdamWParams::default())?;
    let lr = 1e-5;
    let (mut step, rows): (Box<Step>, usize) = match args.method.as_str() {
        "sft" => {
            let ids = random_ids(args.batch, args.seq, cfg.vocab_size, 3, &device)?;
            let model = &policy.model;
            let step = move |opt: &mut AdamW| -> anyhow::Result<()> {
                let grads = sft_loss(model, &ids)?.backward()?;
                opt.update(&grads, lr, 1.0)?;
                Ok(())
            };
            (Box::new(step), args.batch)
        }
        "dpo" => {
            let batch = pair_batch(args.batch, args.seq, cfg.vocab_size, &device)?;
            // The frozen reference runs in every step, as in TRL's default (`rice run dpo` instead computes its
            // log-probabilities once, before training), held in the compute dtype like every frozen model.
            let reference = checkpoint::init(&cfg, args.model.precision.dtype(), &device, 2)?;
            let model = &policy.model;
            let step = move |opt: &mut AdamW| -> anyhow::Result<()> {
                let reference = reference_logps(&reference.model, &batch)?;
                let grads = dpo_loss(model, &batch, &reference)?.backward()?;
                opt.update(&grads, lr, 1.0)?;
                Ok(())
            };
            (Box::new(step), 2 * args.batch)
        }
        other => anyhow::bail!("unknown method `{other}`: use sft or dpo"),
    };
    for _ in 0..args.warmup {
        step(&mut opt)?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(args.steps);
    for _ in 0..args.steps {
        let started = Instant::now();
        step(&mut opt)?;
        device.synchronize()?;
        times.push(started.elapsed().as_secs_f64());
    }
    let seconds = median(times);
    let mut m = measurement(
        format!("train-{}", args.method),
        &args.model,
        parameters(&policy.vars),
        (args.batch, args.seq),
    );
    m.step_seconds = seconds;
    m.tokens_per_second = (rows * args.seq) as f64 / seconds;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let cfg = size(&args.model.size)?;
    anyhow::ensure!(
        args.prompt >= 1 && args.new_tokens >= 1 && args.batch >= 1 && args.repeats >= 1,
        "--prompt, --new-tokens, --batch and --repeats must be at least 1"
    );
    anyhow::ensure!(
        args.prompt + args.new_tokens <= cfg.max_position_embeddings,
        "--prompt + --new-tokens exceeds the model's {} positions",
        cfg.max_position_embeddings
    );
    let device = args.model.device.open()?;
    // Inference keeps the weights themselves in the compute dtype.
    let Loaded { model, vars, .. } =
        checkpoint::init(&cfg, args.model.precision.dtype(), &device, 1)?;
    let prompt = random_ids(args.batch, args.prompt, cfg.vocab_size, 7, &device)?;
    let decode = || -> anyhow::Result<()> {
        let mut cache = KvCache::new(&cfg);
        let mut logits = model.forward_cached(&prompt, &mut cache)?;
        for _ in 0..args.new_tokens {
            let last = logits.i((.., logits.dim(1)? - 1, ..))?;
            let next = last.argmax(D::Minus1)?.unsqueeze(1)?;
            logits = model.forward_cached(&next, &mut cache)?;
        }
        // Reading a value waits for the device.
        let _ = logits.sum_all()?.to_scalar::<f32>()?;
        Ok(())
    };
    decode()?;
    let mut times = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats {
        let started = Instant::now();
        decode()?;
        times.push(started.elapsed().as_secs_f64());
    }
    let seconds = median(times);
    let mut m = measurement(
        "generate".into(),
        &args.model,
        parameters(&vars),
        (args.batch, args.prompt + args.new_tokens),
    );
    m.step_seconds = seconds;
    m.tokens_per_second = (args.batch * args.new_tokens) as f64 / seconds;
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// One compared quantity.
#[derive(Debug, Serialize)]
struct Agreement {
    quantity: String,
    precision: String,
    relative_error: f64,
    tolerance: f64,
    ok: bool,
}

/// What is compared: logits, the DPO loss and the gradients of these tensors.
fn compared_tensors(cfg: &Config) -> Vec<String> {
    vec![
        "model.embed_tokens.weight".into(),
        "model.layers.0.self_attn.q_proj.weight".into(),
        format!(
            "model.layers.{}.mlp.down_proj.weight",
            cfg.num_hidden_layers - 1
        ),
        "model.norm.weight".into(),
    ]
}

/// Logits, DPO loss and the compared gradients on `device` in `precision`, all brought back to the CPU in f32.
fn agreement_values(
    cfg: &Config,
    device: &Device,
    precision: Precision,
) -> anyhow::Result<(Tensor, f64, Vec<Tensor>)> {
    let policy = checkpoint::init(cfg, DType::F32, device, 1)?.with_precision(precision);
    let reference = checkpoint::init(cfg, DType::F32, device, 2)?.with_precision(precision);
    let batch = pair_batch(2, 64, cfg.vocab_size, device)?;
    let logits = policy.model.forward(&batch.ids, None)?;
    let loss = dpo_loss(
        &policy.model,
        &batch,
        &reference_logps(&reference.model, &batch)?,
    )?;
    let grads = loss.backward()?;
    let vars = policy
        .vars
        .data()
        .lock()
        .expect("the var map lock is not poisoned");
    let grads = compared_tensors(cfg)
        .iter()
        .map(|name| {
            let var = vars
                .get(name)
                .with_context(|| format!("no tensor {name}"))?;
            let g = grads
                .get(var.as_tensor())
                .with_context(|| format!("no gradient for {name}"))?;
            Ok(g.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((
        logits.to_device(&Device::Cpu)?,
        f64::from(loss.to_scalar::<f32>()?),
        grads,
    ))
}

/// ‖a − b‖ / ‖b‖ (max-norm for logits, where every element matters; 2-norm for gradients).
fn relative(a: &Tensor, b: &Tensor, max_norm: bool) -> anyhow::Result<f64> {
    let diff = (a - b)?;
    let norm = |t: &Tensor| -> anyhow::Result<f64> {
        let t = t.flatten_all()?;
        let v = if max_norm {
            t.abs()?.max(0)?.to_scalar::<f32>()?
        } else {
            t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?
        };
        Ok(f64::from(v))
    };
    Ok(norm(&diff)? / norm(b)?.max(1e-30))
}

fn agree(args: &AgreeArgs) -> anyhow::Result<()> {
    let cfg = size(&args.size)?;
    let device = args.device.open()?;
    let (cpu_logits, cpu_loss, cpu_grads) = agreement_values(&cfg, &Device::Cpu, Precision::F32)?;
    let names = compared_tensors(&cfg);
    let mut rows = Vec::new();
    for (precision, tolerance) in [(Precision::F32, 1e-4), (Precision::Bf16, 2e-2)] {
        let (logits, loss, grads) = agreement_values(&cfg, &device, precision)?;
        let mut row = |quantity: String, relative_error: f64| {
            rows.push(Agreement {
                quantity,
                precision: precision.to_string(),
                relative_error,
                tolerance,
                ok: relative_error < tolerance,
            })
        };
        row("logits".into(), relative(&logits, &cpu_logits, true)?);
        row(
            "DPO loss".into(),
            (loss - cpu_loss).abs() / cpu_loss.abs().max(1e-30),
        );
        for ((name, g), cpu) in names.iter().zip(&grads).zip(&cpu_grads) {
            row(format!("grad {name}"), relative(g, cpu, false)?);
        }
    }
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else {
        println!(
            "{} ({} parameters) on {} against the CPU in f32, same weights and batch:\n",
            args.size,
            parameters(&checkpoint::init(&cfg, DType::F32, &Device::Cpu, 1)?.vars),
            args.device
        );
        println!("| quantity | precision | relative error | tolerance | agrees |");
        println!("|---|---|---|---|---|");
        for r in &rows {
            let mark = if r.ok { "yes" } else { "NO" };
            println!(
                "| {} | {} | {:.2e} | {:.0e} | {mark} |",
                r.quantity, r.precision, r.relative_error, r.tolerance
            );
        }
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} quantities disagree beyond their tolerance",
        rows.len()
    );
    Ok(())
}
