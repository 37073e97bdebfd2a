//! The sentence splitter: one test per rule, then properties over arbitrary text.

use proptest::prelude::*;
use rice_stream_aligner::split::{
    first_sentence_end, is_sentence_complete, split_first, split_sentences,
};

fn sentences(text: &str) -> Vec<String> {
    split_sentences(text)
}

#[track_caller]
fn assert_sentences(text: &str, expected: &[&str]) {
    assert_eq!(sentences(text), expected, "splitting {text:?}");
}

// Terminal punctuation.

#[test]
fn full_stops_question_marks_and_exclamations_end_sentences() {
    assert_sentences(
        "It rains. Is it cold? Yes!",
        &["It rains.", "Is it cold?", "Yes!"],
    );
}

#[test]
fn the_offset_is_just_past_the_punctuation() {
    assert_eq!(first_sentence_end("It rains. Then", false), Some(9));
    assert_eq!(
        split_first("It rains.  Then it stops", false),
        Some(("It rains.", "Then it stops"))
    );
}

#[test]
fn trailing_whitespace_is_not_a_sentence() {
    assert_sentences("Hello world.   ", &["Hello world."]);
    assert_eq!(first_sentence_end("Hello world.   ", false), Some(12));
    assert_eq!(
        split_first("Hello world.   ", true),
        Some(("Hello world.", ""))
    );
}

#[test]
fn leading_whitespace_is_skipped() {
    assert_eq!(split_first("  \n Hi. There", false), Some(("Hi.", "There")));
    assert_eq!(first_sentence_end("   ", true), None);
    assert_eq!(split_first(" \n\t ", true), None);
    assert!(sentences("").is_empty());
}

#[test]
fn a_dot_needs_whitespace_after_it() {
    assert_sentences(
        "See example.com for more. Then",
        &["See example.com for more.", "Then"],
    );
    assert_sentences("Hello.World", &["Hello.World"]);
}

#[test]
fn an_ellipsis_is_one_boundary() {
    assert_sentences("Wait... what?", &["Wait...", "what?"]);
    assert_sentences("Really?! Yes.", &["Really?!", "Yes."]);
    assert_sentences("Well… fine.", &["Well…", "fine."]);
}

