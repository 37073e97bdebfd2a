//! RICE Atlas search: one tantivy index over catalog entries and book sections.
//!
//! What it is for: answering what people type into a search box — acronyms, questions, phrases, misspellings,
//! half-typed words — with ranked, highlighted, filterable results and facet counts, in well under a millisecond
//! for the built-in catalog. Queries never fail on user syntax.
//!
//! What it is not for: rendering pages (the server does that) or storing the catalog (it reads a
//! [`rice_catalog::Catalog`]).
//!
//! How a query is answered ([`SearchIndex::search`]):
//! 1. the text is parsed leniently (tantivy's `parse_query_lenient`: phrases, `AND`/`OR`/`-`, never an error) over
//!    stemmed fields with boosts — title and aliases above summary above body — and ranked by BM25;
//! 2. a word of five letters or more that the catalog does not contain is corrected against the catalog's
//!    vocabulary (one edit from five letters, two from nine — Meilisearch's rule) and the corrections are searched
//!    too, at a lower weight, so exact matches still rank first;
//! 3. the last word, unless followed by a space, is also completed to the most frequent words it begins
//!    (search-as-you-type);
//! 4. filters (taxonomy subtree, RICE principle, kind, has-implementation, document type) are ANDed on top;
//! 5. facet counts are computed for the filtered result set, hits are paginated and get HTML-escaped snippets with
//!    `<mark>`.

mod highlight;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rice_catalog::{Catalog, Entry, Kind, Principle};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, QueryParser,
    TermQuery,
};
use tantivy::schema::{
    FAST, Facet, FacetOptions, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{TextAnalyzer, TokenStream};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

pub use highlight::escape as escape_html;

/// The most hits one page may hold.
pub const MAX_LIMIT: usize = 100;
/// Query text beyond this many bytes is ignored (a search box never needs more; 10 kB pastes still work).
pub const MAX_QUERY_BYTES: usize = 1_000;
/// A book section's score is multiplied by this: a section that matches as well as an entry ranks below it, since
/// the entry is the atlas's answer and the section a place to read more. Sections that match much better (a word
/// only the book uses) still come first.
pub const SECTION_WEIGHT: f32 = 0.5;
/// At most this many distinct words get typo and prefix matching.
const MAX_FUZZY_WORDS: usize = 12;
const SNIPPET_CHARS: usize = 180;
/// The analyzer of the stemmed fields: words, lowercased, English stop words removed, stemmed.
const SEARCH_ANALYZER: &str = "en_search";
/// Function words that carry no meaning in a search ("how do reward models work" searches reward, models, work).
/// Our own short list: acronyms such as "AI" or "IT" must stay searchable.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "did", "do", "does", "for",
    "from", "get", "has", "have", "how", "i", "if", "in", "into", "is", "its", "me", "my", "of",
    "on", "or", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will",
    "with", "would", "you", "your",
];

fn register_analyzers(index: &Index) {
    use tantivy::tokenizer::{
        Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter,
    };
    let analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(
            STOP_WORDS.iter().map(|w| (*w).to_owned()),
        ))
        .filter(Stemmer::new(Language::English))
        .build();
    index.tokenizers().register(SEARCH_ANALYZER, analyzer);
}

/// Every distinct word of the indexed text with its document frequency, sorted: the dictionary that typos are
/// corrected against and that half-typed words are completed from.
struct Vocabulary {
    words: Vec<(String, u32)>,
    /// Indices into `words` by word length in bytes, so corrections only look at words of a possible length.
    by_length: Vec<Vec<u32>>,
}

