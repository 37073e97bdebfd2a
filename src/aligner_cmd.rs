//! `rice aligner …`: use a trained aligner — correct one answer, serve the correcting proxy, or turn corrections
//! into preference pairs (Aligner's weak-to-strong loop) — and the chat-completions server both proxies share with
//! `rice lm serve`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rice_aligner::openai::{ChatBackend, ChatMessage, ChatRequest, ServerOptions};
use rice_aligner::serve::{AlignerBackend, upstream};
use rice_aligner::{Aligner, AlignerFormat};
use rice_stream_aligner::stream::{StreamAligner, StreamAlignerBackend, StreamSettings};

#[derive(Debug, Subcommand)]
pub enum AlignerCommand {
    /// Serve an OpenAI-compatible API that answers with the upstream model's answers corrected by the aligner.
    Serve(ServeArgs),
    /// Correct one answer: given with --answer, or written first by --upstream.
    Correct(CorrectArgs),
    /// Aligner's weak-to-strong loop: the upstream answers prompts, the aligner corrects, and every changed answer
    /// becomes a preference pair (correction chosen, original rejected) for `rice run dpo --data`.
    Pairs(PairsArgs),
}

/// Where answers come from and who corrects them.
#[derive(Debug, Args)]
pub struct Models {
    /// The aligner: a model directory trained by `rice run aligner` (or `rice run stream-aligner` with --stream).
    #[arg(long, value_name = "DIR")]
    pub aligner: PathBuf,
    /// Aligner's input format: v1.0, 2024-12 or align-anything.
    #[arg(long, default_value = "align-anything")]
    pub format: String,
    /// The aligner's chat template: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// The upstream's chat template, when it is a local model directory.
    #[arg(long, default_value = "chatml")]
    pub upstream_template: String,
    /// The model name to request from an upstream endpoint (default: the first it lists at /v1/models).
    #[arg(long, value_name = "NAME")]
    pub upstream_model: Option<String>,
    /// Seconds an upstream call may take before it fails (a 502 from the proxy).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Tokens the aligner may write per correction (per sentence with --stream).
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The upstream: an OpenAI-compatible endpoint (http://host:port or …/v1) or a local model directory. An
    /// endpoint is sent the key in OPENAI_API_KEY, if set, and never the clients' own headers (Authorization,
    /// cookies): only their requests' JSON.
    #[arg(long, value_name = "URL|DIR")]
    pub upstream: String,
    #[command(flatten)]
    pub models: Models,
    /// Stream Aligner: correct sentence by sentence while the upstream generates, sending each corrected sentence
    /// as soon as it is ready (the aligner must be a Stream Aligner model).
    #[arg(long)]
    pub stream: bool,
    /// Stream mode: the most sentences per answer.
    #[arg(long, default_value_t = rice_stream_aligner::stream::DEFAULT_MAX_ROUNDS)]
    pub max_rounds: usize,
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub addr: SocketAddr,
}

#[derive(Debug, Args)]
pub struct CorrectArgs {
    #[command(flatten)]
    pub models: Models,
    #[arg(long)]
    pub question: String,
    /// The answer to correct.
    #[arg(long, conflicts_with = "upstream")]
    pub answer: Option<String>,
    /// Have this model (URL or directory) answer first.
    #[arg(long, value_name = "URL|DIR", required_unless_present = "answer")]
    pub upstream: Option<String>,
}

#[derive(Debug, Args)]
pub struct PairsArgs {
    #[arg(long, value_name = "URL|DIR")]
    pub upstream: String,
    #[command(flatten)]
    pub models: Models,
    /// JSONL with a `prompt` (or `question`) per line.
    #[arg(long, value_name = "FILE")]
    pub prompts: PathBuf,
    /// Where to write `prompt`/`chosen`/`rejected` pairs (JSONL).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

impl Models {
    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout.max(0.001))
    }

    fn template(name: &str) -> anyhow::Result<rice_lm::text::Template> {
        Ok(rice_rlhf::template(name)?)
    }