#[test]
fn closing_quotes_and_brackets_stay_with_their_sentence() {
    assert_sentences(
        r#"He said "stop." Then he left."#,
        &[r#"He said "stop.""#, "Then he left."],
    );
    assert_sentences("(It is late.) We go.", &["(It is late.)", "We go."]);
    assert_sentences(
        "他说：「好。」然后走了。",
        &["他说：「好。」", "然后走了。"],
    );
}

#[test]
fn text_without_punctuation_is_one_sentence_only_when_complete() {
    assert_sentences("no punctuation at all", &["no punctuation at all"]);
    assert_eq!(
        split_first("no punctuation at all", true),
        Some(("no punctuation at all", ""))
    );
    assert_eq!(split_first("no punctuation at all", false), None);
    assert_eq!(first_sentence_end("no punctuation at all", true), None);
    assert!(!is_sentence_complete("no punctuation at all"));
}

// CJK terminators and line breaks.

#[test]
fn cjk_terminators_need_no_whitespace() {
    assert_sentences("你好。世界！", &["你好。", "世界！"]);
    assert_sentences("真的？是的。", &["真的？", "是的。"]);
    assert_eq!(first_sentence_end("你好。世", false), Some("你好。".len()));
}

#[test]
fn a_cjk_terminator_at_the_end_of_a_stream_waits_for_a_possible_closing_bracket() {
    assert_eq!(first_sentence_end("你好。", false), None);
    assert_eq!(first_sentence_end("你好。", true), Some("你好。".len()));
    assert_eq!(first_sentence_end("「你好。」", false), None);
    assert_eq!(
        first_sentence_end("「你好。」他", false),
        Some("「你好。」".len())
    );
}

#[test]
fn a_line_break_ends_a_sentence_before_it() {
    assert_eq!(first_sentence_end("Steps:\n1. Mix", false), Some(6));
    assert_sentences(
        "Steps:\n1. Mix it\n2. Stir it",
        &["Steps:", "1. Mix it", "2. Stir it"],
    );
    assert_sentences("a line  \r\nanother", &["a line", "another"]);
    assert!(is_sentence_complete("Title\n"));
}

// Protected dots.

#[test]
fn decimals_do_not_split() {
    assert_sentences("Pi is 3.14. Yes.", &["Pi is 3.14.", "Yes."]);
    assert_sentences("Take .5 of it. Done.", &["Take .5 of it.", "Done."]);
}

#[test]
fn e_g_and_i_e_never_split() {
    assert_sentences(
        "Use e.g. salt. Then stop.",
        &["Use e.g. salt.", "Then stop."],
    );
    assert_sentences(
        "Use a spice, i.e. Salt. Then stop.",
        &["Use a spice, i.e. Salt.", "Then stop."],
    );
    assert_sentences(
        "Use spices (E.g. salt). Then",
        &["Use spices (E.g. salt).", "Then"],
    );
}

#[test]
fn etc_splits_unless_a_lowercase_word_follows() {
    assert_sentences(
        "Salt, pepper, etc. and oil. Done.",
        &["Salt, pepper, etc. and oil.", "Done."],
    );
    assert_sentences(
        "Salt, pepper, etc. Then oil.",
        &["Salt, pepper, etc.", "Then oil."],
    );
    assert_sentences("Salt, pepper, etc.", &["Salt, pepper, etc."]);
    // While streaming, the next word decides.
    assert_eq!(first_sentence_end("Salt, etc. ", false), None);
    assert_eq!(first_sentence_end("Salt, etc. T", false), Some(10));
    assert_eq!(first_sentence_end("Salt, etc.\nThen", false), Some(10));
}

#[test]
fn titles_and_labels_do_not_split() {
    assert_sentences(
        "Dr. Smith arrived. He sat.",
        &["Dr. Smith arrived.", "He sat."],
    );
    for text in [
        "Ask Mr. Lee now.",
        "Ask Mrs. Lee now.",
        "Ask Ms. Lee now.",
        "Ask Prof. Lee now.",
        "Go to St. Paul now.",
        "Ask John Jr. about it.",
        "Ask John Sr. about it.",
        "See Fig. 3 now.",
        "Cats vs. dogs now.",
        "Cats VS. dogs now.",
        "See cf. the appendix.",
        "It is approx. 5 km.",
    ] {
        assert_sentences(text, &[text]);
    }
}

#[test]
fn capitalised_abbreviations_are_matched_as_written() {
    assert_sentences("I ate a fig. Then", &["I ate a fig.", "Then"]);
    assert_sentences("It took 5 ms. Then", &["It took 5 ms.", "Then"]);
    // Inside a longer word it is no abbreviation.
    assert_sentences("He came 1st. Then", &["He came 1st.", "Then"]);
    assert_sentences("Ask the devs. Then", &["Ask the devs.", "Then"]);
}

#[test]
fn no_protects_only_before_a_digit() {
    assert_sentences("Take No. 5 please. Then", &["Take No. 5 please.", "Then"]);
    assert_sentences("She said No. Then left.", &["She said No.", "Then left."]);
}

#[test]
fn initials_do_not_split_but_the_pronoun_i_does() {
    assert_sentences("J. Smith wrote it. Then", &["J. Smith wrote it.", "Then"]);
    assert_sentences(
        "Ask J. R. R. Tolkien. Then",
        &["Ask J. R. R. Tolkien.", "Then"],
    );
    assert_sentences("Neither did I. We left.", &["Neither did I.", "We left."]);
}

#[test]
fn numbered_list_markers_do_not_split() {
    assert_sentences("1. Mix it. 2. Stir it.", &["1. Mix it.", "2. Stir it."]);
    assert_sentences("  12. Mix it.", &["12. Mix it."]);
    assert_sentences("Steps:\n  3. Mix it", &["Steps:", "3. Mix it"]);
    // More than three digits is a year or an amount, not a marker.
    assert_sentences("2024. A good year.", &["2024.", "A good year."]);
}

#[test]
fn a_number_that_ends_a_sentence_splits() {
    assert_sentences("The answer is 7. Next", &["The answer is 7.", "Next"]);
    assert_sentences(
        "3 + 4 = 7. 7 * 2 = 14. The answer is 14.",
        &["3 + 4 = 7.", "7 * 2 = 14.", "The answer is 14."],
    );
}

// Streaming.

#[test]
fn a_number_at_the_end_of_a_stream_waits_for_what_follows() {
    assert_eq!(first_sentence_end("It costs 3.", false), None);
    assert_eq!(first_sentence_end("It costs 3.", true), Some(11));
    assert!(!is_sentence_complete("It costs 3."));
    assert_eq!(
        first_sentence_end("It costs 3.5 coins. Then", false),
        Some(19)
    );
    assert_eq!(
        split_first("It costs 3.5 coins. Then", false),
        Some(("It costs 3.5 coins.", "Then"))
    );
}

#[test]
fn punctuation_at_the_end_counts_only_when_complete() {
    assert_eq!(first_sentence_end("Done.", false), None);
    assert_eq!(first_sentence_end("Done.", true), Some(5));
    assert_eq!(first_sentence_end("Done. ", false), Some(5));
    assert!(is_sentence_complete("Done. "));
    assert_eq!(split_first("Done.", false), None);
    assert_eq!(split_first("Done.", true), Some(("Done.", "")));
    // More punctuation or a closing quote may still come.
    assert_eq!(first_sentence_end("Done?", false), None);
    assert_eq!(first_sentence_end(r#"He said "done.""#, false), None);
}

#[test]
fn a_protected_dot_at_the_end_of_a_complete_text_is_one_sentence() {
    assert_eq!(first_sentence_end("Ask Dr.", true), None);
    assert_sentences("Ask Dr.", &["Ask Dr."]);
}

// Properties.

/// Characters that exercise the rules: digits, letters of abbreviations, punctuation, whitespace, CJK and closers.
const EDGE_ALPHABET: &str = "[a1eginoctsNDrJI9. ?!\n\t。！？…\"」)]{0,40}";

fn char_boundaries(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn check_offsets(text: &str) -> Result<(), TestCaseError> {
    for complete in [false, true] {
        if let Some(end) = first_sentence_end(text, complete) {
            prop_assert!(end <= text.len());
            prop_assert!(text.is_char_boundary(end));
            prop_assert!(
                !text[..end].trim().is_empty(),
                "empty sentence before {end} in {text:?}"
            );
        }
    }
    Ok(())
}

fn check_split_sentences(text: &str) -> Result<(), TestCaseError> {
    let pieces = split_sentences(text);
    for piece in &pieces {
        prop_assert!(!piece.is_empty());
        prop_assert_eq!(piece.trim(), piece.as_str());
        // Each piece is one sentence: splitting it again gives it back whole.
        prop_assert_eq!(
            split_sentences(piece),
            vec![piece.clone()],
            "piece of {:?}",
            text
        );
    }
    prop_assert_eq!(
        without_whitespace(&pieces.concat()),
        without_whitespace(text)
    );
    Ok(())
}

fn check_streaming_agrees(text: &str) -> Result<(), TestCaseError> {
    if let Some(end) = first_sentence_end(text, false) {
        prop_assert_eq!(
            first_sentence_end(text, true),
            Some(end),
            "complete vs streaming on {:?}",
            text
        );
    }
    // A boundary found in a prefix is the boundary of the whole text, streamed or complete.
    for cut in char_boundaries(text) {
        if let Some(end) = first_sentence_end(&text[..cut], false) {
            prop_assert_eq!(
                first_sentence_end(text, false),
                Some(end),
                "prefix {:?} of {:?}",
                &text[..cut],
                text
            );
            prop_assert_eq!(first_sentence_end(text, true), Some(end));
            break;
        }
    }
    Ok(())
}

fn check_split_first(text: &str) -> Result<(), TestCaseError> {
    for complete in [false, true] {
        if let Some((sentence, rest)) = split_first(text, complete) {
            prop_assert!(!sentence.is_empty());
            prop_assert_eq!(sentence.trim(), sentence);
            prop_assert_eq!(rest.trim_start(), rest);
            prop_assert_eq!(
                without_whitespace(&format!("{sentence}{rest}")),
                without_whitespace(text)
            );
        } else if complete {
            prop_assert!(text.trim().is_empty());
        }
    }
    prop_assert_eq!(
        is_sentence_complete(text),
        first_sentence_end(text, false).is_some()
    );
    Ok(())
}

fn check_all(text: &str) -> Result<(), TestCaseError> {
    check_offsets(text)?;
    check_split_first(text)?;
    check_split_sentences(text)?;
    check_streaming_agrees(text)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_unicode_text(text in any::<String>()) {
        check_all(&text)?;
    }

    #[test]
    fn text_from_an_alphabet_of_edge_cases(text in EDGE_ALPHABET) {
        check_all(&text)?;
    }

    #[test]
    fn words_abbreviations_and_numbers(
        parts in prop::collection::vec(
            prop_oneof![
                Just("e.g."), Just("i.e."), Just("etc."), Just("Dr."), Just("No."), Just("vs."), Just("J."),
                Just("I."), Just("7."), Just("1."), Just("3.14"), Just("..."), Just("?!"), Just("。"), Just("」"),
                Just("\""), Just("word"), Just("Word"), Just("5"), Just(" "), Just("  "), Just("\n"), Just("\r\n"),
            ],
            0..16,
        )
    ) {
        check_all(&parts.concat())?;
    }
}