impl Vocabulary {
    fn read(reader: &IndexReader, field: Field) -> Result<Vocabulary, SearchError> {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let searcher = reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field)?;
            let mut stream = inverted
                .terms()
                .stream()
                .map_err(|e| SearchError::Index(e.to_string()))?;
            while stream.advance() {
                if let Ok(word) = std::str::from_utf8(stream.key()) {
                    *counts.entry(word.to_owned()).or_default() += stream.value().doc_freq;
                }
            }
        }
        let words: Vec<(String, u32)> = counts.into_iter().collect();
        let mut by_length: Vec<Vec<u32>> = Vec::new();
        for (i, (w, _)) in words.iter().enumerate() {
            if by_length.len() <= w.len() {
                by_length.resize(w.len() + 1, Vec::new());
            }
            by_length[w.len()].push(i as u32);
        }
        Ok(Vocabulary { words, by_length })
    }

    fn contains(&self, word: &str) -> bool {
        self.words
            .binary_search_by(|(w, _)| w.as_str().cmp(word))
            .is_ok()
    }

    /// Up to `max` words within `budget` edits of `word`: fewest edits first, then the most frequent.
    fn corrections(&self, word: &str, budget: u8, max: usize) -> Vec<(String, usize)> {
        // A character is at most 4 bytes, so byte lengths bound the candidates for any script.
        let slack = budget as usize * if word.is_ascii() { 1 } else { 4 };
        let lengths = word.len().saturating_sub(slack)..=word.len() + slack;
        let mut found: Vec<(usize, u32, &str)> = lengths
            .filter_map(|len| self.by_length.get(len))
            .flatten()
            .filter_map(|&i| {
                let (w, df) = &self.words[i as usize];
                highlight::edit_distance_within(w, word, budget as usize)
                    .map(|d| (d, *df, w.as_str()))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        found
            .into_iter()
            .take(max)
            .map(|(d, _, w)| (w.to_owned(), d))
            .collect()
    }

    /// Up to `max` of the most frequent words that begin with `prefix` and are longer than it.
    fn completions(&self, prefix: &str, max: usize) -> Vec<String> {
        let start = self.words.partition_point(|(w, _)| w.as_str() < prefix);
        let mut found: Vec<&(String, u32)> = self.words[start..]
            .iter()
            .take_while(|(w, _)| w.starts_with(prefix))
            .filter(|(w, _)| w != prefix)
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found
            .into_iter()
            .take(max)
            .map(|(w, _)| w.clone())
            .collect()
    }
}

/// What a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocType {
    /// A catalog entry.
    Entry,
    /// A section of the course book (split at headings).
    Section,
}

impl DocType {
    pub fn as_str(self) -> &'static str {
        match self {
            DocType::Entry => "entry",
            DocType::Section => "section",
        }
    }
}

/// One searchable document: a catalog entry or a book section.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub doc_type: DocType,
    /// Entry id, or a section id such as `chapters/rlhf#the-objective`.
    pub id: String,
    pub title: String,
    pub aliases: Vec<String>,
    pub summary: String,
    /// Plain text (Markdown markers removed).
    pub body: String,
    /// A taxonomy path; empty when the document has none.
    pub place: String,
    pub rice_primary: Vec<Principle>,
    pub rice_secondary: Vec<Principle>,
    pub kind: Option<Kind>,
    /// Year of the earliest paper, if any.
    pub year: Option<u16>,
    pub has_implementation: bool,
    /// Where the document is read on the site, e.g. `/entries/dpo`.
    pub url: String,
}

impl Document {
    pub fn from_entry(e: &Entry) -> Document {
        Document {
            doc_type: DocType::Entry,
            id: e.id.clone(),
            title: e.name.clone(),
            aliases: e.aliases.clone(),
            summary: e.summary.clone(),
            body: plain_text(&e.body),
            place: e.place.clone(),
            rice_primary: e.rice.primary.clone(),
            rice_secondary: e.rice.secondary.clone(),
            kind: Some(e.kind),
            year: e.papers.iter().map(|p| p.year).min(),
            has_implementation: e.implementation.is_some(),
            url: format!("/entries/{}", e.id),
        }
    }
}

