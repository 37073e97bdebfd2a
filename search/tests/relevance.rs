//! Relevance: queries a student or researcher would type, each with the entry that must be in the top 3.
//! The suite must stay at or above 95%; every miss is printed so a regression is easy to read.

use rice_catalog::Catalog;
use rice_search::{SearchIndex, SearchRequest};

/// (query, entry id that must appear in the top 3; `a|b` when either answer is right)
const CASES: &[(&str, &str)] = &[
    // Acronyms: the entry that owns the acronym comes first.
    ("IDA", "ida"),
    ("RRM", "rrm"),
    ("CIRL", "cirl"),
    ("DPO", "dpo"),
    ("RLAIF", "rlaif"),
    ("PPO", "ppo"),
    ("RLHF", "rlhf"),
    ("SFT", "sft"),
    ("IRM", "irm"),
    ("DRO", "dro"),
    ("GCG", "gcg"),
    ("CBFT", "cbft"),
    ("REx", "rex"),
    ("ERM", "erm"),
    ("RICE", "rice-principles"),
    // Names and phrases.
    ("reward hacking", "reward-hacking"),
    ("goal misgeneralization", "goal-misgeneralization"),
    ("constitutional AI", "constitutional-ai"),
    ("\"weak-to-strong generalization\"", "weak-to-strong"),
    ("induction heads", "induction-heads"),
    ("sparse autoencoder features", "dictionary-learning"),
    ("iterated distillation and amplification", "ida"),
    ("safe rlhf lagrangian", "safe-rlhf"),
    ("stream aligner", "stream-aligner"),
    ("language models resist alignment", "alignment-elasticity"),
    ("mode connectivity", "mode-connectivity"),
    ("red teaming language models", "red-teaming"),
    ("sycophancy", "sycophancy"),
    ("power seeking", "power-seeking"),
    ("open source model release", "open-source-governance"),
    ("responsible scaling policy", "responsible-scaling"),
    ("BeaverTails", "beavertails"),
    ("superposition", "superposition"),
    ("jailbreak", "jailbreaks"),
    ("Aligner", "aligner"),
    ("preference pairs without a reward model", "dpo"),
    ("clipped surrogate objective", "ppo"),
    ("cost model lagrange multiplier", "safe-rlhf"),
    ("debate judge", "debate"),
    ("off switch", "off-switch-game"),
    ("EU AI Act", "government-governance"),
    ("truthfulqa", "truthfulness-eval"),
    (
        "machiavelli benchmark",
        "scenario-simulation|power-seeking-eval",
    ),
    ("probing classifiers", "probing"),
    ("activation patching", "perturbation-ablation"),
    ("ROME model editing", "model-editing"),
    ("integrated gradients", "attribution"),
    ("eliciting latent knowledge", "latent-knowledge"),
    ("ethics dataset moral judgments", "moral-datasets"),
    ("cooperative AI game theory", "cooperative-ai-game-theory"),
    ("third party audits", "third-party-auditing"),
    ("compute thresholds and chips", "compute-governance"),
    ("zero shot coordination", "zero-shot-coordination"),
    ("domain randomization", "domain-randomization"),
    ("spurious correlations", "spurious-features"),
    ("reward tampering", "reward-tampering"),
    ("mesa optimizer", "mesa-optimization"),
    (
        "situational awareness evaluation",
        "situational-awareness-eval",
    ),
    (
        "learning from language feedback critique",
        "learning-from-language-feedback",
    ),
    // Questions.
    (
        "how do reward models learn from comparisons",
        "reward-model",
    ),
    ("what is the bradley terry model", "reward-model"),
    (
        "how can humans supervise models smarter than them",
        "scalable-oversight",
    ),
    (
        "why does alignment get undone by fine-tuning",
        "alignment-elasticity",
    ),
    ("correct answers of any upstream model", "aligner"),
    ("invariant risk minimization penalty", "irm"),
    ("worst group loss", "dro"),
    (
        "who governs frontier ai internationally",
        "international-governance",
    ),
    // Misspellings.
    ("reward hackng", "reward-hacking"),
    ("interpretabilty", "interpretability"),
    ("sycophansy", "sycophancy"),
    ("goal misgeneralisation", "goal-misgeneralization"),
    ("adversarial trainng", "adversarial-training"),
    ("constitutonal ai", "constitutional-ai"),
    ("distributional shift", "distribution-shift"),
    // Half-typed (search-as-you-type).
    ("scalable overs", "scalable-oversight"),
    ("mechanistic interp", "circuit-analysis"),
    ("deceptive align", "deceptive-alignment"),
];

#[test]
fn relevance_suite_stays_at_or_above_95_percent_top_3() {
    let catalog = Catalog::embedded().unwrap();
    let index = SearchIndex::build(&catalog).unwrap();
    let mut misses = Vec::new();
    for (q, want) in CASES {
        let wanted: Vec<&str> = want.split('|').collect();
        for w in &wanted {
            assert!(
                catalog.entry(w).is_some(),
                "case `{q}` expects unknown entry `{w}`"
            );
        }
        let results = index
            .search(&SearchRequest {
                limit: 3,
                ..SearchRequest::query(*q)
            })
            .unwrap();
        let got: Vec<&str> = results.hits.iter().map(|h| h.id.as_str()).collect();
        if !got.iter().any(|g| wanted.contains(g)) {
            misses.push(format!("{q:?}: want {want}, got {got:?}"));
        }
    }
    let hit_rate = 1.0 - misses.len() as f64 / CASES.len() as f64;
    println!(
        "relevance: {:.1}% top-3 over {} queries",
        hit_rate * 100.0,
        CASES.len()
    );
    for m in &misses {
        println!("  miss {m}");
    }
    assert!(CASES.len() >= 40);
    assert!(
        hit_rate >= 0.95,
        "top-3 rate {:.1}% below 95%:\n{}",
        hit_rate * 100.0,
        misses.join("\n")
    );
}

#[test]
fn acronyms_and_the_issue_examples_rank_first() {
    let catalog = Catalog::embedded().unwrap();
    let index = SearchIndex::build(&catalog).unwrap();
    for (q, want) in [
        ("IDA", "ida"),
        ("RRM", "rrm"),
        ("CIRL", "cirl"),
        ("DPO", "dpo"),
        ("RLAIF", "rlaif"),
        ("reward hackng", "reward-hacking"),
    ] {
        let results = index.search(&SearchRequest::query(q)).unwrap();
        assert_eq!(
            results.hits.first().map(|h| h.id.as_str()),
            Some(want),
            "`{q}`"
        );
    }
}
