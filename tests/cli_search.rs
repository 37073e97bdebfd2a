//! End-to-end tests of `rice search` and `rice build`.

mod common;
use common::{rice, stderr, stdout};

fn first_hit(query: &str) -> String {
    let o = rice(&["search", query]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default().to_owned();
    let id = first
        .rsplit_once('[')
        .and_then(|(_, rest)| rest.strip_suffix(']'));
    id.unwrap_or_else(|| panic!("no result line in {out}"))
        .to_owned()
}

#[test]
fn the_issue_examples_hold() {
    assert_eq!(first_hit("reward hackng"), "reward-hacking");
    assert_eq!(first_hit("IDA"), "ida");
    let o = rice(&["search", "dpo\" OR ( "]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("[dpo]"), "{}", stdout(&o));
}

#[test]
fn output_shows_place_badges_and_emphasised_snippet() {
    let out = stdout(&rice(&["search", "reward hackng", "--limit", "1"]));
    assert!(out.contains("risk · RICE"), "{out}");
    assert!(out.contains("Framing"), "{out}");
    assert!(out.contains("*hacking*"), "matches are emphasised: {out}");
    assert!(out.contains("of ") && out.contains(" µs"), "{out}");
}

#[test]
fn json_output_has_hits_facets_and_timing() {
    let o = rice(&[
        "search",
        "preference",
        "--kind",
        "method",
        "--place",
        "forward",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["total"].as_u64().unwrap() > 0);
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] == "method")
    );
    assert!(v["facets"]["place"]["forward"].as_u64().unwrap() > 0);
    assert!(v["took_us"].as_u64().is_some());
}

#[test]
fn bad_parameters_fail_with_the_parameter_named() {
    let o = rice(&["search", "dpo", "--limit", "101"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`limit` must be between 1 and 100"),
        "{}",
        stderr(&o)
    );
    let o = rice(&["search", "dpo", "--place", "forward/nowhere"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown place `forward/nowhere`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn no_results_is_not_an_error() {
    let o = rice(&["search", "qqqqzzzz"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("No results"), "{}", stdout(&o));
}

#[test]
fn build_writes_an_index_that_opens_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let o = rice(&["build", "--out", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("book sections"), "{}", stdout(&o));
    let index = rice_search::SearchIndex::open(&dir.path().join("search-index")).unwrap();
    let r = index
        .search(&rice_search::SearchRequest::query("IDA"))
        .unwrap();
    assert_eq!(r.hits[0].id, "ida");
    // The book's sections are in the same index, linked at their anchors.
    let r = index
        .search(&rice_search::SearchRequest::query("glaivouxite"))
        .unwrap();
    assert_eq!(r.hits[0].doc_type, rice_search::DocType::Section);
    assert!(r.hits[0].url.starts_with("/book/"), "{}", r.hits[0].url);
    // Building again replaces the index rather than failing on the existing one.
    assert!(
        rice(&["build", "--out", dir.path().to_str().unwrap()])
            .status
            .success()
    );
}