/// Markdown to searchable plain text: drops heading, emphasis and code markers; keeps words and math.
pub fn plain_text(markdown: &str) -> String {
    markdown
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n")
        .replace(['*', '`'], "")
}

/// A search: the query text, filters (ANDed), and the page wanted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchRequest {
    pub q: String,
    /// Taxonomy subtree, e.g. `forward/learning-from-feedback`.
    pub place: Option<String>,
    /// Documents serving this principle (primary or secondary).
    pub rice: Option<Principle>,
    pub kind: Option<Kind>,
    pub has_implementation: Option<bool>,
    #[serde(rename = "type")]
    pub doc_type: Option<DocType>,
    /// 1 to [`MAX_LIMIT`].
    pub limit: usize,
    pub offset: usize,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            q: String::new(),
            place: None,
            rice: None,
            kind: None,
            has_implementation: None,
            doc_type: None,
            limit: 10,
            offset: 0,
        }
    }
}

impl SearchRequest {
    pub fn query(q: impl Into<String>) -> SearchRequest {
        SearchRequest {
            q: q.into(),
            ..SearchRequest::default()
        }
    }
}

/// A request that cannot be answered as asked. Query *text* never produces one; only parameters do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    #[error("`{name}` {problem}")]
    InvalidParameter { name: &'static str, problem: String },
    #[error("search index: {0}")]
    Index(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(e.to_string())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchResults {
    /// The query as searched (after truncation to [`MAX_QUERY_BYTES`]).
    pub q: String,
    /// How many documents match (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub hits: Vec<Hit>,
    pub facets: FacetCounts,
    /// Time spent answering, in microseconds.
    pub took_us: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub doc_type: DocType,
    pub id: String,
    pub title: String,
    /// The title, HTML-escaped, with matches in `<mark>`.
    pub title_html: String,
    pub url: String,
    pub place: String,
    pub kind: Option<Kind>,
    pub rice_primary: Vec<Principle>,
    pub rice_secondary: Vec<Principle>,
    pub year: Option<u16>,
    pub has_implementation: bool,
    /// HTML-escaped text around the best match, with matches in `<mark>`.
    pub snippet_html: String,
    pub score: f32,
}

/// Counts of matching documents per facet value, for the current query and filters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FacetCounts {
    /// Per taxonomy path (every level), documents placed there or below.
    pub place: BTreeMap<String, u64>,
    pub rice: BTreeMap<Principle, u64>,
    pub kind: BTreeMap<Kind, u64>,
    pub has_implementation: BTreeMap<bool, u64>,
    #[serde(rename = "type")]
    pub doc_type: BTreeMap<DocType, u64>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    doc_type: Field,
    title: Field,
    aliases: Field,
    summary: Field,
    body: Field,
    /// Title and aliases, unstemmed: an exact name ("Aligner") outranks words that merely share its stem ("alignment").
    names: Field,
    /// Every word of the document, unstemmed: the vocabulary that typos are corrected against.
    words: Field,
    place: Field,
    rice: Field,
    rice_primary: Field,
    rice_secondary: Field,
    kind: Field,
    has_implementation: Field,
    year: Field,
    url: Field,
    /// Position of the document in [`SearchIndex::documents`].
    ord: Field,
}

/// The schema: stemmed text fields for BM25 (stored, for display and snippets), one unstemmed field whose term
/// dictionary is the vocabulary for typo correction and completion, facets for filters and counts, display fields.
fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |tokenizer: &str, stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        doc_type: b.add_facet_field("type", FacetOptions::default().set_stored()),
        title: b.add_text_field("title", text(SEARCH_ANALYZER, true)),
        aliases: b.add_text_field("aliases", text(SEARCH_ANALYZER, true)),
        summary: b.add_text_field("summary", text(SEARCH_ANALYZER, true)),
        body: b.add_text_field("body", text(SEARCH_ANALYZER, true)),
        names: b.add_text_field("names", text("default", false)),
        words: b.add_text_field("words", text("default", false)),
        place: b.add_facet_field("place", FacetOptions::default().set_stored()),
        rice: b.add_facet_field("rice", FacetOptions::default()),
        rice_primary: b.add_text_field("rice_primary", STRING | STORED),
        rice_secondary: b.add_text_field("rice_secondary", STRING | STORED),
        kind: b.add_facet_field("kind", FacetOptions::default().set_stored()),
        has_implementation: b.add_facet_field("implemented", FacetOptions::default().set_stored()),
        year: b.add_u64_field("year", STORED),
        url: b.add_text_field("url", STORED),
        ord: b.add_u64_field("ord", FAST),
    };
    (b.build(), fields)
}

