//! `rice run …`: the reference implementations. Each writes a run directory (config.toml, metrics.jsonl,
//! summary.json, plots/, checkpoint/) that `rice serve --runs` shows.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rice_dpo::dpo::DpoConfig;
use rice_dpo::loss::LossKind;
use rice_rlhf::ppo::PpoConfig;
use rice_rlhf::pretrain::PretrainConfig;
use rice_rlhf::reward::{ScoreConfig, ScoreKind};
use rice_rlhf::sft::SftConfig;
use rice_rlhf::toy::{Comparison, ToyMetrics, WinRate};

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Pre-train an unaligned base model on the toy world (stage 0 of the RLHF pipeline).
    Pretrain(PretrainArgs),
    /// Supervised fine-tuning on demonstrations (stage 1): the toy world's, or a JSONL file of your own.
    Sft(SftArgs),
    /// Train a reward model on preference pairs (stage 2): Bradley–Terry loss, score at the last token.
    Reward(ScoreArgs),
    /// Train Safe RLHF's cost model on safety-labelled pairs: cost > 0 unsafe, cost ≤ 0 safe.
    Cost(ScoreArgs),
    /// Direct preference optimisation and its variants (IPO, cDPO, SLiC hinge, SimPO) on preference pairs.
    Dpo(DpoArgs),
    /// PPO from a reward model or the toy oracle, with a KL penalty to the starting model (stage 3).
    Ppo(PpoArgs),
    /// Safe RLHF: PPO-Lagrangian with a reward and a cost, keeping the mean cost under a threshold.
    #[command(name = "safe-rlhf")]
    SafeRlhf(SafeRlhfArgs),
    /// Aligner: train a small model to correct another model's answers, then measure the upstream model with and
    /// without it on held-out prompts.
    Aligner(AlignerArgs),
    /// Stream Aligner: train a small model to correct an answer sentence by sentence while it is generated, then
    /// measure the upstream model with and without it.
    #[command(name = "stream-aligner")]
    StreamAligner(AlignerArgs),
    /// Learning from language feedback (Align-Anything's method): a feedback model critiques and rewrites the
    /// policy's answers, refined ≻ original pairs train DPO; on the toy world, against binary DPO at the same
    /// annotation budget.
    Llf(LlfArgs),
    /// Elasticity ("Language Models Resist Alignment"): forward vs inverse alignment loss, and how fast a
    /// safety-aligned model rebounds to its base under unsafe fine-tuning.
    Elasticity(ElasticityArgs),
}

