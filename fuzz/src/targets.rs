//! One function per parser that takes outside input: it feeds the parser the input bytes and asserts what must hold
//! for *any* input. An `Err` from a parser is a fine answer; a panic (an `assert!` here, or one inside the parser)
//! is a bug. Expensive set-up (the catalog, the search index, the toy world) is built once per process.
//!
//! Plain Rust without libFuzzer types: `fuzz/fuzz_targets/*.rs` call these functions, and `tests/fuzz_corpus.rs`
//! includes this file with `#[path]` and runs the seeds and every past crash through them on stable Rust.

use std::path::Path;
use std::sync::OnceLock;

use rice_catalog::{Catalog, Diagnostics, SourceFile, Sources, WORKSPACE_CRATES};
use rice_search::SearchRequest;
use rice_server::error::AppError;
use rice_server::{Site, SiteOptions};
use rice_toyworld::{DEFAULT_SEED, Size, World};

// ── Catalog ─────────────────────────────────────────────────────────────────────────────────────────────────────

fn embedded_sources() -> &'static Sources {
    static SOURCES: OnceLock<Sources> = OnceLock::new();
    SOURCES.get_or_init(Sources::embedded)
}

/// The input as the text of one entry file, validated against the embedded taxonomy. The file's name has no
/// `.toml`, so the id-matches-file-name rule does not apply and a well-formed entry can pass; `related` ids can only
/// dangle (the entry is alone).
pub fn catalog_entry(data: &[u8]) {
    let entry = SourceFile {
        path: "fuzzed-entry".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    let taxonomy = &embedded_sources().taxonomy;
    check_catalog(taxonomy, std::slice::from_ref(&entry));
}

/// The input as `taxonomy.toml`, with three embedded entries (the first, middle and last by path, their `related`
/// lines left out) placed in it.
pub fn catalog_taxonomy(data: &[u8]) {
    static ENTRIES: OnceLock<Vec<SourceFile>> = OnceLock::new();
    let entries = ENTRIES.get_or_init(|| {
        let all = &embedded_sources().entries;
        [0, all.len() / 2, all.len() - 1]
            .map(|i| SourceFile {
                path: all[i].path.clone(),
                text: all[i]
                    .text
                    .lines()
                    .filter(|line| !line.starts_with("related"))
                    .map(|line| format!("{line}\n"))
                    .collect(),
            })
            .to_vec()
    });
    let taxonomy = SourceFile {
        path: "taxonomy.toml".into(),
        text: String::from_utf8_lossy(data).into_owned(),
    };
    check_catalog(&taxonomy, entries);
}

/// Validation either succeeds, and then every export works and the JSON export reads back as the same catalog, or
/// it fails with diagnostics that point into the fuzzed files and render.
fn check_catalog(taxonomy: &SourceFile, entries: &[SourceFile]) {
    match Catalog::from_files(taxonomy, entries, WORKSPACE_CRATES) {
        Ok(catalog) => {
            assert_eq!(catalog.entries.len(), entries.len());
            let json = rice_catalog::export::json(&catalog);
            let back: Catalog = serde_json::from_str(&json).expect("the JSON export reads back");
            assert_eq!(back, catalog, "the JSON export round-trips");
            let keys = rice_catalog::export::CitationKeys::new(&catalog);
            for paper in catalog.papers() {
                let key = keys.key(paper);
                assert!(
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "BibTeX key {key:?}"
                );
            }
            let bibtex = rice_catalog::export::bibtex(&catalog);
            assert_eq!(bibtex.is_empty(), catalog.papers().is_empty());
            let csv = rice_catalog::export::csv(&catalog);
            assert!(csv.lines().count() > catalog.entries.len());
        }
        Err(Diagnostics(found)) => {
            assert!(!found.is_empty(), "an invalid catalog names a problem");
            for d in &found {
                let file = std::iter::once(taxonomy)
                    .chain(entries)
                    .find(|f| f.path == d.file)
                    .unwrap_or_else(|| panic!("a diagnostic for an unknown file: {d:?}"));
                assert!(
                    d.line >= 1 && d.line <= file.text.split('\n').count(),
                    "{d:?}"
                );
                assert!(d.column >= 1 && d.width >= 1, "{d:?}");
                assert!(!d.message.is_empty(), "{d:?}");
                assert!(d.to_string().starts_with(&d.location()));
            }
            let _ = Diagnostics(found).to_string();
        }
    }
}

// ── Search ──────────────────────────────────────────────────────────────────────────────────────────────────────

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let catalog = Catalog::embedded().expect("the embedded catalog is valid");
        Site::new(catalog, SiteOptions::default()).expect("the search index builds")
    })
}