fn facet(path: &str) -> Facet {
    Facet::from_text(&format!("/{path}")).unwrap_or_else(|_| Facet::root())
}

/// The search index and everything needed to answer queries. Cheap to share across threads.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
    raw: TextAnalyzer,
    stem: TextAnalyzer,
    /// Every document, by its `ord`: hits are filled from here, not from tantivy's compressed store.
    documents: Vec<Document>,
    /// Every taxonomy path that some document is placed at or below, and for each document (by `ord`) the
    /// indices of its place and the place's ancestors: facet counting is then array increments.
    places: Vec<String>,
    place_ancestors: Vec<Vec<u16>>,
    /// By `ord`: the factor a document's score is multiplied by (see [`SECTION_WEIGHT`]).
    weights: std::sync::Arc<Vec<f32>>,
    vocabulary: Vocabulary,
}

impl SearchIndex {
    /// Builds an in-memory index of every catalog entry.
    pub fn build(catalog: &Catalog) -> Result<SearchIndex, SearchError> {
        Self::build_from(&Self::entry_documents(catalog), None)
    }

    /// The catalog's entries as documents.
    pub fn entry_documents(catalog: &Catalog) -> Vec<Document> {
        catalog.entries.iter().map(Document::from_entry).collect()
    }

    /// Builds an index of `documents` in RAM, or in `dir` (created, must be empty) when given.
    pub fn build_from(
        documents: &[Document],
        dir: Option<&Path>,
    ) -> Result<SearchIndex, SearchError> {
        let (schema, f) = schema();
        let index = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| SearchError::Index(format!("{}: {e}", dir.display())))?;
                Index::create_in_dir(dir, schema)?
            }
            None => Index::create_in_ram(schema),
        };
        register_analyzers(&index);
        let mut writer = index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000)?;
        for (ord, d) in documents.iter().enumerate() {
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.ord, ord as u64);
            doc.add_text(f.id, &d.id);
            doc.add_facet(f.doc_type, facet(d.doc_type.as_str()));
            doc.add_text(f.names, &d.title);
            for (field, text) in [
                (f.title, &d.title),
                (f.summary, &d.summary),
                (f.body, &d.body),
            ] {
                doc.add_text(field, text);
                doc.add_text(f.words, text);
            }
            for alias in &d.aliases {
                doc.add_text(f.aliases, alias);
                doc.add_text(f.names, alias);
                doc.add_text(f.words, alias);
            }
            if !d.place.is_empty() {
                doc.add_facet(f.place, facet(&d.place));
            }
            for p in d.rice_primary.iter().chain(&d.rice_secondary) {
                doc.add_facet(f.rice, facet(p.as_str()));
            }
            for p in &d.rice_primary {
                doc.add_text(f.rice_primary, p.as_str());
            }
            for p in &d.rice_secondary {
                doc.add_text(f.rice_secondary, p.as_str());
            }
            if let Some(kind) = d.kind {
                doc.add_facet(f.kind, facet(kind.as_str()));
            }
            doc.add_facet(
                f.has_implementation,
                facet(if d.has_implementation { "yes" } else { "no" }),
            );
            if let Some(year) = d.year {
                doc.add_u64(f.year, u64::from(year));
            }
            doc.add_text(f.url, &d.url);
            writer.add_document(doc)?;
        }
        writer.commit()?;
        Self::from_index(index, documents.to_vec())
    }

    /// Opens an index written by [`SearchIndex::build_from`] with a directory.
    pub fn open(dir: &Path) -> Result<SearchIndex, SearchError> {
        let index = Index::open_in_dir(dir)?;
        let documents = read_documents(&index)?;
        Self::from_index(index, documents)
    }

    fn from_index(index: Index, documents: Vec<Document>) -> Result<SearchIndex, SearchError> {
        register_analyzers(&index);
        let (_, fields) = schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let f = fields;
        let mut parser =
            QueryParser::for_index(&index, vec![f.names, f.title, f.aliases, f.summary, f.body]);
        parser.set_field_boost(f.names, 3.0);
        parser.set_field_boost(f.title, 3.0);
        parser.set_field_boost(f.aliases, 4.0);
        parser.set_field_boost(f.summary, 1.5);
        let raw = index
            .tokenizers()
            .get("default")
            .ok_or_else(|| SearchError::Index("no default tokenizer".into()))?;
        let stem = index
            .tokenizers()
            .get("en_stem")
            .ok_or_else(|| SearchError::Index("no en_stem tokenizer".into()))?;
        let vocabulary = Vocabulary::read(&reader, fields.words)?;
        let mut places: Vec<String> = Vec::new();
        let place_ancestors = documents
            .iter()
            .map(|d| {
                let mut ids = Vec::new();
                let mut end = 0;
                while !d.place.is_empty() && end < d.place.len() {
                    end = d.place[end..].find('/').map_or(d.place.len(), |i| end + i);
                    let prefix = &d.place[..end];
                    let id = places.iter().position(|p| p == prefix).unwrap_or_else(|| {
                        places.push(prefix.to_owned());
                        places.len() - 1
                    });
                    ids.push(id as u16);
                    end += 1;
                }
                ids
            })
            .collect();
        let weights = std::sync::Arc::new(
            documents
                .iter()
                .map(|d| match d.doc_type {
                    DocType::Entry => 1.0,
                    DocType::Section => SECTION_WEIGHT,
                })
                .collect(),
        );
        Ok(SearchIndex {
            index,
            reader,
            fields,
            parser,
            raw,
            stem,
            documents,
            places,
            place_ancestors,
            weights,
            vocabulary,
        })
    }

    /// How many documents the index holds.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Answers a search. Any query text is accepted; only out-of-range parameters are errors.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        let started = Instant::now();
        if request.limit == 0 || request.limit > MAX_LIMIT {
            return Err(SearchError::InvalidParameter {
                name: "limit",
                problem: format!("must be between 1 and {MAX_LIMIT}, got {}", request.limit),
            });
        }
        if let Some(place) = &request.place
            && !place.split('/').all(rice_catalog::is_slug)
        {
            return Err(SearchError::InvalidParameter {
                name: "place",
                problem: format!("`{place}` is not a taxonomy path"),
            });
        }
        let q = truncate(&request.q, MAX_QUERY_BYTES);
        let mut stem = self.stem.clone();
        let mut words = self.query_words(q, &mut stem);
        let f = self.fields;

        let text_query: Box<dyn Query> = if q.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            // Exact words and phrases, BM25 over the stemmed fields.
            let (mut exact, _errors) = self.parser.parse_query_lenient(q);
            // The lenient parse can still build a query that cannot run (`title:*` asks whether a field exists,
            // which tantivy answers only for fast fields). Query text must never be an error, so such a query is
            // searched as its words alone.
            if exact
                .weight(EnableScoring::disabled_from_schema(&self.index.schema()))
                .is_err()
            {
                let words: String = q
                    .chars()
                    .map(|c| if c.is_alphanumeric() { c } else { ' ' })
                    .collect();
                exact = self.parser.parse_query_lenient(&words).0;
            }
            let mut should: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, exact)];
            // Typos: words the catalog does not contain are corrected against its vocabulary and searched as
            // BM25 terms at a reduced weight, so a correction scores by how rare it is, below exact matches.
            // Completions: the word being typed is extended to the most frequent words it begins.
            let mut extra_words = Vec::new();
            for w in &words {
                let completions = if w.prefix && w.raw.chars().count() >= 2 {
                    self.vocabulary.completions(&w.raw, 6)
                } else {
                    Vec::new()
                };
                // A half-typed last word that completes to real words is not a typo.
                if w.typos > 0 && completions.is_empty() && !self.vocabulary.contains(&w.raw) {
                    for (correction, edits) in self.vocabulary.corrections(&w.raw, w.typos, 3) {
                        should.push((
                            Occur::Should,
                            self.word_query(
                                &correction,
                                if edits == 1 { 0.5 } else { 0.3 },
                                &mut stem,
                            ),
                        ));
                        extra_words.push(correction);
                    }
                }
                for completion in completions {
                    should.push((Occur::Should, self.word_query(&completion, 0.4, &mut stem)));
                }
            }
            for word in extra_words {
                let word_stem = stem_of(&word, &mut stem);
                words.push(highlight::QueryWord {
                    raw: word,
                    stem: word_stem,
                    typos: 0,
                    prefix: false,
                });
            }
            Box::new(BooleanQuery::new(should))
        };

        let mut must: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query)];
        let mut filter = |field: Field, value: &str| {
            let term = TermQuery::new(
                Term::from_facet(field, &facet(value)),
                IndexRecordOption::Basic,
            );
            must.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(term), 0.0)),
            ));
        };
        if let Some(place) = &request.place {
            filter(f.place, place);
        }
        if let Some(p) = request.rice {
            filter(f.rice, p.as_str());
        }
        if let Some(k) = request.kind {
            filter(f.kind, k.as_str());
        }
        if let Some(yes) = request.has_implementation {
            filter(f.has_implementation, if yes { "yes" } else { "no" });
        }
        if let Some(t) = request.doc_type {
            filter(f.doc_type, t.as_str());
        }
        let query = BooleanQuery::new(must);

        let searcher = self.reader.searcher();
        let weights = std::sync::Arc::clone(&self.weights);
        let top = TopDocs::with_limit(request.limit)
            .and_offset(request.offset)
            .tweak_score(move |segment: &tantivy::SegmentReader| {
                let ords = segment
                    .fast_fields()
                    .u64("ord")
                    .ok()
                    .map(|column| column.first_or_default_col(u64::MAX));
                let weights = std::sync::Arc::clone(&weights);
                move |doc: tantivy::DocId, score: tantivy::Score| {
                    let weight = ords
                        .as_ref()
                        .and_then(|column| weights.get(column.get_val(doc) as usize))
                        .copied()
                        .unwrap_or(1.0);
                    score * weight
                }
            });
        // Top hits from tantivy; everything that matched as `ord`s, from which the facet counts are computed in
        // memory (cheaper than tantivy's facet collectors at this size, and one pass for every facet).
        let (top, matched) = searcher.search(&query, &(top, OrdCollector))?;
        let total = matched.len();
        let mut place_counts = vec![0u64; self.places.len()];
        let mut rice_counts = [0u64; 4];
        let mut kind_counts = [0u64; Kind::ALL.len()];
        let (mut implemented, mut types) = ([0u64; 2], [0u64; 2]);
        for ord in matched {
            let Some(d) = self.documents.get(ord as usize) else {
                continue;
            };
            for &p in &self.place_ancestors[ord as usize] {
                place_counts[p as usize] += 1;
            }
            for p in d.rice_primary.iter().chain(&d.rice_secondary) {
                rice_counts[*p as usize] += 1;
            }
            if let Some(k) = d.kind {
                kind_counts[k as usize] += 1;
            }
            implemented[usize::from(d.has_implementation)] += 1;
            types[d.doc_type as usize] += 1;
        }
        let nonzero = |n: &&u64| **n > 0;
        let facets = FacetCounts {
            place: self
                .places
                .iter()
                .cloned()
                .zip(place_counts)
                .filter(|(_, n)| *n > 0)
                .collect(),
            rice: Principle::ALL
                .into_iter()
                .zip(rice_counts)
                .filter(|(_, n)| nonzero(&n))
                .collect(),
            kind: Kind::ALL
                .into_iter()
                .zip(kind_counts)
                .filter(|(_, n)| nonzero(&n))
                .collect(),
            has_implementation: [false, true]
                .into_iter()
                .zip(implemented)
                .filter(|(_, n)| nonzero(&n))
                .collect(),
            doc_type: [DocType::Entry, DocType::Section]
                .into_iter()
                .zip(types)
                .filter(|(_, n)| nonzero(&n))
                .collect(),
        };

        let ords = searcher
            .segment_readers()
            .iter()
            .map(|r| r.fast_fields().u64("ord"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ord = ords[address.segment_ord as usize].first(address.doc_id);
            let Some(d) = ord.and_then(|o| self.documents.get(o as usize)) else {
                return Err(SearchError::Index(format!(
                    "document {address:?} has no ord"
                )));
            };
            let snippet = highlight::snippet(&d.summary, &words, SNIPPET_CHARS, &mut stem)
                .or_else(|| highlight::snippet(&d.body, &words, SNIPPET_CHARS, &mut stem))
                .unwrap_or_else(|| highlight::opening(&d.summary, SNIPPET_CHARS));
            hits.push(Hit {
                doc_type: d.doc_type,
                id: d.id.clone(),
                title_html: highlight::highlight_all(&d.title, &words, &mut stem),
                title: d.title.clone(),
                url: d.url.clone(),
                place: d.place.clone(),
                kind: d.kind,
                rice_primary: d.rice_primary.clone(),
                rice_secondary: d.rice_secondary.clone(),
                year: d.year,
                has_implementation: d.has_implementation,
                snippet_html: snippet,
                score,
            });
        }
        Ok(SearchResults {
            q: q.to_owned(),
            total,
            offset: request.offset,
            limit: request.limit,
            hits,
            facets,
            took_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }

    /// `word` (unstemmed) searched in every text field with the parser's field boosts times `weight`.
    fn word_query(&self, word: &str, weight: f32, analyzer: &mut TextAnalyzer) -> Box<dyn Query> {
        let f = self.fields;
        let stem = stem_of(word, analyzer);
        let clauses: Vec<(Occur, Box<dyn Query>)> = [
            (f.title, 3.0),
            (f.aliases, 4.0),
            (f.summary, 1.5),
            (f.body, 1.0),
        ]
        .into_iter()
        .map(|(field, boost)| {
            let term = TermQuery::new(
                Term::from_field_text(field, &stem),
                IndexRecordOption::WithFreqs,
            );
            (
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(term), boost * weight)) as Box<dyn Query>,
            )
        })
        .collect();
        Box::new(BooleanQuery::new(clauses))
    }

    /// The distinct content words of the query (stop words left out), lowercased and stemmed, with their typo
    /// budgets; the last one is a prefix unless the query ends in whitespace or punctuation.
    fn query_words(&self, q: &str, stem: &mut TextAnalyzer) -> Vec<highlight::QueryWord> {
        let mut raw = self.raw.clone();
        let mut words: Vec<highlight::QueryWord> = Vec::new();
        let mut raw_stream = raw.token_stream(q);
        let mut stem_stream = stem.token_stream(q);
        while raw_stream.advance() && stem_stream.advance() {
            let r = raw_stream.token().text.clone();
            if words.iter().any(|w| w.raw == r) || STOP_WORDS.contains(&r.as_str()) {
                continue;
            }
            let s = stem_stream.token().text.clone();
            words.push(highlight::QueryWord {
                typos: highlight::typo_budget(r.chars().count()),
                raw: r,
                stem: s,
                prefix: false,
            });
            if words.len() == MAX_FUZZY_WORDS {
                break;
            }
        }
        let last_word = q
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_lowercase();
        if let Some(last) = words.last_mut()
            && !last_word.is_empty()
            && last.raw == last_word
        {
            last.prefix = true;
        }
        words
    }

    /// The tantivy index, for tools that need it (e.g. inspecting segments).
    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }
}