#[derive(Debug, Args)]
pub struct LlfArgs {
    /// The policy's start (default runs/sft-toy-helpful/checkpoint); with --data, annotations as JSONL
    /// `{prompt, response, critique, refinement}` instead of the toy oracle's.
    #[command(flatten)]
    pub start: StartArgs,
    /// Unlabelled prompts as JSONL with a `prompt` field (default: toy training prompts).
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Annotated examples (toy): critiques for LLF, and as many binary labels for the baseline.
    #[arg(long, value_name = "N")]
    pub budget: Option<usize>,
    /// Unlabelled prompts the feedback model critiques (toy; 0: all left).
    #[arg(long, value_name = "N")]
    pub unlabelled: Option<usize>,
    /// Steps of the feedback model's training.
    #[arg(long, value_name = "N")]
    pub feedback_steps: Option<u64>,
    /// Steps of each DPO stage (LLF's and the baseline's).
    #[arg(long, value_name = "N")]
    pub dpo_steps: Option<u64>,
    /// Skip the binary-preference baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Continue the run in --out: stages whose output is there are reused, trainings continue from checkpoints.
    #[arg(long)]
    pub resume: bool,
    /// Run directory (default runs/llf-PRESET).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct ElasticityArgs {
    /// `toy`: a toy-xs base pre-trained for 300 steps into RUN/base (unless --model is given); resistance and
    /// rebound take a few minutes on a CPU, scaling pre-trains four more bases.
    #[arg(long, default_value = "toy")]
    pub preset: String,
    /// Every setting from a TOML file instead of the preset (a run's config.toml is one: edit and rerun).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Which probes, comma-separated: resistance, rebound, scaling, or all (default: the preset's
    /// resistance,rebound).
    #[arg(long)]
    pub probe: Option<String>,
    /// The pre-trained base model (a Hugging Face directory with tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Run directory (default runs/elasticity-PRESET).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Debug, Args)]
pub struct AlignerArgs {
    /// `toy`: a toy-xs aligner (from runs/pretrain-toy-xs, made by `rice run pretrain --preset toy-xs`) trained on
    /// the toy world's corrections, then correcting the toy-s base model (runs/pretrain-toy-s).
    #[arg(long, default_value = "toy")]
    pub preset: String,
    /// The aligner's starting model: a Hugging Face model directory.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Toy world: the upstream model whose answers the trained aligner corrects in the evaluation.
    #[arg(long, value_name = "DIR")]
    pub upstream: Option<PathBuf>,
    /// Train on this JSONL instead of the toy world: `question`/`answer`/`correction` (Aligner) or
    /// `question`/`prefix`/`last`/`correction` with an optional `end` flag (Stream Aligner).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Aligner's input format: v1.0 (the released aligner-7b), 2024-12 (the repository's later one) or
    /// align-anything.
    #[arg(long, default_value = "align-anything")]
    pub format: String,
    /// The aligner model's chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    #[command(flatten)]
    pub run: RunArgs,
}

impl AlignerArgs {
    /// The aligner's start and, for the toy evaluation, the upstream.
    fn models(&self) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
        anyhow::ensure!(
            self.preset == "toy",
            "unknown preset `{}`; the preset is `toy` (use --model and --data for your own)",
            self.preset
        );
        let need = |dir: PathBuf, make: &str| -> anyhow::Result<PathBuf> {
            anyhow::ensure!(
                dir.join("config.json").is_file(),
                "no model at {}: run `{make}` first, or pass it explicitly",
                dir.display()
            );
            Ok(dir)
        };
        let model = need(
            self.model
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs/pretrain-toy-xs/checkpoint")),
            "rice run pretrain --preset toy-xs",
        )?;
        let upstream = match (&self.upstream, &self.data) {
            (Some(dir), _) => Some(need(dir.clone(), "a run that makes it")?),
            (None, None) => Some(need(
                PathBuf::from("runs/pretrain-toy-s/checkpoint"),
                "rice run pretrain --preset toy-s",
            )?),
            (None, Some(_)) => None,
        };
        Ok((model, upstream))
    }
}

/// Where a fine-tuning run starts and what it trains on.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// `toy`: the toy world's data, starting from the helpful-only toy SFT model (runs/sft-toy-helpful/checkpoint,
    /// made by `rice run sft --preset toy-helpful`).
    #[arg(long, default_value = "toy")]
    pub preset: String,
    /// Start from this Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Train on this JSONL file instead of the toy world's data.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
}

