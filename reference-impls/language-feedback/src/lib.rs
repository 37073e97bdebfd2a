//! `rice-llf`: learning from language feedback, Align-Anything's method (Ji et al., arXiv 2412.15838) in the text
//! modality.
//!
//! What it is for: aligning a policy with *critiques* ("sentence 2 leaks the recipe; refuse and suggest a bird
//! feeder") instead of bare "A is better than B" labels. The pipeline, one function per stage ([`stages`]):
//! 1. a feedback model learns to write critiques of (prompt, response), and to rewrite a response by its critique,
//!    from annotated `{prompt, response, critique, refinement}` examples;
//! 2. it critiques the policy's own responses to unlabelled prompts;
//! 3. it rewrites each response by its critique;
//! 4. refined ≻ original become preference pairs;
//! 5. DPO (`rice-dpo`) trains the policy on them.
//!
//! On the toy world the oracle is the annotator ([`rice_toyworld::World::critique`]), and [`run`] also trains the
//! comparison the paper makes: DPO on binary preference labels at the same annotation budget.
//!
//! What it is not for: the DPO loss and trainer (`rice-dpo`), supervised training (`rice-rlhf`), the model
//! (`rice-lm`).

pub mod stages;

use std::path::{Path, PathBuf};
use std::time::Instant;

use rice_dpo::dpo::DpoConfig;
use rice_dpo::loss::LossKind;
use rice_lm::checkpoint;
use rice_lm::rng::Rng;
use rice_lm::run::RunDir;
use rice_lm::text::{PreferencePair, Tokenizer, read_jsonl};
use rice_lm::trainer::{TrainConfig, TrainError, checkpoint_dir};
pub use rice_rlhf::RunError;
use rice_rlhf::toy::{Comparison, answers_if, load_world};
use rice_toyworld::LlfExample;
use serde::{Deserialize, Serialize};

use crate::stages::Generator;

/// Every setting of a run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlfConfig {
    /// The policy's start (an SFT checkpoint); also DPO's reference.
    pub model: PathBuf,
    /// Annotated examples, JSONL `{prompt, response, critique, refinement}`. Empty: the toy world's oracle annotates
    /// the policy's own responses to `budget` training prompts.
    pub data: Option<PathBuf>,
    /// Unlabelled prompts, JSONL with a `prompt` field. Empty: toy training prompts the annotations did not use.
    pub prompts: Option<PathBuf>,
    /// Chat template of the policy and the feedback model: plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    pub world_seed: u64,
    pub world_size: String,
    /// Annotated examples (toy): critiques for LLF, and as many binary labels for the baseline.
    pub budget: usize,
    /// Unlabelled prompts the feedback model critiques (0: all that are left).
    pub unlabelled_prompts: usize,
    /// Run the binary-preference baseline at the same budget (toy only).
    pub baseline: bool,
    pub max_new_tokens: usize,
    /// Feedback model training: batch size, max tokens per example, optimizer.
    pub feedback_batch_size: usize,
    pub feedback_max_len: usize,
    pub feedback_train: TrainConfig,
    /// The DPO stage of both methods (the same steps and settings for each).
    pub dpo_beta: f64,
    pub dpo_train: TrainConfig,
    pub eval_prompts_per_family: usize,
    pub seed: u64,
}

impl LlfConfig {
    /// The `toy` preset: from the helpful-only toy SFT model, a budget of 256 annotations, 1,024 unlabelled prompts.
    pub fn toy(model: PathBuf) -> LlfConfig {
        let dpo = DpoConfig::toy(model.clone(), LossKind::Sigmoid);
        LlfConfig {
            model,
            data: None,
            prompts: None,
            template: "chatml".into(),
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            budget: 256,
            unlabelled_prompts: 1024,
            baseline: true,
            max_new_tokens: 64,
            feedback_batch_size: 16,
            feedback_max_len: 256,
            feedback_train: TrainConfig {
                steps: 300,
                lr: 1e-3,
                warmup_steps: 20,
                log_every: 10,
                eval_every: 100,
                ..TrainConfig::default()
            },
            dpo_beta: dpo.loss.beta,
            dpo_train: dpo.train,
            eval_prompts_per_family: 24,
            seed: 0,
        }
    }
}

/// How the feedback model's rewrites score against the responses they rewrite (toy only).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RefinementQuality {
    pub rewritten: usize,
    pub helpfulness_original: f64,
    pub helpfulness_refined: f64,
    pub unsafe_rate_original: f64,
    pub unsafe_rate_refined: f64,
    /// Pairs whose refined side the oracle prefers, ties and the reverse.
    pub refined_better: usize,
    pub ties: usize,
    pub refined_worse: usize,
}

