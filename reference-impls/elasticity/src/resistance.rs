//! The resistance probe (Ji et al., arXiv 2406.06144, §5.1): SFT the base model on aligned data in three successive
//! portions to get checkpoints θ1, θ2, θ3; then, for each pair k < l, compare
//! - *forward alignment*: fine-tune θk on θl's greedy answers (moving further from the base), with
//! - *inverse alignment*: fine-tune θl on θk's greedy answers (moving back toward the base),
//!
//! for the same steps from the same seed, on answers to the same fixed training prompts. The comparison is the mean
//! training loss over **all** steps of each fine-tune (the loss of every step is also kept). The paper's finding is
//! inverse < forward: a model returns to an earlier state more easily than it moves away from it.

use std::path::Path;

use rice_lm::checkpoint::write_atomic;
use rice_lm::rng::Rng;
use rice_lm::trainer::checkpoint_dir;
use serde::{Deserialize, Serialize};

use crate::{ElasticityConfig, RunError, Setup, fine_tune};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResistanceConfig {
    /// Aligned (ideal) examples in each of the three SFT portions; the portions are disjoint.
    pub stage_examples: usize,
    /// Optimizer steps of each SFT stage.
    pub stage_steps: u64,
    /// Training prompts whose greedy answers the forward and inverse fine-tunes train on.
    pub answer_prompts: usize,
    /// Optimizer steps of every forward and inverse fine-tune.
    pub tune_steps: u64,
}

impl ResistanceConfig {
    pub fn toy() -> ResistanceConfig {
        ResistanceConfig {
            stage_examples: 400,
            stage_steps: 30,
            answer_prompts: 64,
            tune_steps: 20,
        }
    }
}