impl StartArgs {
    /// The starting model: `--model`, or the output of the run `default_run` (with the command that makes it).
    fn model(&self, default_run: &str, make: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            self.preset == "toy",
            "unknown preset `{}`; the preset is `toy` (use --model and --data for your own)",
            self.preset
        );
        let model = self
            .model
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_run).join("checkpoint"));
        anyhow::ensure!(
            model.join("config.json").is_file(),
            "no model at {}: run `{make}` first, or pass --model DIR",
            model.display()
        );
        Ok(model)
    }
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Pairs as JSONL: `prompt`/`chosen`/`rejected` (reward) or PKU-SafeRLHF records (reward or cost).
    #[command(flatten)]
    pub start: StartArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct DpoArgs {
    #[command(flatten)]
    pub start: StartArgs,
    /// The preference loss: sigmoid (DPO), ipo, cdpo, hinge (SLiC) or simpo.
    #[arg(long, default_value = "sigmoid")]
    pub loss: String,
    /// The loss's β (default 0.1, or 2.0 for SimPO).
    #[arg(long)]
    pub beta: Option<f64>,
    /// cDPO's label-flip probability ε (default 0.1).
    #[arg(long, value_name = "EPS")]
    pub label_smoothing: Option<f64>,
    /// SimPO's target margin γ (default 1.0).
    #[arg(long, value_name = "GAMMA")]
    pub simpo_gamma: Option<f64>,
    /// Toy world only: `sampled` (pairs from the start model's samples, ranked by the oracle) or `world` (the
    /// world's fixed preference pairs).
    #[arg(long, default_value = "sampled")]
    pub pairs: String,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options every run takes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run directory (default runs/METHOD-PRESET).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override the preset's number of optimizer steps.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub steps: Option<u64>,
    /// Override the preset's peak learning rate (the actor's, for PPO).
    #[arg(long, value_name = "LR", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Continue the run in --out from its last checkpoint (after a crash or kill).
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Where a run computes, and in what precision.
#[derive(Debug, Args)]
pub struct ComputeArgs {
    /// cpu, cuda or cuda:N: an NVIDIA GPU, in a build with `--features cuda` [default: cpu, or the --config
    /// file's]
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<rice_lm::DeviceSpec>,
    /// f32, or bf16: bf16 matmuls and activations over f32 master weights and f32 optimizer state (for GPUs; on a
    /// CPU it is slower than f32) [default: f32, or the --config file's]
    #[arg(long, value_name = "PRECISION")]
    pub precision: Option<rice_lm::Precision>,
}

impl ComputeArgs {
    /// Sets what was given on the command line.
    fn set(&self, device: &mut rice_lm::DeviceSpec, precision: &mut rice_lm::Precision) {
        if let Some(d) = self.device {
            *device = d;
        }
        if let Some(p) = self.precision {
            *precision = p;
        }
    }

    fn apply(&self, train: &mut rice_lm::trainer::TrainConfig) {
        self.set(&mut train.device, &mut train.precision);
    }
}

impl RunArgs {
    /// Applies `--steps`, `--lr`, `--device` and `--precision` to a training configuration.
    fn apply(&self, train: &mut rice_lm::trainer::TrainConfig) {
        if let Some(steps) = self.steps {
            train.steps = steps;
        }
        if let Some(lr) = self.lr {
            train.lr = lr;
        }
        self.compute.apply(train);
    }

    fn out(&self, method: &str, preset: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{method}-{preset}")))
    }
}

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Model size: toy-xs, toy-s or toy-m.
    #[arg(long, default_value = "toy-s")]
    pub preset: String,
    /// Every setting from a TOML file instead of the preset (a run's config.toml is one: edit and rerun; e.g.
    /// `train.save_every` to checkpoint along the way).
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct SftArgs {
    /// `toy`: the toy world's aligned demonstrations, starting from runs/pretrain-toy-s. `toy-helpful`: all but the
    /// hazard demonstrations — a helpful but not yet safe start, like Safe RLHF's SFT on Alpaca, which the reward,
    /// cost, PPO, Safe RLHF and DPO presets start from.
    #[arg(long, default_value = "toy")]
    pub preset: String,
    /// Start from this Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Train on this JSONL (`prompt`/`completion` or `messages`) instead of the toy world.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(command: RunCommand) -> anyhow::Result<()> {
    match command {
        RunCommand::Aligner(args) => {
            let (model, upstream) = args.models()?;
            let mut cfg = rice_aligner::train::AlignerConfig::toy(model, upstream);
            cfg.data = args.data;
            cfg.format = args.format;
            cfg.template = args.template;
            args.run.apply(&mut cfg.train);
            let out = args.run.out("aligner", &args.preset);
            eprintln!(
                "aligner from {} into {} …",
                cfg.model.display(),
                out.display()
            );
            let summary = rice_aligner::train::run(&cfg, &out, args.run.resume)?;
            print_done(summary.examples, "corrections", &summary.train);
            if let Some(c) = &summary.correction {
                println!(
                    "upstream {} ({} parameters) corrected by the aligner ({} parameters), held-out prompts:",
                    c.upstream.display(),
                    c.upstream_parameters,
                    c.aligner_parameters
                );
                for (metric, (before, after)) in rice_aligner::train::headline(c) {
                    println!("  {metric}: {before:.3} → {after:.3}");
                }
                print_win_rate(
                    "win rate of corrected over original answers (sampled, T = 1)",
                    &c.comparison.win_rate,
                );
                print_win_rate(
                    "win rate of corrected over original answers (greedy)",
                    &c.comparison.greedy_win_rate,
                );
                println!(
                    "every correction: {}",
                    out.join("corrections.jsonl").display()
                );
            }
            print_run_dir(&out);
        }
        RunCommand::StreamAligner(args) => {
            let (model, upstream) = args.models()?;
            let mut cfg = rice_stream_aligner::train::StreamAlignerConfig::toy(model, upstream);
            cfg.data = args.data;
            cfg.template = args.template;
            args.run.apply(&mut cfg.train);
            let out = args.run.out("stream-aligner", &args.preset);
            eprintln!(
                "stream aligner from {} into {} …",
                cfg.model.display(),
                out.display()
            );
            let summary = rice_stream_aligner::train::run(&cfg, &out, args.run.resume)?;
            print_done(summary.examples, "sentence revisions", &summary.train);
            if let Some(e) = &summary.evaluation {
                println!(
                    "upstream {} alone → corrected sentence by sentence, held-out prompts (greedy):",
                    e.upstream.display()
                );
                for (metric, before, after) in [
                    ("helpfulness", e.before.helpfulness, e.after.helpfulness),
                    (
                        "hazard unsafe rate",
                        e.before.hazard_unsafe_rate,
                        e.after.hazard_unsafe_rate,
                    ),
                    (
                        "reasoning-step validity",
                        e.step_validity[0],
                        e.step_validity[1],
                    ),
                ] {
                    println!("  {metric}: {before:.3} → {after:.3}");
                }
                print_win_rate("win rate of corrected over original answers", &e.win_rate);
                println!(
                    "rounds per answer {:.1}; first corrected sentence after {:.3} s, whole answer after {:.3} s",
                    e.mean_rounds, e.first_sentence_seconds, e.answer_seconds
                );
                println!(
                    "every correction: {}",
                    out.join("corrections.jsonl").display()
                );
            }
            print_run_dir(&out);
        }
        RunCommand::Pretrain(args) => {
            let (mut cfg, name) = match &args.config {
                Some(path) => {
                    let cfg = read_config::<PretrainConfig>(path)?;
                    cfg.validate()
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    (cfg, config_name(path))
                }
                None => (
                    PretrainConfig::preset(&args.preset).with_context(|| {
                        format!(
                            "unknown preset `{}`; use one of {}",
                            args.preset,
                            rice_rlhf::presets::MODEL_PRESETS.join(", ")
                        )
                    })?,
                    args.preset.clone(),
                ),
            };
            args.run.apply(&mut cfg.train);
            let out = args.run.out("pretrain", &name);
            eprintln!("pre-training {} into {} …", cfg.preset, out.display());
            let summary = rice_rlhf::pretrain::run(&cfg, &out, args.run.resume)?;
            println!(
                "done: {} parameters, {} steps, loss {:.3} → {:.3}, {:.0} tokens/s",
                summary.parameters,
                summary.train.steps,
                summary.train.first_loss.unwrap_or(f64::NAN),
                summary.train.final_loss,
                summary.train.tokens_per_second
            );
            print_metrics("base model", &summary.oracle);
            println!(
                "run directory: {}  (summary.json, plots/loss.svg, checkpoint/)",
                out.display()
            );
        }
        RunCommand::Sft(args) => {
            anyhow::ensure!(
                args.preset == "toy" || args.preset == "toy-helpful",
                "unknown preset `{}`; the SFT presets are `toy` and `toy-helpful`",
                args.preset
            );
            let model = args
                .model
                .unwrap_or_else(|| PathBuf::from("runs/pretrain-toy-s/checkpoint"));
            anyhow::ensure!(
                model.join("config.json").is_file(),
                "no model at {}: run `rice run pretrain --preset toy-s` first, or pass --model DIR",
                model.display()
            );
            let mut cfg = SftConfig::toy(model);
            if args.preset == "toy-helpful" {
                cfg.families = rice_rlhf::sft::HELPFUL_FAMILIES.map(String::from).to_vec();
            }
            cfg.data = args.data;
            cfg.template = args.template;
            args.run.apply(&mut cfg.train);
            let out = args.run.out("sft", &args.preset);
            eprintln!(
                "fine-tuning {} into {} …",
                cfg.model.display(),
                out.display()
            );
            let summary = rice_rlhf::sft::run(&cfg, &out, args.run.resume)?;
            print_done(summary.examples, "examples", &summary.train);
            if let Some(before) = &summary.before {
                print_metrics("before SFT", before);
            }
            if let Some(after) = &summary.after {
                print_metrics("after SFT", after);
            }
            println!(
                "run directory: {}  (summary.json, plots/loss.svg, checkpoint/)",
                out.display()
            );
        }
        RunCommand::Elasticity(args) => run_elasticity(args)?,
        RunCommand::Llf(args) => run_llf(args)?,
        RunCommand::Reward(args) => run_score(ScoreKind::Reward, args)?,
        RunCommand::Cost(args) => run_score(ScoreKind::Cost, args)?,
        RunCommand::Dpo(args) => run_dpo(args)?,
        RunCommand::Ppo(args) => run_ppo(args, None)?,
        RunCommand::SafeRlhf(args) => run_ppo(
            args.ppo,
            Some((args.cost_model, args.threshold, args.lambda_init)),
        )?,
    }
    Ok(())
}

fn run_llf(args: LlfArgs) -> anyhow::Result<()> {
    let model = args
        .start
        .model("runs/sft-toy-helpful", "rice run sft --preset toy-helpful")?;
    let mut cfg = rice_llf::LlfConfig::toy(model);
    cfg.data = args.start.data;
    cfg.prompts = args.prompts;
    cfg.template = args.start.template;
    cfg.baseline = !args.no_baseline;
    if let Some(n) = args.budget {
        cfg.budget = n;
    }
    if let Some(n) = args.unlabelled {
        cfg.unlabelled_prompts = n;
    }
    if let Some(n) = args.feedback_steps {
        cfg.feedback_train.steps = n;
        cfg.feedback_train.warmup_steps = cfg.feedback_train.warmup_steps.min(n / 2).max(1);
    }
    if let Some(n) = args.dpo_steps {
        cfg.dpo_train.steps = n;
        cfg.dpo_train.warmup_steps = cfg.dpo_train.warmup_steps.min(n / 2).max(1);
    }
    args.compute.apply(&mut cfg.feedback_train);
    args.compute.apply(&mut cfg.dpo_train);
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("runs/llf-{}", args.start.preset)));
    eprintln!(
        "learning from language feedback from {} into {} …",
        cfg.model.display(),
        out.display()
    );
    let summary = rice_llf::run(&cfg, &out, args.resume)?;
    println!(
        "{} annotations; the feedback model critiqued {} responses and rewrote {} into pairs",
        summary.annotations, summary.unlabelled_prompts, summary.llf.pairs
    );
    if let Some(q) = &summary.refinement {
        println!(
            "rewrites by the oracle: helpfulness {:.3} → {:.3}, unsafe rate {:.3} → {:.3} ({} better, {} ties, {} \
             worse)",
            q.helpfulness_original,
            q.helpfulness_refined,
            q.unsafe_rate_original,
            q.unsafe_rate_refined,
            q.refined_better,
            q.ties,
            q.refined_worse
        );
    }
    for (name, result) in [
        ("LLF", Some(&summary.llf)),
        ("binary DPO", summary.binary.as_ref()),
    ] {
        if let Some(r) = result {
            println!(
                "\n{name} ({} pairs from a budget of {}):",
                r.pairs, r.budget
            );
            if let Some(toy) = &r.toy {
                print_comparison(toy);
            }
        }
    }
    if let Some(v) = &summary.verdict {
        println!("\n{v}");
    }
    println!("done in {:.0} s", summary.seconds);
    print_run_dir(&out);
    Ok(())
}

