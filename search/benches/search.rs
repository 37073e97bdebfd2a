//! Search benchmark: index build time and query latency (p50/p99) over a fixed query mix, on the built-in catalog
//! and on a synthetic catalog 100 times larger, to show how cost grows. One thread throughout.
//!
//! Run: `cargo bench -p rice-search --bench search` (prints a Markdown table for BENCHMARKS.md).
//! `RICE_BENCH_QUICK=1` runs fewer repetitions (for a smoke test); `RICE_BENCH_DETAIL=1` adds per-query medians;
//! `RICE_BENCH_BUILTIN_ONLY=1` skips the large catalog (for profiling queries with `perf record`).

use std::time::{Duration, Instant};

use rice_catalog::{Catalog, Kind, Principle};
use rice_search::{Document, SearchIndex, SearchRequest};

/// The query mix: acronyms, names, phrases, questions, typos, half-typed words, filters, and an empty browse.
fn query_mix() -> Vec<SearchRequest> {
    let texts = [
        "IDA",
        "DPO",
        "RLHF",
        "reward hacking",
        "reward hackng",
        "interpretabilty",
        "constitutonal ai",
        "\"reward model\"",
        "scalable overs",
        "mechanistic interp",
        "how do reward models learn from comparisons",
        "why does alignment get undone by fine-tuning",
        "invariant risk minimization penalty",
        "dpo\" OR (",
        "red teaming language models",
        "goal misgeneralisation",
    ];
    let mut mix: Vec<SearchRequest> = texts.iter().map(|q| SearchRequest::query(*q)).collect();
    mix.push(SearchRequest {
        rice: Some(Principle::Robustness),
        ..SearchRequest::query("adversarial")
    });
    mix.push(SearchRequest {
        kind: Some(Kind::Method),
        place: Some("forward".into()),
        ..SearchRequest::query("preference")
    });
    mix.push(SearchRequest::query(""));
    mix.push(SearchRequest {
        offset: 20,
        limit: 20,
        ..SearchRequest::query("alignment")
    });
    mix
}

/// `copies` variants of every entry: same place, kind and principles; ids and a few words made unique so that the
/// vocabulary and postings grow like a real, larger catalog.
fn synthetic(catalog: &Catalog, copies: usize) -> Vec<Document> {
    let base = SearchIndex::entry_documents(catalog);
    let mut out = Vec::with_capacity(base.len() * copies);
    for k in 0..copies {
        for d in &base {
            let mut d = d.clone();
            d.id = format!("{}-{k}", d.id);
            d.title = format!("{} variant {k}", d.title);
            d.summary = format!("{} Variant marker v{k}x{}.", d.summary, d.id.len());
            // Rotate the body's sentences so that copies are not identical documents.
            let sentences: Vec<&str> = d.body.split(". ").collect();
            let r = k % sentences.len().max(1);
            d.body = [&sentences[r..], &sentences[..r]].concat().join(". ");
            d.url = format!("/entries/{}", d.id);
            out.push(d);
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn measure(name: &str, documents: &[Document], builds: usize, rounds: usize) {
    let mut build_times = Vec::new();
    let mut index = None;
    for _ in 0..builds {
        let started = Instant::now();
        index = Some(SearchIndex::build_from(documents, None).expect("index builds"));
        build_times.push(started.elapsed());
    }
    build_times.sort();
    let index = index.expect("at least one build");
    let mix = query_mix();
    for request in &mix {
        index.search(request).expect("warm-up");
    }
    let mut latencies = Vec::with_capacity(mix.len() * rounds);
    let mut by_query: Vec<(String, Vec<Duration>)> =
        mix.iter().map(|r| (r.q.clone(), Vec::new())).collect();
    for _ in 0..rounds {
        for (i, request) in mix.iter().enumerate() {
            let started = Instant::now();
            let results = index.search(request).expect("search");
            let took = started.elapsed();
            std::hint::black_box(results);
            latencies.push(took);
            by_query[i].1.push(took);
        }
    }
    latencies.sort();
    let baseline = stock_tantivy(&index, &mix, rounds);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let p50 = percentile(&latencies, 0.5);
    println!(
        "| {name} | {} | {:.1} ms | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.1}× |",
        documents.len(),
        build_times[build_times.len() / 2].as_secs_f64() * 1e3,
        us(p50),
        us(percentile(&latencies, 0.99)),
        us(latencies.iter().sum::<Duration>() / latencies.len() as u32),
        us(baseline),
        p50.as_secs_f64() / baseline.as_secs_f64(),
    );
    if std::env::var_os("RICE_BENCH_DETAIL").is_some() {
        for (q, mut times) in by_query {
            times.sort();
            eprintln!("    {:>8.0} µs  {q:?}", us(percentile(&times, 0.5)));
        }
    }
}

/// The baseline: stock tantivy on the same index and queries — `QueryParser::parse_query_lenient` over the text
/// fields, top 10 by BM25 and tantivy's own `SnippetGenerator` — without typo correction, completion, facet counts
/// or our highlighting. Returns its p50.
fn stock_tantivy(index: &SearchIndex, mix: &[SearchRequest], rounds: usize) -> Duration {
    use tantivy::collector::TopDocs;
    use tantivy::query::QueryParser;
    use tantivy::snippet::SnippetGenerator;
    let tantivy = index.tantivy_index();
    let schema = tantivy.schema();
    let field = |name: &str| schema.get_field(name).expect("field exists");
    let parser = QueryParser::for_index(
        tantivy,
        vec![
            field("title"),
            field("aliases"),
            field("summary"),
            field("body"),
        ],
    );
    let searcher = tantivy.reader().expect("reader").searcher();
    let mut times = Vec::new();
    for _ in 0..rounds {
        for request in mix {
            let started = Instant::now();
            let (query, _) = parser.parse_query_lenient(&request.q);
            let top = searcher
                .search(&query, &TopDocs::with_limit(10).order_by_score())
                .expect("search");
            let generator =
                SnippetGenerator::create(&searcher, &*query, field("summary")).expect("snippets");
            for (_, address) in top {
                let doc: tantivy::TantivyDocument = searcher.doc(address).expect("doc");
                std::hint::black_box(generator.snippet_from_doc(&doc).to_html());
            }
            times.push(started.elapsed());
        }
    }
    times.sort();
    percentile(&times, 0.5)
}

fn main() {
    let quick = std::env::var_os("RICE_BENCH_QUICK").is_some();
    let catalog = Catalog::embedded().expect("the built-in catalog is valid");
    let real = SearchIndex::entry_documents(&catalog);
    println!(
        "Search benchmark: {} queries in the mix, one thread.\n",
        query_mix().len()
    );
    println!(
        "| catalog | documents | index build (median) | query p50 | query p99 | query mean | stock tantivy p50 | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    measure(
        "built-in",
        &real,
        if quick { 2 } else { 10 },
        if quick { 20 } else { 300 },
    );
    if std::env::var_os("RICE_BENCH_BUILTIN_ONLY").is_some() {
        return;
    }
    let large = synthetic(&catalog, 100);
    measure(
        "synthetic ×100",
        &large,
        if quick { 1 } else { 3 },
        if quick { 3 } else { 30 },
    );
}
