//! `rice eval …`: compare two models on the same prompts — the reward/cost arena and pairwise win rates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use rice_eval::answers::{file_pairs, read_prompts, toy_pairs};
use rice_eval::arena::{ArenaReport, arena_stats, score_pairs};
use rice_eval::judge::{Judge, LlmJudge, judge_pairs};
use rice_eval::report::{WinRateReport, write_arena, write_win_rate};
use rice_eval::{AnswerPair, ScoreJudge, WinRate};

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Safe-rlhf's reward/cost arena: red (baseline) and blue (candidate) answer the same prompts, every answer gets
    /// a reward and a cost (cost > 0 unsafe), and blue is counted better/worse × safe/unsafe against red.
    Arena(ArenaArgs),
    /// Pairwise win rate of a candidate over a baseline (ties count ½) with a bootstrap confidence interval, judged
    /// by the toy oracle, a reward model or an LLM over an OpenAI-compatible endpoint.
    Winrate(WinrateArgs),
}

/// Where the prompts come from and how the models answer.
#[derive(Debug, Args)]
pub struct PromptArgs {
    /// JSONL with a `prompt` (or `question`) per line, instead of the toy world's held-out prompts. There is no
    /// oracle for these: give a reward/cost model or an LLM judge.
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Chat template for a prompts file and for the score models: plain, llama2, llama3, chatml, gemma, pku.
    #[arg(long, default_value = "chatml")]
    pub template: String,
    /// Toy world: held-out prompts per family.
    #[arg(long, default_value_t = 12)]
    pub per_family: usize,
    /// Tokens each model may write per answer (greedy).
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
}

#[derive(Debug, Args)]
pub struct ArenaArgs {
    /// The baseline ("red"): a model directory.
    #[arg(long, value_name = "DIR")]
    pub red: PathBuf,
    /// The candidate ("blue"): a model directory.
    #[arg(long, value_name = "DIR")]
    pub blue: PathBuf,
    /// A reward model (from `rice run reward`); default: the toy oracle's helpfulness.
    #[arg(long, value_name = "DIR")]
    pub reward_model: Option<PathBuf>,
    /// A cost model (from `rice run cost`); default: the toy oracle's cost.
    #[arg(long, value_name = "DIR")]
    pub cost_model: Option<PathBuf>,
    #[command(flatten)]
    pub prompts: PromptArgs,
    /// Where to write arena.json, arena.md and arena.csv.
    #[arg(long, value_name = "DIR", default_value = "runs/eval-arena")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct WinrateArgs {
    /// The model whose win rate is measured: a model directory.
    #[arg(long, value_name = "DIR")]
    pub candidate: PathBuf,
    /// The model it is compared with: a model directory.
    #[arg(long, value_name = "DIR")]
    pub baseline: PathBuf,
    /// Who judges: oracle (toy world only), reward (needs --reward-model) or llm (needs --judge-url).
    #[arg(long, value_name = "JUDGE", value_parser = ["oracle", "reward", "llm"])]
    pub judge: String,
    /// The reward model for --judge reward.
    #[arg(long, value_name = "DIR")]
    pub reward_model: Option<PathBuf>,
    /// The LLM judge's OpenAI-compatible endpoint (http://host:port or …/v1).
    #[arg(long, value_name = "URL")]
    pub judge_url: Option<String>,
    /// The LLM judge's model name (default: the first the endpoint lists at /v1/models).
    #[arg(long, value_name = "NAME")]
    pub judge_model: Option<String>,
    /// Read the LLM judge's API key from this environment variable (sent as a bearer token).
    #[arg(long, value_name = "VAR")]
    pub judge_api_key_env: Option<String>,
    /// Seconds one LLM judge call may take.
    #[arg(long, default_value_t = 120.0)]
    pub judge_timeout: f64,
    /// The LLM judge's reply cache, JSONL (default: OUT/judge-cache.jsonl); a rerun asks only for new pairs.
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Bootstrap resamples for the confidence interval.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Coverage of the confidence interval.
    #[arg(long, default_value_t = 0.95)]
    pub level: f64,
    /// Seed of the bootstrap's resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub prompts: PromptArgs,
    /// Where to write winrate.json and winrate.md.
    #[arg(long, value_name = "DIR", default_value = "runs/eval-winrate")]
    pub out: PathBuf,
}

pub fn run(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Arena(args) => arena(args),
        EvalCommand::Winrate(args) => winrate(args),
    }
}

/// A model directory given with `flag`, checked before anything slow starts.
fn model_dir(flag: &str, dir: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        dir.join("config.json").is_file(),
        "{flag} {}: no model there (config.json is missing); pass a model directory such as a run's checkpoint/",
        dir.display()
    );
    Ok(())
}

fn score_model(
    flag: &str,
    dir: Option<&PathBuf>,
    p: &PromptArgs,
) -> anyhow::Result<Option<ScoreJudge>> {
    let Some(dir) = dir else { return Ok(None) };
    model_dir(flag, dir)?;
    let template = rice_rlhf::template(&p.template)?;
    Ok(Some(ScoreJudge::load(dir, template).with_context(
        || format!("{flag}: loading {}", dir.display()),
    )?))
}

