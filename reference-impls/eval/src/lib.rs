//! `rice-eval`: one honest way to evaluate every method — the reward/cost arena and pairwise win rates.
//!
//! Two models answer the same prompts: a baseline (the arena's "red") and a candidate ("blue"), or a model and its
//! corrected version. Then:
//!
//! - [`arena`] scores every answer with a reward and a cost (the toy world's exact oracle, or reward and cost
//!   models) and counts how often the candidate is better and safe, better but unsafe, and so on, after safe-rlhf's
//!   `evaluate/arena.py`. Cost follows Safe RLHF's sign: cost > 0 is unsafe, cost ≤ 0 safe.
//! - [`winrate`] turns one pairwise verdict per prompt into a win rate (ties count ½) with a percentile-bootstrap
//!   confidence interval. Verdicts come from the oracle's preference order, a reward model, or an LLM judge over
//!   any OpenAI-compatible endpoint ([`judge`]), which sees the answers in a hashed random order and whose verdicts
//!   are cached.
//! - [`report`] writes what both found as a terminal table, JSON, Markdown and CSV.
//!
//! [`answers`] makes the answers (greedy, on the toy world's held-out prompts or a JSONL prompts file) and
//! [`score`] runs a reward or cost model over them. What this crate is not for: training (see `rice-rlhf`,
//! `rice-dpo`, `rice-aligner`), or benchmarks with reference answers (accuracy on a test set).

pub mod answers;
pub mod arena;
pub mod judge;
pub mod report;
pub mod score;
pub mod winrate;

use std::path::PathBuf;

pub use answers::AnswerPair;
pub use arena::{ArenaReport, ArenaRow, ArenaStats, arena_stats};
pub use judge::{Judge, Judgment, Label, LlmJudge, judge_pairs, parse_verdict};
pub use report::WinRateReport;
pub use score::ScoreJudge;
pub use winrate::{Interval, Verdict, WinRate, bootstrap_interval};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation cannot run as asked (a missing judge, an unknown template, no prompts).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Run(#[from] rice_rlhf::RunError),
    #[error(transparent)]
    Checkpoint(#[from] rice_lm::CheckpointError),
    #[error(transparent)]
    Text(#[from] rice_lm::text::TextError),
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    /// The LLM judge's endpoint failed.
    #[error("the LLM judge: {0}")]
    Judge(#[from] rice_aligner::openai::ClientError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not a judge cache record: {message}", path.display())]
    Cache {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("writing {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

impl EvalError {
    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
        move |source| EvalError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