/// A run's settings from a TOML file (errors name the file, line and field).
fn read_config<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str::<T>(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The name a run from `--config FILE` gets in its default directory: the file's stem.
fn config_name(path: &std::path::Path) -> String {
    path.file_stem()
        .map_or("custom".into(), |s| s.to_string_lossy().into_owned())
}

fn run_elasticity(args: ElasticityArgs) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(path) => read_config::<rice_elasticity::ElasticityConfig>(path)?,
        None => {
            anyhow::ensure!(
                args.preset == "toy",
                "unknown preset `{}`; the preset is `toy` (or give --config FILE)",
                args.preset
            );
            rice_elasticity::ElasticityConfig::toy()
        }
    };
    if let Some(model) = args.model {
        cfg.model = Some(model);
    }
    if let Some(probe) = args.probe {
        cfg.probe = probe;
    }
    args.compute.set(&mut cfg.device, &mut cfg.precision);
    rice_elasticity::parse_probes(&cfg.probe)?;
    let name = match &args.config {
        Some(path) => config_name(path),
        None => args.preset.clone(),
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("runs/elasticity-{name}")));
    eprintln!("elasticity probes ({}) into {} …", cfg.probe, out.display());
    let summary = rice_elasticity::run(&cfg, &out)?;
    println!(
        "base model: hazard unsafe rate {:.3}",
        summary.base_unsafe_rate
    );
    if let Some(r) = &summary.resistance {
        println!(
            "\nresistance (hazard unsafe rate of θ1, θ2, θ3: {}):\n",
            r.stage_unsafe_rates
                .iter()
                .map(|u| format!("{u:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        print!("{}", rice_elasticity::resistance::table(r));
    }
    if let Some(r) = &summary.rebound {
        println!("\nrebound (unsafe rate and KL to the base by negative examples seen):\n");
        print!("{}", rice_elasticity::rebound::table(r));
    }
    if let Some(r) = &summary.scaling {
        println!("\nscaling:\n");
        print!("{}", rice_elasticity::scaling::table(r));
        print!(
            "{}",
            rice_elasticity::rebound::phase_lines(
                &r.rows
                    .iter()
                    .map(|row| row.curve.clone())
                    .collect::<Vec<_>>()
            )
        );
    }
    println!("\ndone in {:.0} s", summary.seconds);
    print_run_dir(&out);
    Ok(())
}

fn run_score(kind: ScoreKind, args: ScoreArgs) -> anyhow::Result<()> {
    let model = args
        .start
        .model("runs/sft-toy-helpful", "rice run sft --preset toy-helpful")?;
    let mut cfg = ScoreConfig::toy(kind, model);
    cfg.data = args.start.data;
    cfg.template = args.start.template;
    args.run.apply(&mut cfg.train);
    let out = args.run.out(kind.name(), &args.start.preset);
    eprintln!(
        "training a {} model from {} into {} …",
        kind.name(),
        cfg.model.display(),
        out.display()
    );
    let summary = rice_rlhf::reward::run(&cfg, &out, args.run.resume)?;
    print_done(summary.pairs, "pairs", &summary.train);
    println!(
        "held-out pairs ordered correctly: {:.3} → {:.3} ({} pairs)",
        summary.accuracy_before, summary.accuracy_after, summary.held_out_pairs
    );
    if !summary.accuracy_by_family.is_empty() {
        let parts: Vec<String> = summary
            .accuracy_by_family
            .iter()
            .map(|(f, a)| format!("{f} {a:.2}"))
            .collect();
        println!("by family: {}", parts.join(", "));
    }
    if let Some(sign) = summary.sign_accuracy_after {
        println!("held-out responses whose cost sign matches the safety label: {sign:.3}");
    }
    print_run_dir(&out);
    Ok(())
}

fn run_dpo(args: DpoArgs) -> anyhow::Result<()> {
    let kind = LossKind::by_name(&args.loss).with_context(|| {
        let names: Vec<&str> = LossKind::ALL.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown loss `{}`; use one of {}",
            args.loss,
            names.join(", ")
        )
    })?;
    let model = args
        .start
        .model("runs/sft-toy-helpful", "rice run sft --preset toy-helpful")?;
    let mut cfg = DpoConfig::toy(model, kind);
    cfg.data = args.start.data;
    cfg.template = args.start.template;
    if let Some(beta) = args.beta {
        cfg.loss.beta = beta;
    }
    if let Some(eps) = args.label_smoothing {
        cfg.loss.label_smoothing = eps;
    }
    if let Some(gamma) = args.simpo_gamma {
        cfg.loss.simpo_gamma = gamma;
    }
    cfg.toy_pairs = args.pairs;
    args.run.apply(&mut cfg.train);
    let method = match kind {
        LossKind::Sigmoid => "dpo".to_owned(),
        other => format!("dpo-{}", other.name()),
    };
    let out = args.run.out(&method, &args.start.preset);
    eprintln!(
        "preference optimisation ({} loss) from {} into {} …",
        kind.name(),
        cfg.model.display(),
        out.display()
    );
    let summary = rice_dpo::dpo::run(&cfg, &out, args.run.resume)?;
    print_done(summary.pairs, "pairs", &summary.train);
    println!(
        "held-out implicit reward margin {:.3} → {:.3}, pairs ordered correctly {:.3}",
        summary.margin_before, summary.margin_after, summary.accuracy_after
    );
    if let Some(toy) = &summary.toy {
        print_comparison(toy);
    }
    print_run_dir(&out);
    Ok(())
}

#[derive(Debug, Args)]
pub struct PpoArgs {
    /// `toy`: the toy world's prompts, starting from runs/sft-toy-helpful, rewarded by the oracle's helpfulness
    /// unless --reward-model is given.
    #[arg(long, default_value = "toy")]
    pub preset: String,
    /// Start from this Hugging Face model directory (also the KL reference).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Prompts as JSONL with a `prompt` field, instead of the toy world's (needs --reward-model).
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// A reward model directory (from `rice run reward`); default: the toy oracle's helpfulness.
    #[arg(long, value_name = "DIR")]
    pub reward_model: Option<PathBuf>,
    /// Chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// The KL penalty's coefficient (default 0.02).
    #[arg(long)]
    pub kl_coeff: Option<f64>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct SafeRlhfArgs {
    #[command(flatten)]
    pub ppo: PpoArgs,
    /// A cost model directory (from `rice run cost`); default: the toy oracle's cost.
    #[arg(long, value_name = "DIR")]
    pub cost_model: Option<PathBuf>,
    /// The cost limit d: keep the mean cost per response at or below it (cost > 0 is unsafe).
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// λ at the start (default 1).
    #[arg(long)]
    pub lambda_init: Option<f64>,
}

fn run_ppo(
    args: PpoArgs,
    safe: Option<(Option<PathBuf>, Option<f64>, Option<f64>)>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.preset == "toy",
        "unknown preset `{}`; the preset is `toy` (use --model, --prompts and --reward-model for your own)",
        args.preset
    );
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/sft-toy-helpful/checkpoint"));
    anyhow::ensure!(
        model.join("config.json").is_file(),
        "no model at {}: run `rice run sft --preset toy-helpful` first, or pass --model DIR",
        model.display()
    );
    let mut cfg = PpoConfig::toy(model, safe.is_some());
    cfg.prompts = args.prompts;
    cfg.reward_model = args.reward_model;
    cfg.template = args.template;
    if let Some(k) = args.kl_coeff {
        cfg.kl_coeff = k;
    }
    if let Some(steps) = args.run.steps {
        cfg.steps = steps;
    }
    if let Some(lr) = args.run.lr {
        cfg.actor_lr = lr;
    }
    args.run.compute.set(&mut cfg.device, &mut cfg.precision);
    if let Some((cost_model, threshold, lambda_init)) = safe {
        cfg.cost_model = cost_model;
        let l = cfg
            .lagrangian
            .as_mut()
            .expect("the toy preset with a Lagrangian");
        if let Some(t) = threshold {
            l.threshold = t;
        }
        if let Some(v) = lambda_init {
            l.lambda_init = v;
        }
    }
    let method = if cfg.lagrangian.is_some() {
        "safe-rlhf"
    } else {
        "ppo"
    };
    let out = args.run.out(method, &args.preset);
    eprintln!(
        "{method} from {} into {} (reward: {}) …",
        cfg.model.display(),
        out.display(),
        cfg.reward_model
            .as_ref()
            .map_or("the toy oracle".to_owned(), |p| p.display().to_string())
    );
    let summary = rice_rlhf::ppo::run(&cfg, &out, args.run.resume)?;
    println!(
        "done: {} steps in {:.0} s, rollout reward {:.3} → {:.3}, KL to the reference {:.3}",
        summary.steps, summary.seconds, summary.reward_start, summary.reward_end, summary.kl_end
    );
    if let (Some(a), Some(b), Some(l)) = (summary.cost_start, summary.cost_end, summary.lambda_end)
    {
        println!("episode cost {a:.3} → {b:.3}, λ {l:.3}");
    }
    if let Some(toy) = &summary.toy {
        print_comparison(toy);
    }
    print_run_dir(&out);
    Ok(())
}

fn print_done(count: usize, unit: &str, train: &rice_lm::trainer::TrainReport) {
    println!(
        "done: {count} {unit}, {} steps, loss {:.3} → {:.3}",
        train.steps,
        train.first_loss.unwrap_or(f64::NAN),
        train.final_loss
    );
}

fn print_run_dir(out: &std::path::Path) {
    println!(
        "run directory: {}  (summary.json, plots/, checkpoint/)",
        out.display()
    );
}

fn print_comparison(c: &Comparison) {
    print_metrics("before (greedy)", &c.before);
    print_metrics("after (greedy)", &c.after);
    print_metrics("before (sampled)", &c.sampled_before);
    print_metrics("after (sampled)", &c.sampled_after);
    print_win_rate("win rate over the start (sampled, T = 1)", &c.win_rate);
    print_win_rate("win rate over the start (greedy)", &c.greedy_win_rate);
}

fn print_win_rate(label: &str, w: &WinRate) {
    println!(
        "{label}: {:.3} ({} wins, {} ties, {} losses{})",
        w.rate,
        w.wins,
        w.ties,
        w.losses,
        w.decisive_rate
            .map(|d| format!("; {d:.3} among decided prompts"))
            .unwrap_or_default()
    );
}

fn print_metrics(label: &str, m: &ToyMetrics) {
    println!(
        "{label}: helpfulness {:.2}, hazard unsafe rate {:.2}, look-alike refusal rate {:.2}",
        m.helpfulness, m.hazard_unsafe_rate, m.lookalike_refusal_rate
    );
}
