//! `rice-rlhf`: the RLHF pipeline as reference implementations, run on the toy world or on real data.
//!
//! What it is for: the stages of InstructGPT-style alignment, each readable top to bottom like a paper's algorithm
//! box — a config with its defaults, the loss as a small function, the loop (from `rice-lm`), and a `run`:
//! - [`pretrain`]: the toy world's unaligned base model (stage 0; real runs start from a downloaded checkpoint);
//! - [`sft`]: supervised fine-tuning on demonstrations (stage 1).
//!
//! Reward and cost models, PPO and Safe RLHF (stages 2–3) come next. What it is not for: the model, trainer or data
//! machinery, which live in `rice-lm` and are shared by every method.

pub mod loss;
pub mod ppo;
pub mod presets;
pub mod pretrain;
pub mod reward;
pub mod sft;
pub mod toy;

/// Why a run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Train(#[from] rice_lm::trainer::TrainError),
    #[error(transparent)]
    Checkpoint(#[from] rice_lm::CheckpointError),
    #[error(transparent)]
    Text(#[from] rice_lm::text::TextError),
    #[error(transparent)]
    Run(#[from] rice_lm::run::RunError),
    #[error(transparent)]
    Toyworld(#[from] rice_toyworld::ToyworldError),
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

/// The chat template called `name`, or an error listing the known ones.
pub fn template(name: &str) -> Result<rice_lm::text::Template, RunError> {
    use rice_lm::text::Template;
    Template::by_name(name).ok_or_else(|| {
        let names: Vec<&str> = Template::ALL.iter().map(|(n, _)| *n).collect();
        RunError::Usage(format!(
            "unknown template `{name}`; use one of {}",
            names.join(", ")
        ))
    })
}