/// The English stem of one word (the word itself if it has none).
fn stem_of(word: &str, analyzer: &mut TextAnalyzer) -> String {
    let mut stream = analyzer.token_stream(word);
    if stream.advance() {
        stream.token().text.clone()
    } else {
        word.to_owned()
    }
}

/// Reads every stored document back (for an index opened from disk), ordered by `ord`.
fn read_documents(index: &Index) -> Result<Vec<Document>, SearchError> {
    let (_, f) = schema();
    let searcher = index.reader()?.searcher();
    let mut documents: Vec<(u64, Document)> = Vec::new();
    for (segment_ord, segment) in searcher.segment_readers().iter().enumerate() {
        let ords = segment.fast_fields().u64("ord")?;
        for doc_id in segment.doc_ids_alive() {
            let doc: TantivyDocument =
                searcher.doc(tantivy::DocAddress::new(segment_ord as u32, doc_id))?;
            let text = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let all = |field: Field| {
                doc.get_all(field)
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            };
            // Stored facets are encoded with NUL between segments.
            let facet_of = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_facet())
                    .map(|s| s.replace('\0', "/"))
                    .unwrap_or_default()
            };
            let principles =
                |field: Field| all(field).iter().filter_map(|p| p.parse().ok()).collect();
            documents.push((
                ords.first(doc_id).unwrap_or(u64::MAX),
                Document {
                    doc_type: if facet_of(f.doc_type) == "section" {
                        DocType::Section
                    } else {
                        DocType::Entry
                    },
                    id: text(f.id),
                    title: text(f.title),
                    aliases: all(f.aliases),
                    summary: text(f.summary),
                    body: text(f.body),
                    place: facet_of(f.place),
                    rice_primary: principles(f.rice_primary),
                    rice_secondary: principles(f.rice_secondary),
                    kind: facet_of(f.kind).parse().ok(),
                    year: doc
                        .get_first(f.year)
                        .and_then(|v| v.as_u64())
                        .and_then(|y| u16::try_from(y).ok()),
                    has_implementation: facet_of(f.has_implementation) == "yes",
                    url: text(f.url),
                },
            ));
        }
    }
    documents.sort_by_key(|(ord, _)| *ord);
    if documents
        .iter()
        .enumerate()
        .any(|(i, (ord, _))| *ord != i as u64)
    {
        return Err(SearchError::Index(
            "the index's documents are not numbered 0..n".into(),
        ));
    }
    Ok(documents.into_iter().map(|(_, d)| d).collect())
}

/// Collects the `ord` of every matching document.
struct OrdCollector;

struct OrdSegmentCollector {
    ords: tantivy::columnar::Column<u64>,
    found: Vec<u64>,
}

impl Collector for OrdCollector {
    type Fruit = Vec<u64>;
    type Child = OrdSegmentCollector;

    fn for_segment(
        &self,
        _segment: u32,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<OrdSegmentCollector> {
        Ok(OrdSegmentCollector {
            ords: reader.fast_fields().u64("ord")?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for OrdSegmentCollector {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        self.found.extend(self.ords.first(doc));
    }

    fn harvest(self) -> Vec<u64> {
        self.found
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