/// One aligned policy: its pairs and how it compares with the start on held-out prompts.
#[derive(Debug, Serialize)]
pub struct MethodResult {
    pub pairs: usize,
    /// Annotations spent.
    pub budget: usize,
    pub checkpoint: PathBuf,
    pub toy: Option<Comparison>,
}

#[derive(Debug, Serialize)]
pub struct LlfSummary {
    pub method: &'static str,
    pub annotations: usize,
    pub unlabelled_prompts: usize,
    pub refinement: Option<RefinementQuality>,
    pub llf: MethodResult,
    pub binary: Option<MethodResult>,
    /// Which method did better on held-out prompts, in words (toy only).
    pub verdict: Option<String>,
    pub seconds: f64,
}

#[derive(Deserialize)]
struct PromptRow {
    prompt: String,
}

/// `run_dir/name` when resuming and it is there, else `make()` written there: every stage's output is its own
/// checkpoint, so a run killed in a later stage picks up where it stopped.
fn cached<T: Serialize + for<'de> Deserialize<'de>>(
    dir: &RunDir,
    run_dir: &Path,
    name: &str,
    resume: bool,
    make: impl FnOnce() -> Result<Vec<T>, RunError>,
) -> Result<Vec<T>, RunError> {
    let path = run_dir.join(name);
    if resume && path.is_file() {
        eprintln!("llf: reusing {}", path.display());
        return Ok(read_jsonl(&path)?);
    }
    let rows = make()?;
    dir.write_jsonl(name, &rows)?;
    Ok(rows)
}

#[derive(Serialize, Deserialize)]
struct Samples {
    prompt: String,
    responses: Vec<String>,
}

