//! `rice lm …`: use a model directory directly — generate text, or score a completion token by token.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use rice_lm::generate::{Sampling, generate};
use rice_lm::text::{Encoded, Template, Tokenizer, batch, token_logprobs};

#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Continue a prompt with a model.
    Generate(GenerateArgs),
    /// Log-probability of a completion given a prompt, per token and in total.
    Score(ScoreArgs),
    /// Serve the model over an OpenAI-compatible API: /v1/chat/completions (with `stream: true`) and /v1/models.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    pub addr: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// cpu, cuda or cuda:N (an NVIDIA GPU, in a build with `--features cuda`).
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: rice_lm::DeviceSpec,
    /// The weights' dtype: f32, or bf16 (half the memory; for GPUs).
    #[arg(long, value_name = "PRECISION", default_value = "f32")]
    pub precision: rice_lm::Precision,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub prompt: String,
    #[arg(long)]
    pub completion: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn load(args: &ModelArgs) -> anyhow::Result<(rice_lm::Loaded, Tokenizer, Template)> {
    let template = Template::by_name(&args.template)
        .with_context(|| format!("unknown template `{}`", args.template))?;
    anyhow::ensure!(
        args.model.join("config.json").is_file(),
        "no model at {}: a model directory holds config.json, model.safetensors and tokenizer.json",
        args.model.display()
    );
    let tokenizer = args.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer)?;
    let device = args.device.open()?;
    let loaded = rice_lm::checkpoint::load(&args.model, args.precision.dtype(), &device)?;
    rice_lm::checkpoint::check_tokenizer(loaded.model.config(), &tok, &tokenizer)?;
    Ok((loaded, tok, template))
}

pub fn run(command: LmCommand) -> anyhow::Result<()> {
    match command {
        LmCommand::Generate(args) => {
            let (loaded, tok, template) = load(&args.model)?;
            let sampling = Sampling {
                temperature: args.temperature,
                top_k: args.top_k,
                top_p: args.top_p,
                max_new_tokens: args.max_new_tokens,
                seed: args.seed,
            };
            let ids = tok.encode(&template.prompt(&args.prompt))?;
            let out = generate(
                &loaded.model,
                &tok,
                &ids,
                &sampling,
                &[template.end()],
                &mut |_| false,
            )?;
            println!("{}", out.text.trim());
        }
        LmCommand::Serve(args) => {
            let template = Template::by_name(&args.model.template)
                .with_context(|| format!("unknown template `{}`", args.model.template))?;
            let device = args.model.device.open()?;
            let model = rice_aligner::local::LocalModel::load_on(
                &args.model.model,
                template,
                &device,
                args.model.precision.dtype(),
            )
            .map_err(anyhow::Error::msg)?;
            crate::aligner_cmd::serve(
                args.addr,
                std::sync::Arc::new(model),
                &format!("{}", args.model.model.display()),
            )?;
        }
        LmCommand::Score(args) => {
            let (loaded, tok, template) = load(&args.model)?;
            let encoded = Encoded::new(&tok, template, &args.prompt, &args.completion)?;
            let b = batch(
                std::slice::from_ref(&encoded),
                tok.pad_id,
                loaded.model.config().max_position_embeddings,
                loaded.model.backbone.device(),
            )?;
            let logits = loaded.model.forward(&b.ids, None)?;
            let lp: Vec<f32> = token_logprobs(&logits, &b.ids)?.squeeze(0)?.to_vec1()?;
            let start = encoded.prompt.len().saturating_sub(1);
            let tokens: Vec<(String, f32)> = encoded
                .response
                .iter()
                .zip(&lp[start..])
                .map(|(id, l)| (tok.decode(&[*id]).unwrap_or_default(), *l))
                .collect();
            let total: f32 = tokens.iter().map(|(_, l)| l).sum();
            if args.json {
                let ids: Vec<u32> = encoded
                    .prompt
                    .iter()
                    .chain(&encoded.response)
                    .copied()
                    .collect();
                let json = serde_json::json!({
                    "total_logprob": total,
                    // The whole sequence and where the completion starts, so that another implementation can
                    // recompute the same numbers (`torch_twin.py parity`).
                    "ids": ids,
                    "prompt_tokens": encoded.prompt.len(),
                    "tokens": tokens.iter().map(|(t, l)| serde_json::json!({ "token": t, "logprob": l })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                for (t, l) in &tokens {
                    println!("{l:>9.4}  {t:?}");
                }
                println!(
                    "total log-probability {total:.4} over {} tokens",
                    tokens.len()
                );
            }
        }
    }
    Ok(())
}
