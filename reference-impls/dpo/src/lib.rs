//! `rice-dpo`: direct preference optimisation and its variants, run on the toy world or on real data.
//!
//! What it is for: learning from pairwise preferences without a reward model or reinforcement learning. The policy
//! is trained directly on `prompt/chosen/rejected` pairs against a frozen reference model:
//! - [`loss`]: the losses — DPO, IPO, cDPO, SLiC's hinge and SimPO — each a small pure function with its formula;
//! - [`dpo`]: the run — cached reference log-probabilities, the training task, the toy-world evaluation and win rate.
//!
//! What it is not for: the model, trainer and data machinery (in `rice-lm`), or reward-model RLHF (`rice-rlhf`).

pub mod dpo;
pub mod loss;
