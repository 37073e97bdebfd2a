//! `rice-aligner`: Aligner (Ji et al., "Aligner: Efficient Alignment by Learning to Correct", arXiv 2402.02416) —
//! a small model that reads a question and an upstream model's answer and writes a corrected answer.
//!
//! What it is for:
//! - [`template`]: the three prompt formats in use, as named, versioned constants with byte-exact tests;
//! - [`train`]: correction training on `{question, answer, correction}` (loss on the correction only), on the toy
//!   world or a data file, and the toy-world evaluation of upstream + aligner against the upstream alone;
//! - [`upstream`]: where answers come from — a local checkpoint or any OpenAI-compatible endpoint — and the
//!   composition (the upstream answers, the aligner corrects), including the weak-to-strong loop that turns
//!   corrections into preference pairs for DPO;
//! - [`openai`]: the chat-completions protocol, server and client; [`serve`]: the backends behind `rice lm serve`
//!   and `rice aligner serve`.
//!
//! What it is not for: sentence-by-sentence correction during generation, which is `rice-stream-aligner` (it builds
//! on this crate's upstreams and server).

pub mod aligner;
pub mod local;
pub mod openai;
pub mod serve;
pub mod template;
pub mod train;

pub use aligner::Aligner;

pub use template::AlignerFormat;
