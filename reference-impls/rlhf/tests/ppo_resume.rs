//! PPO's own loop checkpoints like the shared trainer: a run killed after its last checkpoint and resumed ends with
//! exactly the weights, critics, λ and metrics of an uninterrupted run. On a tiny untrained model, in seconds.

mod common;

use std::path::{Path, PathBuf};

use rice_rlhf::ppo::{self, PpoConfig};

fn config(model: PathBuf, steps: u64) -> PpoConfig {
    PpoConfig {
        world_size: "small".into(),
        steps,
        rollout_batch: 4,
        mini_batch: 2,
        max_new_tokens: 8,
        eval_prompts_per_family: 1,
        save_every: 1,
        actor_lr: 1e-3,
        critic_lr: 1e-3,
        ..PpoConfig::toy(model, true)
    }
}

#[test]
fn a_resumed_ppo_lagrangian_run_matches_an_uninterrupted_one() {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ppo-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let model = common::tiny_model(&root.join("start"));

    let whole = ppo::run(&config(model.clone(), 3), &root.join("whole"), false).unwrap();
    // "Killed" after step 2: the run stopped there, with its checkpoint; then resumed to 3.
    ppo::run(&config(model.clone(), 2), &root.join("split"), false).unwrap();
    let resumed = ppo::run(&config(model, 3), &root.join("split"), true).unwrap();
    assert_eq!(resumed.resumed_from, Some(2));
    assert_eq!(whole.lambda_end, resumed.lambda_end);

    for file in [
        "model.safetensors",
        "critic/model.safetensors",
        "cost_critic/model.safetensors",
        "optimizer_actor.safetensors",
    ] {
        let a = std::fs::read(root.join("whole/checkpoint").join(file)).unwrap();
        let b = std::fs::read(root.join("split/checkpoint").join(file)).unwrap();
        assert!(a == b, "{file} differs after resuming");
    }
    let rows = |dir: &str| -> Vec<String> {
        std::fs::read_to_string(root.join(dir).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    assert_eq!(rows("whole"), rows("split"), "metrics.jsonl");
    std::fs::remove_dir_all(&root).unwrap();
}
