//! Behaviour of queries and parameters: leniency, filters, facets, pagination, snippets, and the on-disk index.

use rice_catalog::{Catalog, Kind, Principle};
use rice_search::{DocType, SearchError, SearchIndex, SearchRequest};

fn index() -> (Catalog, SearchIndex) {
    let catalog = Catalog::embedded().unwrap();
    let index = SearchIndex::build(&catalog).unwrap();
    (catalog, index)
}

#[test]
fn user_syntax_never_errors() {
    let (_, index) = index();
    let long = "alignment ".repeat(1_100); // 11 kB
    for q in [
        "dpo\" OR (",
        "\"unbalanced",
        "((((",
        "AND OR NOT",
        "-",
        "+++",
        "title:",
        "foo:bar",
        "title:*", // an exists-query, which tantivy cannot run on a field that is not fast (found by proptest)
        "body:* AND names:*",
        "🙂 reward 🙂",
        "中文 élan 中",
        "*",
        "~",
        "^2",
        "a\u{0}b",
        &long,
        "",
        "   ",
    ] {
        let r = index.search(&SearchRequest::query(q));
        assert!(r.is_ok(), "{q:?}: {r:?}");
    }
    let r = index.search(&SearchRequest::query("dpo\" OR (")).unwrap();
    assert!(r.total > 0 && r.hits[0].id == "dpo", "{:?}", r.hits.first());
    assert!(
        index.search(&SearchRequest::query(&long)).unwrap().q.len() <= rice_search::MAX_QUERY_BYTES
    );
}

#[test]
fn an_empty_query_lists_everything_for_browsing_with_facets() {
    let (catalog, index) = index();
    let r = index.search(&SearchRequest::query("")).unwrap();
    assert_eq!(r.total, catalog.entries.len());
    assert_eq!(
        r.facets.place["forward"],
        catalog.entries_under("forward").count() as u64
    );
    assert_eq!(
        r.facets.place["forward/learning-from-feedback/scalable-oversight/rlxf"],
        catalog
            .entries_under("forward/learning-from-feedback/scalable-oversight/rlxf")
            .count() as u64
    );
    assert_eq!(
        r.facets.kind[&Kind::Method],
        catalog
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Method)
            .count() as u64
    );
    let with_c = catalog
        .entries
        .iter()
        .filter(|e| e.rice.contains(Principle::Controllability))
        .count() as u64;
    assert_eq!(r.facets.rice[&Principle::Controllability], with_c);
    assert_eq!(
        r.facets.doc_type[&DocType::Entry],
        catalog.entries.len() as u64
    );
}

#[test]
fn filters_combine_with_and_and_facets_follow_them() {
    let (catalog, index) = index();
    let request = SearchRequest {
        place: Some("backward/assurance".into()),
        rice: Some(Principle::Interpretability),
        kind: Some(Kind::Method),
        limit: 100,
        ..SearchRequest::query("")
    };
    let r = index.search(&request).unwrap();
    let expected: Vec<&str> = catalog
        .entries_under("backward/assurance")
        .filter(|e| e.rice.contains(Principle::Interpretability) && e.kind == Kind::Method)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(r.total, expected.len());
    assert!(!expected.is_empty());
    for hit in &r.hits {
        assert!(expected.contains(&hit.id.as_str()), "{}", hit.id);
    }
    assert_eq!(
        r.facets.kind.len(),
        1,
        "kind counts follow the kind filter: {:?}",
        r.facets.kind
    );
    assert!(r.facets.place.keys().all(|p| p.starts_with("backward")));

    let none = SearchRequest {
        has_implementation: Some(true),
        ..SearchRequest::query("")
    };
    let expected = catalog
        .entries
        .iter()
        .filter(|e| e.implementation.is_some())
        .count();
    assert_eq!(index.search(&none).unwrap().total, expected);
}