/// One comparison: checkpoints θ`earlier` and θ`later`.
#[derive(Clone, Debug, Serialize)]
pub struct ResistancePair {
    pub earlier: usize,
    pub later: usize,
    /// Mean training loss of θearlier fine-tuned on θlater's answers.
    pub forward_loss: f64,
    /// Mean training loss of θlater fine-tuned on θearlier's answers.
    pub inverse_loss: f64,
    pub inverse_lower: bool,
    /// The first step's loss of each: how far apart the two start before any update.
    pub forward_first_loss: f64,
    pub inverse_first_loss: f64,
    pub forward_losses: Vec<f64>,
    pub inverse_losses: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResistanceReport {
    pub steps: u64,
    /// What `forward_loss` and `inverse_loss` average.
    pub loss: &'static str,
    pub pairs: Vec<ResistancePair>,
    /// Comparisons with inverse < forward, out of `pairs.len()`.
    pub inverse_lower: usize,
    /// Held-out hazard unsafe rate of θ1, θ2, θ3 (how far each stage aligned).
    pub stage_unsafe_rates: Vec<f64>,
}

pub fn run(
    cfg: &ElasticityConfig,
    setup: &Setup,
    run_dir: &Path,
) -> Result<ResistanceReport, RunError> {
    let rc = &cfg.resistance;
    let mut aligned: Vec<(String, String)> = setup
        .data
        .sft
        .iter()
        .map(|r| (r.row.prompt.clone(), r.row.completion.clone()))
        .collect();
    Rng::new(cfg.seed ^ 0x57a9e).shuffle(&mut aligned);
    if aligned.len() < 3 * rc.stage_examples || rc.answer_prompts == 0 {
        return Err(RunError::Usage(format!(
            "resistance: three portions of {} examples need {}, the world has {}",
            rc.stage_examples,
            3 * rc.stage_examples,
            aligned.len()
        )));
    }
    // The answer prompts: a fixed set of training prompts, drawn apart from the portions' order.
    let mut prompts: Vec<String> = aligned.iter().map(|(p, _)| p.clone()).collect();
    Rng::new(cfg.seed ^ 0xa5c).shuffle(&mut prompts);
    prompts.truncate(rc.answer_prompts);

    let dir = run_dir.join("resistance");
    let mut stages = vec![setup.base.clone()];
    let mut answers = vec![Vec::new()];
    let mut stage_unsafe_rates = Vec::new();
    for k in 1..=3 {
        let portion = &aligned[(k - 1) * rc.stage_examples..k * rc.stage_examples];
        let stage_dir = dir.join(format!("theta-{k}"));
        eprintln!("resistance: SFT stage {k} ({} steps) …", rc.stage_steps);
        let (loaded, _) = fine_tune(
            cfg,
            &stages[k - 1],
            setup.encode(portion)?,
            rc.stage_steps,
            "stage",
            &stage_dir,
        )?;
        let hazard = setup.greedy_answers(&loaded.model, &setup.hazard_eval, cfg.max_new_tokens)?;
        stage_unsafe_rates.push(setup.unsafe_rate(&setup.hazard_eval, &hazard));
        answers.push(setup.greedy_answers(&loaded.model, &prompts, cfg.max_new_tokens)?);
        stages.push(checkpoint_dir(&stage_dir));
    }

    let mut pairs = Vec::new();
    for (earlier, later) in [(1, 2), (2, 3), (1, 3)] {
        let on = |k: usize| -> Result<_, RunError> {
            let pairs: Vec<(String, String)> = prompts
                .iter()
                .cloned()
                .zip(answers[k].iter().cloned())
                .collect();
            setup.encode(&pairs)
        };
        let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64;
        let forward_dir = dir.join(format!("forward-{earlier}-to-{later}"));
        let inverse_dir = dir.join(format!("inverse-{later}-to-{earlier}"));
        let (_, forward) = fine_tune(
            cfg,
            &stages[earlier],
            on(later)?,
            rc.tune_steps,
            "resist",
            &forward_dir,
        )?;
        let (_, inverse) = fine_tune(
            cfg,
            &stages[later],
            on(earlier)?,
            rc.tune_steps,
            "resist",
            &inverse_dir,
        )?;
        for d in [&forward_dir, &inverse_dir] {
            let _ = std::fs::remove_dir_all(checkpoint_dir(d));
        }
        let pair = ResistancePair {
            earlier,
            later,
            forward_loss: mean(&forward),
            inverse_loss: mean(&inverse),
            inverse_lower: mean(&inverse) < mean(&forward),
            forward_first_loss: forward.first().copied().unwrap_or(f64::NAN),
            inverse_first_loss: inverse.first().copied().unwrap_or(f64::NAN),
            forward_losses: forward,
            inverse_losses: inverse,
        };
        eprintln!(
            "resistance: θ{earlier}→θ{later} forward {:.4}, θ{later}→θ{earlier} inverse {:.4}",
            pair.forward_loss, pair.inverse_loss
        );
        pairs.push(pair);
    }
    let report = ResistanceReport {
        steps: rc.tune_steps,
        loss: "mean training loss over all steps",
        inverse_lower: pairs.iter().filter(|p| p.inverse_lower).count(),
        pairs,
        stage_unsafe_rates,
    };
    let io = |e| RunError::Checkpoint(e);
    let json = serde_json::to_vec_pretty(&report).map_err(|e| RunError::Usage(e.to_string()))?;
    write_atomic(&run_dir.join("resistance.json"), &json).map_err(io)?;
    write_atomic(&run_dir.join("resistance.md"), table(&report).as_bytes()).map_err(io)?;
    Ok(report)
}

/// The comparisons as a Markdown table (what the CLI prints and `resistance.md` holds).
pub fn table(report: &ResistanceReport) -> String {
    let mut out = String::from(
        "| pair | forward loss (θk → θl) | inverse loss (θl → θk) | inverse < forward |\n|---|---|---|---|\n",
    );
    for p in &report.pairs {
        out += &format!(
            "| θ{}↔θ{} | {:.4} | {:.4} | {} |\n",
            p.earlier,
            p.later,
            p.forward_loss,
            p.inverse_loss,
            if p.inverse_lower { "yes" } else { "no" }
        );
    }
    out += &format!(
        "\n{} of {} comparisons have inverse < forward ({}, {} steps each).\n",
        report.inverse_lower,
        report.pairs.len(),
        report.loss,
        report.steps
    );
    out
}