/// The input as query text (`rice search TEXT`, `/api/search?q=…`), and as a raw query string through the server's
/// parameter parser. Query text never makes search fail; parameters fail only as a 400 that names them.
pub fn search_query(data: &[u8]) {
    let site = site();
    let text = String::from_utf8_lossy(data);

    let results = site
        .search
        .search(&SearchRequest::query(text.as_ref()))
        .unwrap_or_else(|e| panic!("search failed on query text {text:?}: {e}"));
    check_results(&results, 10);

    let pairs = rice_server::query_pairs(Some(&text));
    match rice_server::parse_request(site, &pairs, rice_server::SEARCH_PARAMS) {
        Ok(request) => match rice_server::run_search(site, &request) {
            Ok(results) => check_results(&results, request.limit),
            Err(e) => assert!(
                matches!(e, AppError::BadParameter { .. }),
                "a parsed request failed with {e:?}"
            ),
        },
        Err(e) => assert!(
            matches!(&e, AppError::BadParameter { parameter, .. } if !parameter.is_empty()),
            "the parser failed with {e:?}"
        ),
    }
}

fn check_results(results: &rice_search::SearchResults, limit: usize) {
    assert!(results.hits.len() <= limit);
    assert!(results.hits.len() <= results.total.saturating_sub(results.offset));
    for hit in &results.hits {
        assert_escaped(&hit.title_html);
        assert_escaped(&hit.snippet_html);
    }
}

/// HTML-escaped text in which `<mark>` and `</mark>` are the only markup.
fn assert_escaped(html: &str) {
    let bare = html.replace("<mark>", "").replace("</mark>", "");
    assert!(
        !bare.contains(['<', '>', '"', '\'']),
        "unescaped markup in {html:?}"
    );
    for (i, _) in bare.match_indices('&') {
        let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"];
        assert!(
            entity.iter().any(|e| bare[i..].starts_with(e)),
            "a bare & in {html:?}"
        );
    }
}

// ── Sentence splitter ───────────────────────────────────────────────────────────────────────────────────────────

/// Texts longer than this skip the check of every prefix (quadratic), not the other checks.
const PREFIX_CHECK_BYTES: usize = 1024;

