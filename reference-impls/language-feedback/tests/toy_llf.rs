//! The pipeline end to end on a small toy setting: a toy-xs base model is the policy, the oracle annotates 128 of
//! its responses, the feedback model learns to critique and rewrite, and its rewrites of the policy's answers to
//! other prompts are better than the answers by the oracle; then both DPO stages run (a few steps: the mechanics,
//! not the effect, which `rice run llf --preset toy` measures).

use rice_llf::LlfConfig;

#[test]
fn rewrites_beat_the_originals_and_the_pipeline_runs_end_to_end() {
    let dir = std::env::temp_dir().join(format!("rice-llf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut base = rice_rlhf::pretrain::PretrainConfig::preset("toy-xs").unwrap();
    base.eval_prompts_per_family = 1;
    rice_rlhf::pretrain::run(&base, &dir.join("base"), false).expect("the base pre-trains");

    let mut cfg = LlfConfig::toy(dir.join("base/checkpoint"));
    cfg.budget = 128;
    cfg.unlabelled_prompts = 128;
    cfg.feedback_train.steps = 150;
    cfg.dpo_train.steps = 4;
    cfg.dpo_train.warmup_steps = 1;
    cfg.dpo_train.eval_every = 4;
    cfg.eval_prompts_per_family = 4;
    cfg.max_new_tokens = 48;
    let out = dir.join("llf");
    let summary = rice_llf::run(&cfg, &out, false).expect("the pipeline runs");

    assert_eq!(summary.annotations, 128);
    let q = summary
        .refinement
        .as_ref()
        .expect("toy runs check the rewrites");
    assert!(q.rewritten >= 32, "{q:?}");
    assert!(
        q.refined_better > 2 * q.refined_worse,
        "the rewrites should mostly beat the originals: {q:?}"
    );
    assert!(q.unsafe_rate_refined < q.unsafe_rate_original, "{q:?}");

    assert!(summary.llf.pairs > 0 && summary.llf.toy.is_some());
    let binary = summary.binary.as_ref().expect("the baseline runs");
    assert!(binary.pairs > 0 && binary.toy.is_some());
    assert!(
        summary
            .verdict
            .as_deref()
            .unwrap()
            .contains("annotation budget")
    );
    for file in [
        "config.toml",
        "summary.json",
        "annotations.jsonl",
        "refinements.jsonl",
        "pairs-llf.jsonl",
        "pairs-binary.jsonl",
        "feedback/checkpoint/model.safetensors",
        "dpo-llf/checkpoint/model.safetensors",
        "dpo-binary/checkpoint/model.safetensors",
        "plots/llf_vs_binary.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
