//! Where the first sentence of an answer ends: the unit Stream Aligner corrects.
//!
//! Stream Aligner (Lou et al., arXiv 2501.05336) lets the upstream model write one sentence, has the aligner
//! correct it, appends the correction, and asks the upstream for the next sentence. This module decides where a
//! sentence ends, both on a finished text and on a text that is still being streamed, where it is the stop
//! predicate of generation ([`is_sentence_complete`]).
//!
//! # The rules
//!
//! Leading whitespace is skipped, so a sentence is never empty. Then the first of these ends the sentence:
//!
//! - **Terminal punctuation**: a run of `.` `?` `!` `…` followed by whitespace, or by the end of a complete text.
//!   A run is one boundary (`Wait... what?` is two sentences, not four), and the closing quotes and brackets right
//!   after it belong to the sentence (`He said "hi." Then` ends after the quote). A `.` followed by anything else
//!   is not a boundary, so decimals (`3.14`), `e.g` inside `e.g.` and `a.b` never split.
//! - **CJK terminators** `。` `！` `？` end a sentence whatever follows (`你好。世界！` is two sentences).
//! - **A line break** (`\n` or `\r`) after text ends the sentence just before the line break.
//!
//! A single `.` followed by whitespace is *not* a boundary when it ends
//!
//! - an abbreviation that is always mid-sentence: `e.g.`, `i.e.`, `vs.`, `cf.`, `approx.` (any case), and the
//!   titles and labels `Mr.`, `Mrs.`, `Ms.`, `Dr.`, `Prof.`, `St.`, `Jr.`, `Sr.`, `Fig.` (capitalised as written,
//!   so the fruit in `a fig. Then` and `5 ms. Then` still end sentences);
//! - `etc.` followed by a lowercase word (`salt, etc. and pepper`), or `No.` followed by a digit (`No. 5`);
//! - a single capital letter, an initial (`J. Smith`) — except `I`, which ends sentences as a pronoun;
//! - a numbered-list marker: at most three digits that start the text or a line (after optional whitespace),
//!   directly followed by a space or tab (`1. Mix the flour`). A `)` marker (`1) Mix`) never looks like a boundary.
//!
//! An abbreviation must be a whole word (`1st. Then` ends a sentence) and a number elsewhere ends a sentence like
//! any word: `The answer is 7. Next` and `3 + 4 = 7. 7 * 2 = 14.` split after the `7.`.
//!
//! # Streaming
//!
//! While the text is still being written (`complete == false`), a boundary is only reported once the text after
//! it can no longer change the decision: the whitespace after a `.` must have arrived (`It costs 3.` may become
//! `It costs 3.5`), the character after a CJK terminator must have arrived (it may be a closing `」`), and after
//! `etc.` or `No.` the next word must have started. So a boundary found in a prefix is the boundary of every
//! text that extends it, and it is the boundary of the complete text too: streaming never cuts where the finished
//! answer would not.
//!
//! # Where this differs from the reference
//!
//! The reference (`generation/tf_annotate.py::split_first_sentence`) hides the `.` of `i.e.`, `e.g.` and of a
//! digit that starts a word (`\b\d\.`) behind `<DOT>`, splits with `re.split(r'(?<!<DOT>)([.?!])', text)`, and
//! re-attaches the punctuation. We keep its intent — one sentence at a time, abbreviations and list numbers do not
//! split — but:
//!
//! - a text with no boundary is one sentence when it is complete (the reference returns an empty first
//!   sentence), and no sentence yet while streaming;
//! - the rest is the text as written after the sentence (the reference rebuilds it by joining the later
//!   sentences with spaces, which drops an unterminated tail and changes line breaks);
//! - only list markers at the start of a line are protected, so a number that ends a sentence (`is 7. Next`)
//!   splits (the reference never splits there), and decimals are safe because a boundary needs whitespace after;
//! - `.` `?` `!` need whitespace after them (`Hello.World` is one sentence), runs such as `...` and `?!` are one
//!   boundary, closing quotes stay with their sentence, and line breaks and CJK terminators end sentences;
//! - more abbreviations and initials are protected.

/// A sentence ends after one of these once whitespace follows.
fn is_latin_terminal(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | '…')
}

