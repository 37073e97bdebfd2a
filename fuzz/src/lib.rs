//! The bodies of RICE Atlas's fuzz targets, as plain functions of the input bytes (see [`targets`]).
//!
//! `fuzz_targets/*.rs` hand libFuzzer's inputs to these functions; `tests/fuzz_corpus.rs` in the main workspace
//! includes the same file and runs every seed and every regression input through them on stable Rust.

pub mod targets;