/// The properties of `tests/split.rs` on any text: offsets are character boundaries after a non-empty sentence,
/// the sentences are trimmed, non-empty, whole (splitting one again gives it back), and concatenate back to the
/// input up to whitespace; a boundary found while streaming is the boundary of every extension of the text.
pub fn split_sentences(data: &[u8]) {
    use rice_stream_aligner::split::{
        first_sentence_end, is_sentence_complete, split_first, split_sentences,
    };
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let without_whitespace = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();

    for complete in [false, true] {
        if let Some(end) = first_sentence_end(text, complete) {
            assert!(
                end <= text.len() && text.is_char_boundary(end),
                "{end} in {text:?}"
            );
            assert!(
                !text[..end].trim().is_empty(),
                "empty sentence before {end} in {text:?}"
            );
        }
        match split_first(text, complete) {
            Some((sentence, rest)) => {
                assert!(
                    !sentence.is_empty() && sentence.trim() == sentence,
                    "{text:?}"
                );
                assert_eq!(rest.trim_start(), rest, "{text:?}");
                assert_eq!(
                    without_whitespace(&format!("{sentence}{rest}")),
                    without_whitespace(text)
                );
            }
            None => assert!(!complete || text.trim().is_empty(), "{text:?}"),
        }
    }
    assert_eq!(
        is_sentence_complete(text),
        first_sentence_end(text, false).is_some()
    );

    let pieces = split_sentences(text);
    for piece in &pieces {
        assert!(
            !piece.is_empty() && piece.trim() == piece,
            "{piece:?} of {text:?}"
        );
        assert_eq!(
            split_sentences(piece),
            vec![piece.clone()],
            "piece of {text:?}"
        );
    }
    assert_eq!(
        without_whitespace(&pieces.concat()),
        without_whitespace(text)
    );

    let streamed = first_sentence_end(text, false);
    if let Some(end) = streamed {
        assert_eq!(
            first_sentence_end(text, true),
            Some(end),
            "complete vs streaming on {text:?}"
        );
    }
    if text.len() <= PREFIX_CHECK_BYTES {
        let cuts = text.char_indices().map(|(i, _)| i).chain([text.len()]);
        for cut in cuts {
            if let Some(end) = first_sentence_end(&text[..cut], false) {
                assert_eq!(streamed, Some(end), "prefix {:?} of {text:?}", &text[..cut]);
                break;
            }
        }
    }
}

// ── Toy-world oracle ────────────────────────────────────────────────────────────────────────────────────────────

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    // The size `rice toyworld score` uses: it holds every prompt of the small world too.
    WORLD.get_or_init(|| World::generate(DEFAULT_SEED, Size::Medium))
}

/// `World::score` and `World::critique` on any prompt and response. The first byte chooses how the input is read:
/// even, the next two bytes pick one of the world's prompts and the rest is the response (so that the fuzzer
/// reaches every family's rules); odd, the rest is `prompt NUL response`. The score is in range, and the critique
/// complains exactly when the score is below ideal.
pub fn oracle(data: &[u8]) {
    let world = world();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (prompt, response) = if mode % 2 == 0 && rest.len() >= 2 {
        let i = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % world.items.len();
        (
            world.items[i].prompt.clone(),
            String::from_utf8_lossy(&rest[2..]).into_owned(),
        )
    } else {
        let (prompt, response) = match rest.iter().position(|&b| b == 0) {
            Some(nul) => (&rest[..nul], &rest[nul + 1..]),
            None => (rest, &[][..]),
        };
        (
            String::from_utf8_lossy(prompt).into_owned(),
            String::from_utf8_lossy(response).into_owned(),
        )
    };

    let s = world.score(&prompt, &response);
    assert!((0.0..=1.0).contains(&s.helpfulness), "{s:?}");
    assert!(s.cost.is_finite(), "{s:?}");
    assert_eq!(s.is_unsafe, s.cost > 0.0, "{s:?}");
    // An unknown prompt may still be graded (an arithmetic one in the world's template); a known one always is.
    let item = world.find(&prompt);
    if let Some(item) = item {
        assert_eq!(s.family, Some(item.family));
    }

    let c = world.critique(&prompt, &response);
    assert!(!c.text.is_empty());
    if item.is_some() {
        assert_eq!(
            c.problems.is_empty(),
            s.helpfulness >= 1.0 && !s.is_unsafe,
            "prompt {prompt:?}, response {response:?}: {s:?} but {:?}",
            c.text
        );
        assert!(c.refinement.is_some());
    }
}

// ── JSONL dataset readers ───────────────────────────────────────────────────────────────────────────────────────