/// A sentence ends after one of these whatever follows.
fn is_cjk_terminal(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

fn is_terminal(c: char) -> bool {
    is_latin_terminal(c) || is_cjk_terminal(c)
}

/// Closing quotes and brackets: they stay with the sentence they close.
const CLOSERS: &str = "\"')]}”’»›」』）】〕〉》］｝";

fn is_closer(c: char) -> bool {
    CLOSERS.contains(c)
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r')
}

/// Abbreviations whose `.` never ends a sentence, matched ignoring ASCII case.
const ABBREVIATIONS_ANY_CASE: &[&str] = &["e.g", "i.e", "vs", "cf", "approx"];

/// Titles and labels whose `.` never ends a sentence, matched as written.
const ABBREVIATIONS_CAPITALISED: &[&str] =
    &["Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "Fig"];

/// What a run of terminal punctuation means.
enum Verdict {
    Boundary,
    NotBoundary,
    /// Streaming, and the text that decides has not arrived yet.
    NeedMoreText,
}

/// The byte offset just past the first sentence's terminal punctuation (and the closing quotes or brackets right
/// after it), or just before the line break that ends it; `None` if no boundary is known yet.
///
/// `complete` says the text is final, so that punctuation at its very end counts. The rules are in the module
/// documentation. The sentence before the offset always holds more than whitespace.
pub fn first_sentence_end(text: &str, complete: bool) -> Option<usize> {
    let start = text.len() - text.trim_start().len();
    let mut pos = start;
    while let Some(c) = text[pos..].chars().next() {
        if is_line_break(c) {
            // `start` is not whitespace, so there is text before this line break.
            return Some(pos);
        }
        if !is_terminal(c) {
            pos += c.len_utf8();
            continue;
        }
        let run_end = end_of(text, pos, is_terminal);
        let after = end_of(text, run_end, is_closer);
        match judge(text, pos, run_end, after, complete) {
            Verdict::Boundary => return Some(after),
            Verdict::NeedMoreText => return None,
            Verdict::NotBoundary => pos = after,
        }
    }
    None
}

/// The end of the run of characters matching `pred` that starts at `from`.
fn end_of(text: &str, from: usize, pred: fn(char) -> bool) -> usize {
    let rest = &text[from..];
    from + rest.len() - rest.trim_start_matches(pred).len()
}

/// Whether the punctuation run `text[run_start..run_end]`, with its closers up to `after`, ends a sentence.
fn judge(text: &str, run_start: usize, run_end: usize, after: usize, complete: bool) -> Verdict {
    let next = text[after..].chars().next();
    if next.is_none() && !complete {
        // A closer, more punctuation or a digit may still come.
        return Verdict::NeedMoreText;
    }
    let run = &text[run_start..run_end];
    if run.chars().any(is_cjk_terminal) {
        return Verdict::Boundary;
    }
    if next.is_some_and(|c| !c.is_whitespace()) {
        return Verdict::NotBoundary;
    }
    if run != "." {
        return Verdict::Boundary;
    }
    judge_single_dot(text, run_start, after, complete)
}

/// A lone `.` followed by whitespace (or the end of a complete text): a boundary unless it is protected.
fn judge_single_dot(text: &str, dot: usize, after: usize, complete: bool) -> Verdict {
    let before = &text[..dot];
    let protected = is_list_marker(text, dot)
        || ends_with_initial(before)
        || ABBREVIATIONS_ANY_CASE
            .iter()
            .any(|a| ends_with_word(before, a, true))
        || ABBREVIATIONS_CAPITALISED
            .iter()
            .any(|a| ends_with_word(before, a, false));
    if protected {
        Verdict::NotBoundary
    } else if ends_with_word(before, "etc", true) {
        unless_next_word(text, after, complete, char::is_lowercase)
    } else if ends_with_word(before, "No", false) {
        unless_next_word(text, after, complete, |c| c.is_ascii_digit())
    } else {
        Verdict::Boundary
    }
}

/// A boundary unless the next word on this line starts with a character that `continues` the sentence.
fn unless_next_word(
    text: &str,
    from: usize,
    complete: bool,
    continues: fn(char) -> bool,
) -> Verdict {
    for c in text[from..].chars() {
        if is_line_break(c) {
            return Verdict::Boundary;
        }
        if !c.is_whitespace() {
            return if continues(c) {
                Verdict::NotBoundary
            } else {
                Verdict::Boundary
            };
        }
    }
    if complete {
        Verdict::Boundary
    } else {
        Verdict::NeedMoreText
    }
}

/// `1. Mix`: one to three digits at the start of the text or of a line, the `.` at `dot`, then a space or tab.
fn is_list_marker(text: &str, dot: usize) -> bool {
    if !matches!(text.as_bytes().get(dot + 1), Some(b' ' | b'\t')) {
        return false;
    }
    let before = &text[..dot];
    let number = before.trim_end_matches(|c: char| c.is_ascii_digit());
    let line = number.trim_end_matches(|c: char| c.is_whitespace() && !is_line_break(c));
    (1..=3).contains(&(before.len() - number.len()))
        && (line.is_empty() || line.ends_with(is_line_break))
}

/// `before` ends with a single capital letter that is a word of its own (`J` in `J. Smith`), other than `I`.
fn ends_with_initial(before: &str) -> bool {
    let mut chars = before.chars().rev();
    let letter = chars.next().is_some_and(|c| c.is_uppercase() && c != 'I');
    letter && !chars.next().is_some_and(char::is_alphanumeric)
}

/// `before` ends with `word` (an ASCII word) that is not the tail of a longer word.
fn ends_with_word(before: &str, word: &str, ignore_case: bool) -> bool {
    let Some(split) = before.len().checked_sub(word.len()) else {
        return false;
    };
    let tail = &before.as_bytes()[split..];
    let same = if ignore_case {
        tail.eq_ignore_ascii_case(word.as_bytes())
    } else {
        tail == word.as_bytes()
    };
    // `tail` matched ASCII bytes, so `split` is a character boundary.
    same && !before[..split].ends_with(char::is_alphanumeric)
}

/// The first sentence (trimmed) and the rest (leading whitespace trimmed), or `None` if there is no sentence yet.
///
/// When `complete` and no boundary is found, the whole trimmed text is the one sentence (the reference returns an
/// empty sentence there); while streaming that is `None`, as it is for text that is only whitespace.
pub fn split_first(text: &str, complete: bool) -> Option<(&str, &str)> {
    match first_sentence_end(text, complete) {
        Some(end) => Some((text[..end].trim(), text[end..].trim_start())),
        None => {
            let sentence = text.trim();
            (complete && !sentence.is_empty()).then_some((sentence, &text[text.len()..]))
        }
    }
}

/// All sentences of a complete text, each trimmed and none empty.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut rest = text;
    while let Some((sentence, after)) = split_first(rest, true) {
        sentences.push(sentence.to_string());
        rest = after;
    }
    sentences
}

/// Whether a streamed text already holds a whole first sentence: the stop predicate for the upstream's generation.
pub fn is_sentence_complete(text: &str) -> bool {
    first_sentence_end(text, false).is_some()
}
