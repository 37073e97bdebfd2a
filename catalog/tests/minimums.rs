//! The catalog's quality floor, enforced for every entry so that it cannot regress: coverage of the survey's topic
//! list, word counts, papers, related entries, and an account of every unverified fact in `COVERAGE.md`.

use rice_catalog::stats::{Coverage, Stats};
use rice_catalog::{Catalog, Kind};

fn catalog() -> Catalog {
    Catalog::embedded().unwrap_or_else(|e| panic!("{e}"))
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

fn coverage_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/COVERAGE.md"))
        .expect("catalog/COVERAGE.md exists")
}

#[test]
fn the_catalog_has_at_least_160_entries() {
    let n = catalog().entries.len();
    assert!(n >= 160, "only {n} entries");
}

#[test]
fn every_entry_meets_the_minimums() {
    let mut problems = Vec::new();
    for e in &catalog().entries {
        let mut fail = |what: String| problems.push(format!("{} ({}): {what}", e.id, e.source));
        let s = words(&e.summary);
        if !(40..=120).contains(&s) {
            fail(format!("summary has {s} words, wants 40–120"));
        }
        let b = words(&e.body);
        if b < 150 {
            fail(format!("body has {b} words, wants at least 150"));
        }
        if e.papers.is_empty() {
            fail("no paper".into());
        }
        if e.related.len() < 2 {
            fail(format!("{} related ids, wants at least 2", e.related.len()));
        }
        if e.rice.primary.is_empty() {
            fail("no primary RICE principle".into());
        }
        for p in &e.papers {
            if p.first_author().is_none_or(|a| a == "others") {
                fail(format!("paper `{}` has no first author", p.title));
            }
        }
        if e.body
            .lines()
            .any(|l| l.starts_with("# ") || l.starts_with("## "))
        {
            fail("body uses a level-1 or level-2 heading (pages supply those)".into());
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn methods_and_concepts_state_something_formal_where_flagship() {
    // The flagship entries carry their key equation in LaTeX.
    let c = catalog();
    for id in [
        "reward-model",
        "rlhf",
        "ppo",
        "dpo",
        "safe-rlhf",
        "sft",
        "irm",
        "rex",
        "dro",
    ] {
        let e = c.entry(id).unwrap_or_else(|| panic!("missing {id}"));
        assert!(
            e.body.contains("$$") || e.body.matches('$').count() >= 4,
            "{id} has no equation"
        );
    }
}

#[test]
fn every_survey_row_is_covered() {
    let stats = Stats::compute(&catalog());
    assert_eq!(stats.coverage.len(), 167);
    let missing: Vec<&str> = stats.missing().iter().map(|r| r.id.as_str()).collect();
    assert!(
        missing.is_empty(),
        "survey rows without an entry: {missing:?}"
    );
    let merged = coverage_md();
    for (row, status) in &stats.coverage {
        if let Coverage::Merged { into } = status {
            assert!(
                merged.contains(&format!("`{}`", row.id)) && merged.contains(into),
                "merge of {} is not explained in COVERAGE.md",
                row.id
            );
        }
    }
}

#[test]
fn every_taxonomy_leaf_has_entries() {
    let stats = Stats::compute(&catalog());
    assert!(
        stats.empty_leaves().is_empty(),
        "empty leaves: {:?}",
        stats.empty_leaves()
    );
}

#[test]
fn every_unverified_paper_is_listed_in_coverage_md() {
    let md = coverage_md();
    for e in &catalog().entries {
        for p in e.papers.iter().filter(|p| p.unverified) {
            assert!(
                md.contains(&p.title),
                "unverified paper `{}` of {} is not listed in catalog/COVERAGE.md",
                p.title,
                e.id
            );
        }
    }
}

#[test]
fn seed_papers_have_rich_entries_with_their_numbers() {
    let c = catalog();
    for (id, arxiv, numbers) in [
        ("aligner", "2402.02416", &["68.9"][..]),
        ("stream-aligner", "2501.05336", &["76.1", "36.0"][..]),
        ("align-anything", "2412.15838", &[][..]),
        ("alignment-elasticity", "2406.06144", &["27"][..]),
    ] {
        let e = c
            .entry(id)
            .unwrap_or_else(|| panic!("missing seed entry {id}"));
        assert!(
            words(&e.body) >= 400,
            "{id}: body has {} words",
            words(&e.body)
        );
        assert!(
            e.papers.iter().any(|p| p.arxiv.as_deref() == Some(arxiv)),
            "{id} does not cite arXiv {arxiv}"
        );
        for n in numbers {
            assert!(
                e.body.contains(n) || e.summary.contains(n),
                "{id} does not state {n}"
            );
        }
    }
}

#[test]
fn every_kind_and_principle_is_used() {
    let stats = Stats::compute(&catalog());
    for (kind, n) in &stats.by_kind {
        assert!(*n > 0 || *kind == Kind::Dataset, "no entry of kind {kind}");
    }
    for (p, (primary, _)) in &stats.by_principle {
        assert!(*primary > 0, "no entry with {p} as primary");
    }
}
