//! `rice run …`: the reference implementations. Each writes a run directory (config.toml, metrics.jsonl,
//! summary.json, plots/, checkpoint/) that `rice serve --runs` shows.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rice_rlhf::pretrain::PretrainConfig;
use rice_rlhf::sft::SftConfig;
use rice_rlhf::toy::ToyMetrics;

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Pre-train an unaligned base model on the toy world (stage 0 of the RLHF pipeline).
    Pretrain(PretrainArgs),
    /// Supervised fine-tuning on demonstrations (stage 1): the toy world's, or a JSONL file of your own.
    Sft(SftArgs),
}

/// Options every run takes.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run directory (default runs/METHOD-PRESET).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override the preset's number of optimizer steps.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Continue the run in --out from its last checkpoint (after a crash or kill).
    #[arg(long)]
    pub resume: bool,
}

impl RunArgs {
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
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct SftArgs {
    /// `toy`: the toy world's aligned demonstrations, starting from runs/pretrain-toy-s.
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
        RunCommand::Pretrain(args) => {
            let mut cfg = PretrainConfig::preset(&args.preset).with_context(|| {
                format!(
                    "unknown preset `{}`; use one of {}",
                    args.preset,
                    rice_rlhf::presets::MODEL_PRESETS.join(", ")
                )
            })?;
            if let Some(steps) = args.run.steps {
                cfg.train.steps = steps;
            }
            let out = args.run.out("pretrain", &args.preset);
            eprintln!("pre-training {} into {} …", args.preset, out.display());
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
                args.preset == "toy",
                "unknown preset `{}`; the SFT preset is `toy`",
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
            cfg.data = args.data;
            cfg.template = args.template;
            if let Some(steps) = args.run.steps {
                cfg.train.steps = steps;
            }
            let out = args.run.out("sft", &args.preset);
            eprintln!(
                "fine-tuning {} into {} …",
                cfg.model.display(),
                out.display()
            );
            let summary = rice_rlhf::sft::run(&cfg, &out, args.run.resume)?;
            println!(
                "done: {} examples, {} steps, loss {:.3} → {:.3}",
                summary.examples,
                summary.train.steps,
                summary.train.first_loss.unwrap_or(f64::NAN),
                summary.train.final_loss
            );
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
    }
    Ok(())
}

fn print_metrics(label: &str, m: &ToyMetrics) {
    println!(
        "{label}: helpfulness {:.2}, hazard unsafe rate {:.2}, look-alike refusal rate {:.2}",
        m.helpfulness, m.hazard_unsafe_rate, m.lookalike_refusal_rate
    );
}
