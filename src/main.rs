//! `rice`: the RICE Atlas command line. Thin by design: it parses arguments, calls the library crates and prints.

mod aligner_cmd;
mod bench_cmd;
mod build_cmd;
mod catalog_cmd;
mod eval_cmd;
mod lm_cmd;
mod output;
mod run_cmd;
mod search_cmd;
mod serve_cmd;
mod toyworld_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RICE Atlas: learn, look up and run AI-alignment methods.
///
/// A catalog of AI alignment built on the survey "AI Alignment: A Comprehensive Survey" (the RICE principles:
/// Robustness, Interpretability, Controllability, Ethicality), with runnable reference implementations.
/// The catalog is built into this binary; `--catalog DIR` reads one from a directory instead.
#[derive(Debug, Parser)]
#[command(name = "rice", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Use the catalog in DIR (holding taxonomy.toml and entries/) instead of the one built into rice.
    #[arg(long, global = true, value_name = "DIR")]
    catalog: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the website and JSON API (default http://127.0.0.1:8080/).
    Serve(serve_cmd::ServeArgs),
    /// Check, browse and export the method catalog.
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCommand),
    /// Search the catalog: ranked results with highlights; typos and half-typed words are fine.
    Search(search_cmd::SearchArgs),
    /// Build the site: the course book (HTML) and the search index, into a directory.
    Build(build_cmd::BuildArgs),
    /// Run a reference implementation (pre-training, SFT, …); each writes a run directory.
    #[command(subcommand)]
    Run(run_cmd::RunCommand),
    /// Use a model directory: generate text, or score a completion.
    #[command(subcommand)]
    Lm(lm_cmd::LmCommand),
    /// Use a trained aligner: correct answers, serve the correcting OpenAI-compatible proxy, make DPO pairs.
    #[command(subcommand)]
    Aligner(aligner_cmd::AlignerCommand),
    /// Compare two models on the same prompts: the reward/cost arena, or a win rate with a confidence interval.
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// Benchmarks: training and generation throughput (CPU or GPU, against PyTorch with scripts/bench-train and
    /// scripts/gpu-check), CPU–GPU agreement, the aligners' latency.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Generate the toy world's datasets and tokenizer, or score responses with its exact oracle.
    #[command(subcommand)]
    Toyworld(toyworld_cmd::ToyworldCommand),
}

fn main() -> ExitCode {
    // candle asks for its thread count on every tensor operation and, unless RAYON_NUM_THREADS is set, recomputes it
    // from /proc/cpuinfo each time (about 8% of a CPU training step). Answer once, before any thread starts.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread exists yet, so nothing can read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    let cli = Cli::parse();
    let dir = cli.catalog.as_deref();
    let result = match cli.command {
        Command::Catalog(command) => catalog_cmd::run(command, dir),
        Command::Serve(args) => {
            catalog_cmd::load(dir).and_then(|catalog| serve_cmd::run(args, catalog))
        }
        Command::Search(args) => {
            catalog_cmd::load(dir).and_then(|catalog| search_cmd::run(args, &catalog))
        }
        Command::Build(args) => {
            catalog_cmd::load(dir).and_then(|catalog| build_cmd::run(args, &catalog))
        }
        Command::Toyworld(command) => toyworld_cmd::run(command),
        Command::Run(command) => run_cmd::run(command),
        Command::Lm(command) => lm_cmd::run(command),
        Command::Aligner(command) => aligner_cmd::run(command),
        Command::Eval(command) => eval_cmd::run(command),
        Command::Bench(command) => bench_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<catalog_cmd::Reported>() => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without repeating a cause that an error's own message
/// already shows (most of ours print their source: `path: No space left on device`).
fn message(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
    }
    message
}
