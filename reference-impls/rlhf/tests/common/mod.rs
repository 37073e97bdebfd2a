//! The shared start of the toy-world stage tests: one SFT model per `cargo test` run.
//!
//! Test binaries run one after another under one `cargo` process, so the model is cached under Cargo's temporary
//! directory keyed by that process id: the first binary trains it (about three minutes on 2 cores), the others reuse
//! it, and the next `cargo test` run starts fresh — a cache can never outlive a code change. Within a binary, tests
//! wait on a `OnceLock` while the first one builds it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The shared start: the `toy-helpful` SFT model of the CLI presets — helpful, but still answering some hazard
/// requests, so that the later stages have something to fix — at the CLI's preset and step counts.
pub const PRESET: &str = "toy-s";
pub const PRETRAIN_STEPS: u64 = 500;
pub const SFT_STEPS: u64 = 300;

/// The SFT checkpoint every stage test starts from.
pub fn start() -> PathBuf {
    static START: OnceLock<PathBuf> = OnceLock::new();
    START
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let key = format!("toy-start-helpful-{PRESET}-{PRETRAIN_STEPS}-{SFT_STEPS}");
            let run = format!("{key}-{}", std::os::unix::process::parent_id());
            forget_old_runs(root, &key, &run);
            rice_rlhf::toy::sft_start(
                &root.join(run),
                PRESET,
                PRETRAIN_STEPS,
                SFT_STEPS,
                &rice_rlhf::sft::HELPFUL_FAMILIES,
            )
            .expect("the toy SFT start trains")
        })
        .clone()
}

/// The pre-trained (unaligned) toy-s model the SFT start was fine-tuned from: the upstream model of the Aligner tests.
pub fn base() -> PathBuf {
    let sft = start();
    sft.parent()
        .and_then(Path::parent)
        .expect("the start lives in DIR/sft/checkpoint")
        .join("pretrain")
        .join("checkpoint")
}

/// A `preset` model pre-trained for `steps` on the toy world (the CLI's pre-training preset otherwise), cached like
/// [`start`]: once per `cargo test` run, shared by the test binaries.
pub fn pretrained(preset: &str, steps: u64) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let key = format!("toy-base-{preset}-{steps}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = built.iter().find(|(k, _)| *k == key) {
        return dir.clone();
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let run = root.join(format!("{key}-{}", std::os::unix::process::parent_id()));
    forget_old_runs(root, &key, &run.file_name().unwrap().to_string_lossy());
    let checkpoint = run.join("checkpoint");
    if !checkpoint.join("config.json").is_file() {
        let tmp = run.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut cfg = rice_rlhf::pretrain::PretrainConfig::preset(preset).expect("a model preset");
        cfg.train.steps = steps;
        rice_rlhf::pretrain::run(&cfg, &tmp, false).expect("the toy base model trains");
        let _ = std::fs::remove_dir_all(&run);
        std::fs::rename(&tmp, &run).expect("the finished run moves into place");
    }
    built.push((key, checkpoint.clone()));
    checkpoint
}

/// Removes starts left by earlier `cargo test` runs (more than an hour old, so a concurrent run keeps its own).
fn forget_old_runs(root: &Path, key: &str, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if name.starts_with(key) && !name.starts_with(keep) && old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh directory for one test's run.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("rice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A tiny randomly initialised model (`model/`) with a tokenizer trained on the small toy world, in `dir`: for tests
/// of mechanics (resume, data files, errors) that need no trained model.
pub fn tiny_model(dir: &Path) -> PathBuf {
    use rice_toyworld::{Datasets, Size, World};
    let world = World::generate(rice_toyworld::DEFAULT_SEED, Size::Small);
    let data = Datasets::build(&world);
    let tokenizer = rice_toyworld::train_tokenizer(data.tokenizer_corpus(), 400).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let tok_path = dir.join("tokenizer.json");
    tokenizer.save(&tok_path, false).unwrap();
    let tok = rice_lm::text::Tokenizer::load(&tok_path).unwrap();
    let mut cfg = rice_lm::tiny_config(tok.vocab_size());
    cfg.max_position_embeddings = 256;
    cfg.eos_token_id = Some(tok.eos_id);
    let loaded =
        rice_lm::checkpoint::init(&cfg, candle_core::DType::F32, &candle_core::Device::Cpu, 7)
            .unwrap();
    let model = dir.join("model");
    rice_lm::checkpoint::save(&model, &cfg, &loaded.vars, Some(&tok_path)).unwrap();
    model
}
