//! Snippets and highlighting that agree with how documents matched: a word is marked when it equals a query word
//! (or a typo correction the search used), when its stem equals a query word's stem, or when it extends the last
//! query word (the one being typed). Text is HTML-escaped; only our own `<mark>` tags are markup.

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

/// One word of the user's query, as the matcher sees it.
#[derive(Clone, Debug)]
pub(crate) struct QueryWord {
    /// Lowercased, not stemmed.
    pub raw: String,
    /// Lowercased and stemmed (English).
    pub stem: String,
    /// Edits the search allows when correcting this word: 0 below 5 letters, 1 from 5, 2 from 9 (Meilisearch's
    /// rule).
    pub typos: u8,
    /// The last word of a query still being typed: also matches words it begins.
    pub prefix: bool,
}

impl QueryWord {
    /// Whether the text word `word` (any case) matches; `stem` stems a lowercased word, and is called only when the
    /// stem could match.
    fn matches(&self, word: &str, stem: &mut impl FnMut(&str) -> String) -> bool {
        let n = self.raw.len();
        if word.len() == n && word.eq_ignore_ascii_case(&self.raw) {
            return true;
        }
        if self.prefix
            && word.len() > n
            && word.is_char_boundary(n)
            && word[..n].eq_ignore_ascii_case(&self.raw)
        {
            return true;
        }
        // English stems are the word minus a suffix, up to a changed last letter (happy → happi), so only words
        // that begin with the stem less its last letter are worth stemming.
        let k = self.stem.len().saturating_sub(1).max(1);
        let could = word.len() >= k
            && word.is_char_boundary(k)
            && self.stem.is_char_boundary(k)
            && word[..k].eq_ignore_ascii_case(&self.stem[..k]);
        if could {
            return stem(&word.to_lowercase()) == self.stem;
        }
        !word.is_ascii() && word.to_lowercase() == self.raw
    }
}