/// Both models' answers: to the toy world's held-out prompts, or to a prompts file.
fn answer(baseline: &Path, candidate: &Path, p: &PromptArgs) -> anyhow::Result<Vec<AnswerPair>> {
    let pairs = match &p.prompts {
        None => {
            eprintln!(
                "answering {} held-out toy prompts per family with both models …",
                p.per_family
            );
            toy_pairs(baseline, candidate, p.per_family, p.max_new_tokens)?
        }
        Some(file) => {
            let prompts =
                read_prompts(file).with_context(|| format!("--prompts {}", file.display()))?;
            eprintln!("answering {} prompts with both models …", prompts.len());
            let template = rice_rlhf::template(&p.template)?;
            file_pairs(baseline, candidate, &prompts, template, p.max_new_tokens)?
        }
    };
    anyhow::ensure!(
        !pairs.is_empty(),
        "no prompts to evaluate: raise --per-family"
    );
    Ok(pairs)
}

fn arena(args: ArenaArgs) -> anyhow::Result<()> {
    model_dir("--red", &args.red)?;
    model_dir("--blue", &args.blue)?;
    if args.prompts.prompts.is_some() {
        anyhow::ensure!(
            args.reward_model.is_some() && args.cost_model.is_some(),
            "the arena on a prompts file needs --reward-model DIR and --cost-model DIR: only the toy world has \
             an oracle"
        );
    }
    let reward = score_model("--reward-model", args.reward_model.as_ref(), &args.prompts)?;
    let cost = score_model("--cost-model", args.cost_model.as_ref(), &args.prompts)?;
    let pairs = answer(&args.red, &args.blue, &args.prompts)?;
    let (rows, reward_source, cost_source) = score_pairs(&pairs, reward.as_ref(), cost.as_ref())?;
    let report = ArenaReport {
        red: args.red.display().to_string(),
        blue: args.blue.display().to_string(),
        reward_source,
        cost_source,
        stats: arena_stats(&rows),
    };
    print!("{}", report.table());
    write_arena(&args.out, &report, &rows)?;
    println!(
        "\nwritten: {}  (arena.json, arena.md, arena.csv with one row per prompt)",
        args.out.display()
    );
    Ok(())
}

fn winrate(args: WinrateArgs) -> anyhow::Result<()> {
    model_dir("--candidate", &args.candidate)?;
    model_dir("--baseline", &args.baseline)?;
    anyhow::ensure!(
        args.level > 0.0 && args.level < 1.0,
        "--level {} must lie strictly between 0 and 1 (e.g. 0.95)",
        args.level
    );
    let reward = match args.judge.as_str() {
        "reward" => {
            let dir = args.reward_model.as_ref().context(
                "--judge reward needs --reward-model DIR (a model from `rice run reward`)",
            )?;
            score_model("--reward-model", Some(dir), &args.prompts)?
        }
        "oracle" => {
            anyhow::ensure!(
                args.prompts.prompts.is_none(),
                "--judge oracle works only on the toy world's prompts; for --prompts use --judge reward or \
                 --judge llm"
            );
            None
        }
        _ => None,
    };
    let mut llm = if args.judge == "llm" {
        let url = args
            .judge_url
            .as_deref()
            .context("--judge llm needs --judge-url URL (an OpenAI-compatible endpoint)")?;
        let api_key = match &args.judge_api_key_env {
            Some(var) => Some(std::env::var(var).with_context(|| {
                format!("--judge-api-key-env {var}: the environment variable is not set")
            })?),
            None => None,
        };
        let cache = args
            .cache
            .clone()
            .unwrap_or_else(|| args.out.join("judge-cache.jsonl"));
        if let Some(parent) = cache.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        Some(
            LlmJudge::connect(
                url,
                args.judge_model.clone(),
                Duration::from_secs_f64(args.judge_timeout.max(0.001)),
                api_key,
                Some(&cache),
            )
            .with_context(|| format!("--judge-url {url}"))?,
        )
    } else {
        None
    };
    let pairs = answer(&args.baseline, &args.candidate, &args.prompts)?;
    let mut judge = match (&reward, llm.as_mut()) {
        (Some(model), _) => Judge::Reward(model),
        (None, Some(llm)) => Judge::Llm(llm),
        (None, None) => Judge::Oracle,
    };
    let judgments = judge_pairs(&pairs, &mut judge, &mut |done, total| {
        eprint!("\rjudged {done}/{total}");
        if done == total {
            eprintln!();
        }
    })?;
    let verdicts: Vec<_> = judgments.iter().map(|j| j.verdict).collect();
    let report = WinRateReport {
        candidate: args.candidate.display().to_string(),
        baseline: args.baseline.display().to_string(),
        judge: judge.name(),
        prompts: judgments.len(),
        win_rate: WinRate::new(&verdicts, args.resamples, args.level, args.seed),
        judgments,
    };
    print!("{}", report.table());
    if let Some(llm) = &llm {
        println!(
            "  LLM judge: {} calls, {} answered from the cache",
            llm.calls(),
            llm.cache_hits()
        );
    }
    write_win_rate(&args.out, &report)?;
    println!(
        "written: {}  (winrate.json, winrate.md)",
        args.out.display()
    );
    Ok(())
}