    fn upstream(&self, spec: &str) -> anyhow::Result<Arc<dyn ChatBackend>> {
        upstream(
            spec,
            Self::template(&self.upstream_template)?,
            self.upstream_model.clone(),
            self.timeout(),
        )
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading the upstream {spec}"))
    }

    fn aligner(&self) -> anyhow::Result<Aligner> {
        let format = AlignerFormat::by_name(&self.format).map_err(anyhow::Error::msg)?;
        Aligner::load(
            &self.aligner,
            format,
            Self::template(&self.template)?,
            self.max_new_tokens,
        )
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading the aligner {}", self.aligner.display()))
    }
}

/// A question as the upstream receives it: one user message, greedy.
fn ask(question: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new("user", question)],
        temperature: Some(0.0),
        ..ChatRequest::default()
    }
}

pub fn run(command: AlignerCommand) -> anyhow::Result<()> {
    match command {
        AlignerCommand::Serve(args) => {
            let up = args.models.upstream(&args.upstream)?;
            let backend: Arc<dyn ChatBackend> = if args.stream {
                let aligner = StreamAligner::load(
                    &args.models.aligner,
                    Models::template(&args.models.template)?,
                    args.models.max_new_tokens,
                )
                .map_err(anyhow::Error::msg)?;
                Arc::new(StreamAlignerBackend {
                    upstream: up,
                    aligner,
                    settings: StreamSettings {
                        max_rounds: args.max_rounds,
                        ..StreamSettings::default()
                    },
                })
            } else {
                Arc::new(AlignerBackend {
                    upstream: up,
                    aligner: args.models.aligner()?,
                })
            };
            let what = if args.stream {
                "Stream Aligner proxy"
            } else {
                "Aligner proxy"
            };
            serve(args.addr, backend, &format!("{what} for {}", args.upstream))
        }
        AlignerCommand::Correct(args) => {
            let aligner = args.models.aligner()?;
            let answer = match (&args.answer, &args.upstream) {
                (Some(a), _) => a.clone(),
                (None, Some(spec)) => {
                    let up = args.models.upstream(spec)?;
                    let done = up.complete(&ask(&args.question), &mut |_| true)?;
                    println!("upstream: {}", done.text.trim());
                    done.text
                }
                (None, None) => unreachable!("clap requires --answer or --upstream"),
            };
            print!("corrected: ");
            let out = aligner.correct(&args.question, &answer, &mut |piece| {
                print!("{piece}");
                std::io::stdout().flush().is_ok()
            })?;
            println!();
            anyhow::ensure!(
                !out.text.is_empty(),
                "the aligner wrote nothing: is {} an aligner trained with the `{}` format?",
                args.models.aligner.display(),
                args.models.format
            );
            Ok(())
        }
        AlignerCommand::Pairs(args) => {
            #[derive(serde::Deserialize)]
            struct Prompt {
                #[serde(alias = "question")]
                prompt: String,
            }
            let prompts: Vec<Prompt> = rice_lm::text::read_jsonl(&args.prompts)?;
            let up = args.models.upstream(&args.upstream)?;
            let aligner = args.models.aligner()?;
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&args.out)
                    .with_context(|| format!("creating {}", args.out.display()))?,
            );
            let (mut written, total) = (0, prompts.len());
            for (i, p) in prompts.iter().enumerate() {
                let answer = up.complete(&ask(&p.prompt), &mut |_| true)?.text;
                let correction = aligner.correct(&p.prompt, &answer, &mut |_| true)?.text;
                if !correction.is_empty() && correction.trim() != answer.trim() {
                    let pair = serde_json::json!({
                        "prompt": p.prompt,
                        "chosen": correction,
                        "rejected": answer.trim(),
                    });
                    writeln!(out, "{pair}")?;
                    written += 1;
                }
                eprint!("\r{}/{total} prompts, {written} pairs", i + 1);
            }
            out.flush()?;
            eprintln!();
            println!(
                "{written} preference pairs from {total} prompts in {} (train the upstream on them with \
                 `rice run dpo --model UPSTREAM_DIR --data {}`)",
                args.out.display(),
                args.out.display()
            );
            Ok(())
        }
    }
}