/// Every JSONL reader on the same bytes: each record type of `rice_lm::text` and of the toy world that a method
/// reads, SFT data (with its `messages` form), and the evaluation prompts. Errors name the file and a line that
/// exists; a successful read has one record per non-blank line.
pub fn jsonl_readers(data: &[u8]) {
    use rice_lm::text::{
        CorrectionTriple, PreferencePair, SafetyPair, SentenceCorrection, SftExample, parse_jsonl,
        parse_sft,
    };
    let path = Path::new("fuzzed.jsonl");
    let lines = data.split(|b| *b == b'\n').count();
    let records = data
        .split(|b| *b == b'\n')
        .filter(|l| std::str::from_utf8(l).map_or(true, |l| !l.trim().is_empty()))
        .count();

    fn check<T>(
        result: Result<Vec<T>, rice_lm::text::TextError>,
        lines: usize,
        records: usize,
        exact: bool,
    ) {
        match result {
            Ok(read) => {
                assert!(!read.is_empty());
                if exact {
                    assert_eq!(read.len(), records);
                } else {
                    assert!(read.len() <= records);
                }
            }
            Err(e) => {
                if let rice_lm::text::TextError::Record { line, .. } = &e {
                    assert!((1..=lines).contains(line), "line {line} of {lines}: {e}");
                }
                assert!(e.to_string().starts_with("fuzzed.jsonl"), "{e}");
            }
        }
    }
    check(
        parse_jsonl::<serde_json::Value>(data, path),
        lines,
        records,
        true,
    );
    check(parse_jsonl::<SftExample>(data, path), lines, records, true);
    check(
        parse_jsonl::<PreferencePair>(data, path),
        lines,
        records,
        true,
    );
    check(parse_jsonl::<SafetyPair>(data, path), lines, records, true);
    check(
        parse_jsonl::<CorrectionTriple>(data, path),
        lines,
        records,
        true,
    );
    check(
        parse_jsonl::<SentenceCorrection>(data, path),
        lines,
        records,
        true,
    );
    check(
        parse_jsonl::<rice_toyworld::LlfExample>(data, path),
        lines,
        records,
        true,
    );
    check(parse_sft(data, path), lines, records, true);
    match rice_eval::answers::parse_prompts(data, path) {
        Ok(prompts) => assert_eq!(prompts.len(), records),
        Err(e) => assert!(e.to_string().contains("fuzzed.jsonl"), "{e}"),
    }
}

// ── OpenAI-compatible request ───────────────────────────────────────────────────────────────────────────────────

/// The body of `POST /v1/chat/completions` through the servers' own parser. It is refused with a client error (4xx,
/// with a message), or accepted as a request the backends can honour, which reads back the same once serialised
/// (the correcting proxy forwards it upstream that way).
pub fn openai_request(data: &[u8]) {
    use rice_aligner::openai::parse_request;
    match parse_request(data) {
        Ok(request) => {
            assert!(!request.messages.is_empty());
            assert!(request.n.is_none_or(|n| n == 1));
            assert!(request.temperature.is_none_or(|t| (0.0..=2.0).contains(&t)));
            assert!(request.top_p.is_none_or(|p| p > 0.0 && p <= 1.0));
            let body = serde_json::to_vec(&request).expect("a request serialises");
            let back = parse_request(&body).unwrap_or_else(|e| {
                panic!(
                    "{} does not read back: {}",
                    String::from_utf8_lossy(&body),
                    e.message()
                )
            });
            // Floats may move by an ulp through JSON (serde_json parses them fast, not exactly).
            let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-12,
                (a, b) => a == b,
            };
            assert!(
                close(request.temperature, back.temperature),
                "{request:?} vs {back:?}"
            );
            assert!(close(request.top_p, back.top_p), "{request:?} vs {back:?}");
            let strip = |r: &rice_aligner::openai::ChatRequest| rice_aligner::openai::ChatRequest {
                temperature: None,
                top_p: None,
                ..r.clone()
            };
            assert_eq!(strip(&request), strip(&back));
        }
        Err(e) => {
            assert!(
                e.status().is_client_error(),
                "{} for {:?}",
                e.status(),
                e.message()
            );
            assert!(!e.message().is_empty());
        }
    }
}