/// The typo budget for a word of `len` characters.
pub(crate) fn typo_budget(len: usize) -> u8 {
    match len {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// A matched word's byte range in the text, and which query word it matched.
struct Match {
    from: usize,
    to: usize,
    word: usize,
}

/// The words of `text` that match a query word, in order. Typos are not matched here: the search adds the
/// corrections it used as query words of their own, so the highlighter marks exactly what was searched. Words are
/// runs of alphanumeric characters, as tantivy's simple tokenizer splits them.
///
/// Rather than classify every character, this jumps (with SIMD `memchr`) to the places where a word could begin
/// with the first letter of some query word, and looks only at those words.
fn matches(text: &str, words: &[QueryWord], stem: &mut TextAnalyzer) -> Vec<Match> {
    let mut out = Vec::new();
    let mut stem_word = |w: &str| {
        let mut stream = stem.token_stream(w);
        if stream.advance() {
            stream.token().text.clone()
        } else {
            w.to_owned()
        }
    };
    let mut firsts: Vec<u8> = Vec::new();
    for w in words {
        for s in [&w.raw, &w.stem] {
            match s.bytes().next() {
                Some(b) if b.is_ascii() => firsts.push(b.to_ascii_lowercase()),
                Some(_) => return matches_by_scanning(text, words, &mut stem_word),
                None => {}
            }
        }
    }
    firsts.sort_unstable();
    firsts.dedup();
    let bytes = text.as_bytes();
    for b in firsts {
        for from in memchr::memchr2_iter(b, b.to_ascii_uppercase(), bytes) {
            let starts_word = text[..from]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            if !starts_word {
                continue;
            }
            let to = text[from..]
                .find(|c: char| !c.is_alphanumeric())
                .map_or(text.len(), |i| from + i);
            let word = &text[from..to];
            if let Some(q) = words.iter().position(|w| w.matches(word, &mut stem_word)) {
                out.push(Match { from, to, word: q });
            }
        }
    }
    out.sort_by_key(|m| m.from);
    out
}

/// The same as [`matches`], classifying every character: for query words that begin with a non-ASCII letter.
fn matches_by_scanning(
    text: &str,
    words: &[QueryWord],
    stem_word: &mut impl FnMut(&str) -> String,
) -> Vec<Match> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(from)) => {
                start = None;
                if let Some(q) = words
                    .iter()
                    .position(|w| w.matches(&text[from..i], stem_word))
                {
                    out.push(Match {
                        from,
                        to: i,
                        word: q,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The whole of `text`, escaped, with every match marked.
pub(crate) fn highlight_all(text: &str, words: &[QueryWord], stem: &mut TextAnalyzer) -> String {
    let found = matches(text, words, stem);
    render(text, 0, text.len(), &found)
}

/// The best window of about `max_chars` characters of `text`: the one covering the most distinct query words (then
/// the most matches), escaped and marked, with an ellipsis where text was cut. `None` when nothing matches.
pub(crate) fn snippet(
    text: &str,
    words: &[QueryWord],
    max_chars: usize,
    stem: &mut TextAnalyzer,
) -> Option<String> {
    let found = matches(text, words, stem);
    if found.is_empty() {
        return None;
    }
    // Slide a window over the matches (two pointers), scoring (distinct words, matches).
    let mut best = (0usize, 0usize, 0usize); // (distinct, count, index of first match)
    let mut counts = vec![0usize; words.len()];
    let mut distinct = 0;
    let mut left = 0;
    for right in 0..found.len() {
        if counts[found[right].word] == 0 {
            distinct += 1;
        }
        counts[found[right].word] += 1;
        while found[right].to - found[left].from > max_chars {
            counts[found[left].word] -= 1;
            if counts[found[left].word] == 0 {
                distinct -= 1;
            }
            left += 1;
        }
        if (distinct, right + 1 - left) > (best.0, best.1) {
            best = (distinct, right + 1 - left, left);
        }
    }
    // Start a little before the first match, at a word boundary; end at max_chars (bytes ≈ chars for our text).
    let first = found[best.2].from;
    let lead = max_chars / 5;
    let mut start = floor_boundary(text, first.saturating_sub(lead));
    if start > 0 {
        start = text[start..first]
            .find(char::is_whitespace)
            .map_or(first, |i| start + i + 1);
    }
    let mut end = floor_boundary(text, (start + max_chars).min(text.len()));
    if end < text.len() {
        end = text[start..end]
            .rfind(char::is_whitespace)
            .map_or(end, |i| start + i)
            .max(found[best.2].to);
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(render(text, start, end, &found).trim());
    if end < text.len() {
        out.push('…');
    }
    Some(out)
}

/// The opening of `text` (about `max_chars`), escaped, for documents whose text has no match.
pub(crate) fn opening(text: &str, max_chars: usize) -> String {
    if text.len() <= max_chars {
        return escape(text);
    }
    let end = floor_boundary(text, max_chars);
    let end = text[..end].rfind(char::is_whitespace).unwrap_or(end);
    format!("{}…", escape(text[..end].trim_end()))
}

fn render(text: &str, start: usize, end: usize, found: &[Match]) -> String {
    let mut out = String::with_capacity(end - start + 32);
    let mut at = start;
    for m in found.iter().filter(|m| m.from >= start && m.to <= end) {
        out.push_str(&escape(&text[at..m.from]));
        out.push_str("<mark>");
        out.push_str(&escape(&text[m.from..m.to]));
        out.push_str("</mark>");
        at = m.to;
    }
    out.push_str(&escape(&text[at..end]));
    out
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The Levenshtein distance of `a` and `b` if it is at most `max` (stops as soon as it cannot be). Works on bytes
/// for ASCII words (no allocation) and on characters otherwise.
pub(crate) fn edit_distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    if a.is_ascii() && b.is_ascii() && b.len() < 64 {
        bounded_levenshtein(a.as_bytes(), b.as_bytes(), max)
    } else {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        bounded_levenshtein(&a, &b, max)
    }
}

fn bounded_levenshtein<T: PartialEq>(a: &[T], b: &[T], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut stack = [0usize; 64];
    let mut heap = Vec::new();
    let row: &mut [usize] = if b.len() < 64 {
        &mut stack[..=b.len()]
    } else {
        heap.resize(b.len() + 1, 0);
        &mut heap
    };
    for (j, cell) in row.iter_mut().enumerate() {
        *cell = j;
    }
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut best = row[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
            best = best.min(row[j + 1]);
        }
        if best > max {
            return None;
        }
    }
    Some(row[b.len()]).filter(|d| *d <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> TextAnalyzer {
        tantivy::tokenizer::TokenizerManager::default()
            .get("en_stem")
            .unwrap()
    }

    fn word(raw: &str, stem: &str, prefix: bool) -> QueryWord {
        QueryWord {
            raw: raw.into(),
            stem: stem.into(),
            typos: typo_budget(raw.len()),
            prefix,
        }
    }

    #[test]
    fn marks_stems_typos_and_prefixes_and_escapes_the_rest() {
        let mut stem = analyzer();
        let words = [
            word("hacking", "hack", false),
            word("rew", "rew", true),
            word("model", "model", false),
        ];
        let html = highlight_all("Rewards <b>hacking</b> & Models", &words, &mut stem);
        assert_eq!(
            html,
            "<mark>Rewards</mark> &lt;b&gt;<mark>hacking</mark>&lt;/b&gt; &amp; <mark>Models</mark>"
        );
    }

    #[test]
    fn snippet_picks_the_window_with_the_most_distinct_words() {
        let mut stem = analyzer();
        let text = format!(
            "{} debate judge {} debate",
            "filler ".repeat(40),
            "other ".repeat(40)
        );
        let words = [word("debate", "debat", false), word("judge", "judg", false)];
        let s = snippet(&text, &words, 60, &mut stem).unwrap();
        assert!(s.contains("<mark>debate</mark> <mark>judge</mark>"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
    }

    #[test]
    fn non_ascii_words_and_word_boundaries() {
        let mut stem = analyzer();
        let words = [
            word("élan", "élan", false),
            word("dpo", "dpo", false),
            word("中文", "中文", false),
        ];
        let html = highlight_all("Élan, cDPO and DPO-style (dpo)", &words, &mut stem);
        assert_eq!(
            html,
            "<mark>Élan</mark>, cDPO and <mark>DPO</mark>-style (<mark>dpo</mark>)"
        );
    }

    #[test]
    fn typo_budget_follows_the_meilisearch_rule() {
        assert_eq!(
            (
                typo_budget(4),
                typo_budget(5),
                typo_budget(8),
                typo_budget(9)
            ),
            (0, 1, 1, 2)
        );
        assert_eq!(edit_distance_within("hackng", "hacking", 1), Some(1));
        assert_eq!(edit_distance_within("hckng", "hacking", 1), None);
        assert_eq!(
            edit_distance_within("distilation", "distillation", 2),
            Some(1)
        );
    }
}
