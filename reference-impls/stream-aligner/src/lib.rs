//! `rice-stream-aligner`: Stream Aligner — sentence-by-sentence correction during generation.
//!
//! What it is for:
//! - [`split`]: the sentence splitter (the reference's semantics, made robust, property-tested), which is also the
//!   stop predicate that ends each upstream round at its first sentence;
//! - [`stream`]: the input format, the corrector, the loop and the streaming proxy backend;
//! - [`train`]: training on `{question, prefix, last, correction}` and the toy-world evaluation.
//!
//! What it is not for: whole-answer correction, the upstreams and the chat-completions server, which are
//! `rice-aligner`'s.

pub mod bench;
pub mod split;
pub mod stream;
pub mod train;
