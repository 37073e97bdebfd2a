//! The scaling probe (Ji et al., arXiv 2406.06144, §5.3): the rebound of bases that differ in size or in how long
//! they were pre-trained. Each base is pre-trained on the toy world's corpus, aligned on the same positive
//! examples for the same steps, and perturbed on the same negative stream as in [`crate::rebound`]. The paper
//! finds the rebound faster for larger models and for models pre-trained on more tokens.

use std::path::Path;

use rice_lm::checkpoint::write_atomic;
use serde::{Deserialize, Serialize};

use crate::rebound::{self, Pools, ReboundCurve};
use crate::{ElasticityConfig, RunError, Setup, base_model};

/// One base model: a model preset pre-trained for some steps.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseSpec {
    /// `toy-xs`, `toy-s` or `toy-m`.
    pub preset: String,
    pub pretrain_steps: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingConfig {
    pub bases: Vec<BaseSpec>,
    /// Positive examples every base is aligned on (one of the rebound grid's sizes is a good choice).
    pub positive: usize,
}

impl ScalingConfig {
    /// The data axis: toy-xs pre-trained for 300 and 1,000 steps of 16 documents; the size axis: toy-xs, toy-s
    /// and toy-m (152k, 846k and 4.5M parameters) at 300 steps. About 10 minutes on 2 cores, most of it toy-m.
    pub fn toy() -> ScalingConfig {
        let base = |preset: &str, pretrain_steps| BaseSpec {
            preset: preset.into(),
            pretrain_steps,
        };
        ScalingConfig {
            bases: vec![
                base("toy-xs", 300),
                base("toy-xs", 1000),
                base("toy-s", 300),
                base("toy-m", 300),
            ],
            positive: 200,
        }
    }
}

/// One base's rebound.
#[derive(Clone, Debug, Serialize)]
pub struct ScalingRow {
    pub preset: String,
    pub pretrain_steps: u64,
    pub parameters: usize,
    pub base_unsafe_rate: f64,
    pub curve: ReboundCurve,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScalingReport {
    pub positive: usize,
    pub rows: Vec<ScalingRow>,
}

pub fn run(cfg: &ElasticityConfig, run_dir: &Path) -> Result<ScalingReport, RunError> {
    let sc = &cfg.scaling;
    cfg.rebound.validate()?;
    if sc.bases.is_empty() {
        return Err(RunError::Usage("scaling: `bases` is empty".into()));
    }
    let mut rows = Vec::new();
    for spec in &sc.bases {
        let name = format!("{}-{}", spec.preset, spec.pretrain_steps);
        let dir = run_dir.join("scaling").join(&name);
        let base = base_model(cfg, &spec.preset, spec.pretrain_steps, &dir.join("base"))?;
        let setup = Setup::new(cfg, base)?;
        let pools = Pools::new(cfg, &setup)?;
        if sc.positive == 0 || sc.positive > pools.refusals.len().min(pools.others.len()) {
            return Err(RunError::Usage(format!(
                "scaling: `positive` must be in 1..={}, got {}",
                pools.refusals.len().min(pools.others.len()),
                sc.positive
            )));
        }
        let parameters = rice_rlhf::presets::parameters(setup.base_model.config());
        let label = format!(
            "{} ({} pre-training steps)",
            spec.preset, spec.pretrain_steps
        );
        eprintln!(
            "scaling: {label}: base unsafe rate {:.3}",
            setup.base_point.unsafe_rate
        );
        let curve = rebound::curve(cfg, &setup, &pools, sc.positive, label, &dir)?;
        rows.push(ScalingRow {
            preset: spec.preset.clone(),
            pretrain_steps: spec.pretrain_steps,
            parameters,
            base_unsafe_rate: setup.base_point.unsafe_rate,
            curve,
        });
    }
    let curves: Vec<ReboundCurve> = rows.iter().map(|r| r.curve.clone()).collect();
    rebound::plot(
        run_dir,
        "scaling",
        &format!("Rebound by base (N_pos = {})", sc.positive),
        &curves,
        None,
        cfg.rebound.kl_epsilon,
    )?;
    let report = ScalingReport {
        positive: sc.positive,
        rows,
    };
    write_atomic(&run_dir.join("scaling.md"), table(&report).as_bytes())
        .map_err(RunError::Checkpoint)?;
    Ok(report)
}

/// One row per base: size, pre-training, and how fast its aligned model rebounds.
pub fn table(report: &ScalingReport) -> String {
    let mut out = String::from(
        "| base | parameters | base unsafe rate | aligned: unsafe rate | aligned: KL to base | examples to half-way \
         (unsafe rate) | examples to half the KL | at the base's unsafe rate after |\n|---|---|---|---|---|---|---|---|\n",
    );
    let x = |v: Option<f64>| v.map_or("not reached".to_owned(), |x| format!("{x:.1}"));
    for r in &report.rows {
        let aligned = &r.curve.points[0].measure;
        out += &format!(
            "| {} @ {} steps | {} | {:.3} | {:.3} | {:.3} | {} | {} | {} |\n",
            r.preset,
            r.pretrain_steps,
            r.parameters,
            r.base_unsafe_rate,
            aligned.unsafe_rate,
            aligned.kl_to_base,
            x(r.curve.examples_to_half_unsafe),
            x(r.curve.examples_to_half_kl),
            r.curve
                .examples_to_base_unsafe_rate
                .map_or("not reached".to_owned(), |n| n.to_string()),
        );
    }
    out += &format!(
        "\nEvery base aligned on {} refusals + {} other ideal answers, then perturbed on the same negative streams. \
         Fewer examples = a faster rebound.\n",
        report.positive, report.positive
    );
    out
}