/// Runs the pipeline (and on the toy world the binary baseline) into `run_dir`. With `resume`, the stages whose
/// output is already in `run_dir` are not run again and the trainings continue from their checkpoints.
pub fn run(cfg: &LlfConfig, run_dir: &Path, resume: bool) -> Result<LlfSummary, RunError> {
    let started = Instant::now();
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let template = rice_rlhf::template(&cfg.template)?;
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let device = cfg.feedback_train.open_device().map_err(TrainError::from)?;
    let frozen = cfg.feedback_train.precision.dtype();
    let policy = checkpoint::load(&cfg.model, frozen, &device)?.model;
    let toy_needed = cfg.data.is_none() || cfg.prompts.is_none();
    let toy = toy_needed
        .then(|| load_world(cfg.world_seed, &cfg.world_size))
        .transpose()?;
    let generator = Generator {
        tok: &tok,
        template,
        max_new_tokens: cfg.max_new_tokens,
    };

    // Training prompts, shuffled once: the first `budget` are annotated, the next ones are unlabelled.
    let mut train_prompts: Vec<String> = match &toy {
        Some((_, data)) => data.sft.iter().map(|r| r.row.prompt.clone()).collect(),
        None => Vec::new(),
    };
    Rng::new(cfg.seed ^ 0x11f).shuffle(&mut train_prompts);
    let annotated_prompts: Vec<String> = train_prompts.iter().take(cfg.budget).cloned().collect();

    // Stage 0: annotations — from the file, or the oracle's critiques of the policy's own samples.
    let samples = cached(&dir, run_dir, "samples.jsonl", resume, || {
        eprintln!("llf: sampling the policy's responses …");
        let two = generator.sample(&policy, &annotated_prompts, 2, cfg.seed)?;
        Ok(annotated_prompts
            .iter()
            .zip(two)
            .map(|(prompt, responses)| Samples {
                prompt: prompt.clone(),
                responses,
            })
            .collect())
    })?;
    let two_samples: Vec<Vec<String>> = samples.into_iter().map(|s| s.responses).collect();
    let annotations: Vec<LlfExample> = match (&cfg.data, &toy) {
        (Some(path), _) => read_jsonl(path)?,
        (None, Some((world, _))) => stages::annotate(world, &annotated_prompts, &two_samples),
        (None, None) => unreachable!("the toy world is loaded when no data file is given"),
    };
    if annotations.len() < 2 {
        return Err(RunError::Usage(format!(
            "learning from language feedback needs at least 2 annotated examples, got {}",
            annotations.len()
        )));
    }
    dir.write_jsonl("annotations.jsonl", &annotations)?;

    // Stage 1: the feedback model, fine-tuned from the policy's start on both tasks.
    eprintln!(
        "llf: training the feedback model on {} annotations …",
        annotations.len()
    );
    let feedback_dir = run_dir.join("feedback");
    stages::train_feedback(cfg, &tok, template, &annotations, &feedback_dir, resume)?;
    let feedback = checkpoint::load(&checkpoint_dir(&feedback_dir), frozen, &device)?.model;

    // Stages 2–4: critique and rewrite the policy's responses to unlabelled prompts; pairs.
    let unlabelled: Vec<String> = match &cfg.prompts {
        Some(path) => read_jsonl::<PromptRow>(path)?
            .into_iter()
            .map(|r| r.prompt)
            .collect(),
        None => {
            let rest = train_prompts.iter().skip(cfg.budget);
            match cfg.unlabelled_prompts {
                0 => rest.cloned().collect(),
                n => rest.take(n).cloned().collect(),
            }
        }
    };
    eprintln!(
        "llf: critiquing and rewriting the policy's responses to {} unlabelled prompts …",
        unlabelled.len()
    );
    let rows: Vec<LlfExample> = cached(&dir, run_dir, "refinements.jsonl", resume, || {
        let responses: Vec<String> = generator
            .sample(&policy, &unlabelled, 1, cfg.seed ^ 0x5eed)?
            .into_iter()
            .map(|mut v| v.remove(0))
            .collect();
        let critiques = generator.critique(&feedback, &unlabelled, &responses)?;
        let refinements = generator.refine(&feedback, &unlabelled, &responses, &critiques)?;
        Ok((0..unlabelled.len())
            .map(|i| LlfExample {
                prompt: unlabelled[i].clone(),
                response: responses[i].clone(),
                critique: critiques[i].clone(),
                refinement: refinements[i].clone(),
            })
            .collect())
    })?;
    let llf_pairs = stages::pairs(&rows);
    dir.write_jsonl("pairs-llf.jsonl", &llf_pairs)?;
    let refinement = toy
        .as_ref()
        .map(|(world, _)| stages::refinement_quality(world, &rows));
    if let Some(q) = &refinement {
        eprintln!(
            "llf: {} pairs; refined vs original helpfulness {:.3} vs {:.3}, unsafe rate {:.3} vs {:.3}",
            llf_pairs.len(),
            q.helpfulness_refined,
            q.helpfulness_original,
            q.unsafe_rate_refined,
            q.unsafe_rate_original
        );
    }

    // Stage 5: DPO on the pairs; and the baseline on binary labels at the same budget.
    let eval_answers = |model: &rice_lm::CausalLm| {
        answers_if(
            toy.as_ref(),
            model,
            &tok,
            cfg.eval_prompts_per_family,
            cfg.max_new_tokens,
        )
    };
    let start_answers = eval_answers(&policy)?;
    let train_dpo =
        |name: &str, pairs_file: &Path, count: usize| -> Result<MethodResult, RunError> {
            eprintln!("llf: DPO on {count} {name} pairs …");
            let mut dpo = DpoConfig::toy(cfg.model.clone(), LossKind::Sigmoid);
            dpo.data = Some(pairs_file.to_owned());
            dpo.template = cfg.template.clone();
            dpo.loss.beta = cfg.dpo_beta;
            dpo.train = cfg.dpo_train.clone();
            dpo.train.seed = cfg.seed;
            let out = run_dir.join(format!("dpo-{name}"));
            rice_dpo::dpo::run(&dpo, &out, resume)?;
            let trained = checkpoint::load(&checkpoint_dir(&out), frozen, &device)?.model;
            let toy = match (&start_answers, eval_answers(&trained)?) {
                (Some(before), Some(after)) => Some(Comparison::new(before, &after)),
                _ => None,
            };
            Ok(MethodResult {
                pairs: count,
                budget: annotations.len(),
                checkpoint: checkpoint_dir(&out),
                toy,
            })
        };
    let llf = train_dpo("llf", &run_dir.join("pairs-llf.jsonl"), llf_pairs.len())?;
    let binary = match (&toy, cfg.baseline && cfg.data.is_none()) {
        (Some((world, _)), true) => {
            let pairs: Vec<PreferencePair> =
                stages::binary_pairs(world, &annotated_prompts, &two_samples);
            dir.write_jsonl("pairs-binary.jsonl", &pairs)?;
            Some(train_dpo(
                "binary",
                &run_dir.join("pairs-binary.jsonl"),
                pairs.len(),
            )?)
        }
        _ => None,
    };
    let verdict = match (&llf.toy, binary.as_ref().and_then(|b| b.toy.as_ref())) {
        (Some(l), Some(b)) => Some(stages::verdict(l, b)),
        _ => None,
    };
    if let (Some(l), Some(b)) = (&llf.toy, binary.as_ref().and_then(|b| b.toy.as_ref())) {
        dir.write_plot("llf_vs_binary", &stages::bar_chart(l, b))?;
    }
    let summary = LlfSummary {
        method: "llf",
        annotations: annotations.len(),
        unlabelled_prompts: unlabelled.len(),
        refinement,
        llf,
        binary,
        verdict,
        seconds: started.elapsed().as_secs_f64(),
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}
