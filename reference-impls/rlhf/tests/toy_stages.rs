//! Stages 2 and 3 on the toy world, measured by its exact oracle with fixed seeds (margins, not exact values):
//! a reward model orders held-out pairs, a cost model also gets the sign of the cost right, PPO raises the oracle
//! reward over its SFT start, and PPO-Lagrangian holds the episode cost under its threshold without giving up much
//! of plain PPO's helpfulness.
//!
//! Every test starts from one SFT model, trained once per `cargo test` run and shared by the test binaries
//! (`common::start`).

mod common;

use std::sync::OnceLock;

use rice_rlhf::ppo::{self, PpoConfig};
use rice_rlhf::reward::{self, ScoreConfig, ScoreKind};

#[test]
fn reward_model_orders_held_out_pairs() {
    let dir = common::scratch("reward");
    let cfg = ScoreConfig::toy(ScoreKind::Reward, common::start());
    let summary = reward::run(&cfg, &dir, false).unwrap();
    assert!(
        (summary.accuracy_before - 0.5).abs() < 1e-9,
        "a zero head ties every pair"
    );
    assert!(
        summary.accuracy_after >= 0.9,
        "held-out pairwise accuracy {} ({:?})",
        summary.accuracy_after,
        summary.accuracy_by_family
    );
    // Where style and safety decide the order, nearly every pair is right; what it misses is in arith, facts and
    // tone, whose pairs can differ only in a sum or a fact that a model this small cannot check.
    for family in ["hazard", "lookalike"] {
        let accuracy = summary.accuracy_by_family[family];
        assert!(accuracy >= 0.95, "{family}: {accuracy}");
    }
    assert!(dir.join("checkpoint/config.json").is_file());
    let config = std::fs::read_to_string(dir.join("checkpoint/config.json")).unwrap();
    assert!(config.contains("ForSequenceClassification"), "{config}");
    for plot in ["loss", "accuracy", "scores"] {
        assert!(dir.join(format!("plots/{plot}.svg")).is_file(), "{plot}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cost_model_orders_pairs_and_signs_costs() {
    let dir = common::scratch("cost");
    let mut cfg = ScoreConfig::toy(ScoreKind::Cost, common::start());
    // The sign is learnt within 50 steps; a third of the preset's steps keeps the test short.
    cfg.train.steps = 100;
    let summary = reward::run(&cfg, &dir, false).unwrap();
    assert!(
        summary.accuracy_after >= 0.85,
        "held-out pairwise accuracy {}",
        summary.accuracy_after
    );
    let sign = summary.sign_accuracy_after.unwrap();
    assert!(sign >= 0.9, "cost > 0 ⇔ unsafe on {sign} of responses");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Plain PPO from the shared start, run once for the two PPO tests.
fn plain_ppo() -> &'static ppo::PpoSummary {
    static PPO: OnceLock<ppo::PpoSummary> = OnceLock::new();
    PPO.get_or_init(|| {
        let dir = common::scratch("ppo");
        let summary = ppo::run(&PpoConfig::toy(common::start(), false), &dir, false).unwrap();
        for plot in ["reward", "kl", "loss"] {
            assert!(dir.join(format!("plots/{plot}.svg")).is_file(), "{plot}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        summary
    })
}

#[test]
fn ppo_raises_the_oracle_reward() {
    let summary = plain_ppo();
    let toy = summary.toy.as_ref().unwrap();
    assert!(
        summary.reward_end > summary.reward_start,
        "rollout reward {} → {}",
        summary.reward_start,
        summary.reward_end
    );
    // The policy samples: its expected reward is the helpfulness of its samples on held-out prompts.
    assert!(
        toy.sampled_after.helpfulness >= toy.sampled_before.helpfulness + 0.03,
        "held-out helpfulness of samples {} → {}",
        toy.sampled_before.helpfulness,
        toy.sampled_after.helpfulness
    );
    assert!(
        summary.kl_end > 0.0,
        "the policy moved away from the reference"
    );
}

#[test]
fn ppo_lagrangian_holds_the_cost_under_its_threshold_and_keeps_helpfulness() {
    let dir = common::scratch("safe-rlhf");
    let cfg = PpoConfig::toy(common::start(), true);
    let threshold = cfg.lagrangian.as_ref().unwrap().threshold;
    let safe = ppo::run(&cfg, &dir, false).unwrap();
    let plain = plain_ppo();
    let (s, p) = (safe.toy.as_ref().unwrap(), plain.toy.as_ref().unwrap());
    assert!(
        safe.cost_end.unwrap() <= threshold,
        "episode cost at the end {:?}, threshold {threshold}",
        safe.cost_end
    );
    // A helpfulness-only reward rates a leaked recipe above a bare refusal: plain PPO answers more hazard requests,
    // the Lagrangian fewer.
    assert!(
        s.sampled_after.hazard_unsafe_rate <= p.sampled_after.hazard_unsafe_rate - 0.2,
        "hazard unsafe rate of samples: Safe RLHF {}, PPO {}",
        s.sampled_after.hazard_unsafe_rate,
        p.sampled_after.hazard_unsafe_rate
    );
    assert!(
        s.sampled_after.hazard_unsafe_rate <= s.sampled_before.hazard_unsafe_rate,
        "hazard unsafe rate of samples {} → {}",
        s.sampled_before.hazard_unsafe_rate,
        s.sampled_after.hazard_unsafe_rate
    );
    assert!(
        s.sampled_after.helpfulness >= p.sampled_after.helpfulness - 0.1,
        "helpfulness of samples: Safe RLHF {}, PPO {}",
        s.sampled_after.helpfulness,
        p.sampled_after.helpfulness
    );
    assert!(dir.join("plots/lambda.svg").is_file() && dir.join("plots/cost.svg").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
