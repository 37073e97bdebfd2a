//! Properties of search over any input: query text never makes an error, and paging is exact — every page is the
//! matching slice of one ranking, and neither the total nor the facets depend on the page asked for.

use std::sync::OnceLock;

use proptest::prelude::*;
use rice_catalog::Catalog;
use rice_search::{MAX_LIMIT, SearchError, SearchIndex, SearchRequest};

fn index() -> &'static SearchIndex {
    static INDEX: OnceLock<SearchIndex> = OnceLock::new();
    INDEX.get_or_init(|| SearchIndex::build(&Catalog::embedded().unwrap()).unwrap())
}

fn request(q: &str, limit: usize, offset: usize) -> SearchRequest {
    SearchRequest {
        limit,
        offset,
        ..SearchRequest::query(q)
    }
}

fn ids(r: &rice_search::SearchResults) -> Vec<&str> {
    r.hits.iter().map(|h| h.id.as_str()).collect()
}

/// Searches `q` at one page and checks it against the first `MAX_LIMIT` results of the same query.
fn check_page(q: &str, limit: usize, offset: usize) -> Result<(), TestCaseError> {
    let page = index().search(&request(q, limit, offset));
    prop_assert!(
        page.is_ok(),
        "{q:?} limit {limit} offset {offset}: {page:?}"
    );
    let page = page.unwrap();
    let first = index().search(&request(q, MAX_LIMIT, 0)).unwrap();
    prop_assert_eq!((page.limit, page.offset), (limit, offset));
    prop_assert_eq!(
        page.total,
        first.total,
        "the total does not depend on the page"
    );
    prop_assert_eq!(&page.facets, &first.facets, "nor do the facets");
    prop_assert_eq!(
        page.hits.len(),
        limit.min(page.total.saturating_sub(offset))
    );
    if offset + limit <= MAX_LIMIT {
        let end = (offset + limit).min(first.hits.len());
        let start = offset.min(end);
        prop_assert_eq!(
            ids(&page),
            ids(&first)[start..end].to_vec(),
            "a page is a slice of one ranking"
        );
    }
    Ok(())
}

/// Query syntax, typos and word pieces: the characters most likely to confuse a query parser.
const QUERY_ALPHABET: &str = "([a-z]{1,8}|\"|\\(|\\)|:|\\+|-|\\*|~|\\^|[0-9]|AND|OR|NOT|title:|body:| |\\\\|'|\\[|\\]|\\{|\\}|/){0,12}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_is_a_query(q in any::<String>(), limit in 1..=MAX_LIMIT, offset in 0usize..200) {
        check_page(&q, limit, offset)?;
    }

    #[test]
    fn query_syntax_is_never_an_error(q in QUERY_ALPHABET, limit in 1..=MAX_LIMIT, offset in 0usize..200) {
        check_page(&q, limit, offset)?;
    }

    #[test]
    fn a_limit_outside_its_range_is_an_error_naming_it(q in ".{0,20}", limit in prop_oneof![Just(0usize), (MAX_LIMIT + 1)..10_000]) {
        let r = index().search(&request(&q, limit, 0));
        prop_assert!(
            matches!(r, Err(SearchError::InvalidParameter { name: "limit", .. })),
            "{r:?}"
        );
    }
}