/// Serves `backend` over the OpenAI chat-completions API until Ctrl-C.
pub fn serve(addr: SocketAddr, backend: Arc<dyn ChatBackend>, what: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}: is another server using that port?"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        println!(
            "{what}: model `{}` at http://{local}/v1 (POST /v1/chat/completions, GET /v1/models). Press Ctrl-C to stop.",
            backend.model_id()
        );
        rice_aligner::openai::serve(listener, backend, ServerOptions::default())
            .await
            .context("serving")?;
        println!("stopped.");
        Ok(())
    })
}

#[derive(Debug, Args)]
pub struct BenchAlignersArgs {
    /// The upstream model directory.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "runs/pretrain-toy-s/checkpoint"
    )]
    pub upstream: PathBuf,
    /// An Aligner trained by `rice run aligner`.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "runs/aligner-toy/checkpoint"
    )]
    pub aligner: PathBuf,
    /// A Stream Aligner trained by `rice run stream-aligner`.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "runs/stream-aligner-toy/checkpoint"
    )]
    pub stream_aligner: PathBuf,
    /// Held-out toy prompts per family.
    #[arg(long, default_value_t = 12)]
    pub prompts_per_family: usize,
    /// Tokens the upstream may write for a whole answer, and the aligners per correction.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Timings per prompt; the fastest counts.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

pub fn bench(args: BenchAlignersArgs) -> anyhow::Result<()> {
    let chatml = rice_lm::text::Template::ChatMl;
    let need = |dir: &PathBuf, make: &str| -> anyhow::Result<()> {
        anyhow::ensure!(
            dir.join("config.json").is_file(),
            "no model at {}: run `{make}` first, or pass the directory",
            dir.display()
        );
        Ok(())
    };
    need(&args.upstream, "rice run pretrain --preset toy-s")?;
    need(&args.aligner, "rice run aligner --preset toy")?;
    need(&args.stream_aligner, "rice run stream-aligner --preset toy")?;
    let upstream = rice_aligner::local::LocalModel::load(&args.upstream, chatml)
        .map_err(anyhow::Error::msg)?;
    let aligner = Aligner::load(
        &args.aligner,
        rice_aligner::template::ALIGN_ANYTHING,
        chatml,
        args.max_tokens,
    )
    .map_err(anyhow::Error::msg)?;
    let stream_aligner = StreamAligner::load(&args.stream_aligner, chatml, args.max_tokens)
        .map_err(anyhow::Error::msg)?;
    let (_, data) = rice_rlhf::toy::load_world(rice_toyworld::DEFAULT_SEED, "medium")?;
    let mut prompts = Vec::new();
    for family in rice_toyworld::Family::ALL {
        prompts.extend(
            data.eval
                .iter()
                .filter(|r| r.family == Some(family))
                .take(args.prompts_per_family)
                .map(|r| r.row.prompt.clone()),
        );
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_default();
    eprintln!(
        "timing {} prompts × {} repeats on {threads} threads …",
        prompts.len(),
        args.repeats
    );
    let report = rice_stream_aligner::bench::latency(
        &upstream,
        &aligner,
        &stream_aligner,
        &StreamSettings {
            sentence_max_tokens: args.max_tokens,
            ..StreamSettings::default()
        },
        &prompts,
        args.max_tokens,
        args.repeats,
    )?;
    println!("seconds per prompt (median / mean / p90):");
    for (label, s) in [
        ("upstream answer alone", &report.upstream_answer),
        (
            "Aligner: first corrected token",
            &report.aligner_first_token,
        ),
        ("Aligner: corrected answer", &report.aligner_answer),
        (
            "Stream Aligner: first corrected sentence",
            &report.stream_first_sentence,
        ),
        ("Stream Aligner: corrected answer", &report.stream_answer),
    ] {
        println!(
            "  {label:<42} {:.4} / {:.4} / {:.4}",
            s.median, s.mean, s.p90
        );
    }
    println!(
        "first corrected sentence ÷ Aligner's corrected answer (medians): {:.3}",
        report.first_sentence_over_aligner_answer
    );
    println!(
        "Stream Aligner's whole answer ÷ Aligner's corrected answer (medians): {:.3}",
        report.stream_answer_over_aligner_answer
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