#[test]
fn pagination_is_consistent() {
    let (_, index) = index();
    let all = index
        .search(&SearchRequest {
            limit: 30,
            ..SearchRequest::query("reward")
        })
        .unwrap();
    let first = index
        .search(&SearchRequest {
            limit: 10,
            ..SearchRequest::query("reward")
        })
        .unwrap();
    let second = index
        .search(&SearchRequest {
            limit: 10,
            offset: 10,
            ..SearchRequest::query("reward")
        })
        .unwrap();
    let ids =
        |r: &rice_search::SearchResults| r.hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        [ids(&first), ids(&second)].concat(),
        ids(&all)[..20].to_vec()
    );
    assert_eq!(first.total, all.total);
    let beyond = index
        .search(&SearchRequest {
            offset: 10_000,
            ..SearchRequest::query("reward")
        })
        .unwrap();
    assert!(beyond.hits.is_empty());
    assert_eq!(beyond.total, all.total);
}

#[test]
fn bad_parameters_name_the_parameter() {
    let (_, index) = index();
    for limit in [0, 101] {
        let err = index
            .search(&SearchRequest {
                limit,
                ..SearchRequest::query("dpo")
            })
            .unwrap_err();
        assert!(
            matches!(err, SearchError::InvalidParameter { name: "limit", .. }),
            "{err}"
        );
    }
    let err = index
        .search(&SearchRequest {
            place: Some("../etc".into()),
            ..SearchRequest::query("dpo")
        })
        .unwrap_err();
    assert!(
        matches!(err, SearchError::InvalidParameter { name: "place", .. }),
        "{err}"
    );
}

#[test]
fn snippets_mark_matches_and_escape_text() {
    let (_, index) = index();
    let r = index
        .search(&SearchRequest::query("reward hackng"))
        .unwrap();
    let top = &r.hits[0];
    assert_eq!(top.id, "reward-hacking");
    assert_eq!(top.place, "framing/motivation/causes");
    assert_eq!(top.url, "/entries/reward-hacking");
    assert!(top.title_html.contains("<mark>"), "{}", top.title_html);
    assert!(top.snippet_html.contains("<mark>"), "{}", top.snippet_html);
    for hit in &r.hits {
        let without_marks = hit
            .snippet_html
            .replace("<mark>", "")
            .replace("</mark>", "");
        assert!(
            !without_marks.contains('<') && !without_marks.contains('>'),
            "unescaped markup in {}",
            hit.snippet_html
        );
    }
    assert!(r.took_us > 0);
}

#[test]
fn exact_matches_outrank_typo_matches() {
    let (_, index) = index();
    // "debate" is a word of the catalog; "debote" is one edit away and finds the same entry, but lower scored.
    let exact = index.search(&SearchRequest::query("debate")).unwrap();
    let typo = index.search(&SearchRequest::query("debote")).unwrap();
    assert_eq!(exact.hits[0].id, "debate");
    assert_eq!(typo.hits[0].id, "debate");
    assert!(exact.hits[0].score > typo.hits[0].score);
    // Four-letter words get no typo budget.
    assert_eq!(
        index.search(&SearchRequest::query("rlhg")).unwrap().total,
        0
    );
}

#[test]
fn the_last_word_is_completed_as_you_type() {
    let (_, index) = index();
    let r = index.search(&SearchRequest::query("consti")).unwrap();
    assert_eq!(
        r.hits.first().map(|h| h.id.as_str()),
        Some("constitutional-ai")
    );
    // With a trailing space the word is complete and is not extended.
    assert_eq!(
        index
            .search(&SearchRequest::query("consti "))
            .unwrap()
            .total,
        0
    );
}

#[test]
fn phrase_queries_require_adjacency() {
    let (_, index) = index();
    let phrase = index
        .search(&SearchRequest::query("\"reward model\""))
        .unwrap();
    let words = index.search(&SearchRequest::query("reward model")).unwrap();
    assert!(
        phrase.total > 0 && phrase.total < words.total,
        "{} vs {}",
        phrase.total,
        words.total
    );
}

#[test]
fn an_index_written_to_disk_answers_the_same() {
    let (catalog, in_ram) = index();
    let dir = std::env::temp_dir().join(format!("rice-search-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let docs = SearchIndex::entry_documents(&catalog);
    SearchIndex::build_from(&docs, Some(&dir)).unwrap();
    let on_disk = SearchIndex::open(&dir).unwrap();
    for q in ["IDA", "reward hackng", "scalable overs"] {
        let a = in_ram.search(&SearchRequest::query(q)).unwrap();
        let b = on_disk.search(&SearchRequest::query(q)).unwrap();
        let ids = |r: &rice_search::SearchResults| {
            r.hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "{q}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
