//! Reading an LLM judge's verdict: every accepted form, the last marker winning, the mapping back through the
//! position swap, and garbage counted as unparsed.

use rice_eval::judge::{Label, candidate_is_a, map_back, pair_hash, parse_verdict};
use rice_eval::winrate::Verdict;

#[test]
fn every_accepted_form() {
    for (reply, label) in [
        ("[[A]]", Label::A),
        ("[[b]]", Label::B),
        ("Verdict: [[tie]]", Label::Tie),
        ("[[TIE]]", Label::Tie),
        ("Better: [[Response A]]", Label::A),
        ("Better: [[responseB]]", Label::B),
        ("[[response_a]]", Label::A),
        ("[[Answer B]]", Label::B),
        ("[[Equal]]", Label::Tie),
        ("[[ a ]]", Label::A),
        ("[[[B]]]", Label::B),
        ("[[A.]]", Label::A),
    ] {
        assert_eq!(parse_verdict(reply), Some(label), "{reply}");
    }
}

#[test]
fn the_last_marker_wins() {
    let reply = "I must answer [[A]], [[B]] or [[tie]]. A is wrong about the sum, so: [[B]]";
    assert_eq!(parse_verdict(reply), Some(Label::B));
    assert_eq!(
        parse_verdict("[[B]] … on reflection [[A]]\n"),
        Some(Label::A)
    );
}

#[test]
fn garbage_is_unparsed() {
    for reply in [
        "",
        "A is better.",
        "[[C]]",
        "[[]]",
        "[[A]] but also [[maybe]]",
        "[A]",
        "]] [[",
        "[[A",
        "[[ëèé]]",
    ] {
        assert_eq!(parse_verdict(reply), None, "{reply:?}");
    }
}

#[test]
fn labels_map_back_through_the_swap() {
    assert_eq!(map_back(Label::A, true), Verdict::Win);
    assert_eq!(map_back(Label::B, true), Verdict::Loss);
    assert_eq!(map_back(Label::A, false), Verdict::Loss);
    assert_eq!(map_back(Label::B, false), Verdict::Win);
    assert_eq!(map_back(Label::Tie, true), Verdict::Tie);
    assert_eq!(map_back(Label::Tie, false), Verdict::Tie);
}

#[test]
fn the_order_is_stable_and_roughly_balanced() {
    let firsts = (0..1000)
        .filter(|i| candidate_is_a(pair_hash(&format!("prompt {i}"), "yes", "no")))
        .count();
    assert!(
        (400..=600).contains(&firsts),
        "{firsts} of 1000 shown first"
    );
    assert_eq!(pair_hash("p", "a", "b"), pair_hash("p", "a", "b"));
    assert_ne!(pair_hash("p", "a", "b"), pair_hash("p", "b", "a"));
}
