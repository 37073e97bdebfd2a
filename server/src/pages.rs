//! The HTML pages: one handler and one template struct per page area. Every page works without JavaScript.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use rice_catalog::{Entry, Kind, Principle};
use rice_search::{FacetCounts, SearchRequest};

use crate::Site;
use crate::api::{
    LIST_PARAMS, SEARCH_PARAMS, filter_entries, find, parse_request, query_pairs, run_search,
};
use crate::error::{AppError, PageError, PathParams};

fn render(page: &impl Template) -> Result<Response, PageError> {
    let html = page
        .render()
        .map_err(|e| AppError::Internal(format!("rendering a page: {e}")))?;
    Ok(Html(html).into_response())
}

/// A RICE badge: the principle's letter, styled as primary or secondary.
pub struct Badge {
    pub letter: char,
    pub class: &'static str,
    pub title: String,
}

fn badges(e: &Entry) -> Vec<Badge> {
    let badge = |p: &Principle, primary: bool| Badge {
        letter: p.letter(),
        class: if primary { "primary" } else { "secondary" },
        title: format!(
            "{} ({})",
            p.as_str(),
            if primary { "primary" } else { "secondary" }
        ),
    };
    e.rice
        .primary
        .iter()
        .map(|p| badge(p, true))
        .chain(e.rice.secondary.iter().map(|p| badge(p, false)))
        .collect()
}

fn place_title(site: &Site, place: &str) -> String {
    site.catalog
        .taxonomy
        .ancestors(place)
        .iter()
        .map(|n| n.title.as_str())
        .collect::<Vec<_>>()
        .join(" › ")
}

/// `base?k=v&…` with the pairs URL-encoded.
fn url(base: &str, pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    let query = s.finish();
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    }
}

// ── Home ──────────────────────────────────────────────────────────────────────────────────────────────────────

struct MatrixCell {
    count: usize,
    href: String,
}

struct MatrixRow {
    heading: bool,
    path: String,
    title: String,
    cells: Vec<MatrixCell>,
    total: usize,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    q: String,
    total: usize,
    principles: Vec<&'static str>,
    rows: Vec<MatrixRow>,
}

pub async fn home(State(site): State<Arc<Site>>) -> Result<Response, PageError> {
    let mut rows = Vec::new();
    // Second-level nodes as headings, their children as rows (a second-level node without children is a row).
    for top in site.catalog.taxonomy.children("") {
        for section in site.catalog.taxonomy.children(&top.path) {
            let children: Vec<_> = site.catalog.taxonomy.children(&section.path).collect();
            let row = |path: &str, title: &str| {
                let cells = Principle::ALL
                    .iter()
                    .map(|p| MatrixCell {
                        count: site
                            .catalog
                            .entries_under(path)
                            .filter(|e| e.rice.contains(*p))
                            .count(),
                        href: url(
                            "/entries",
                            &[("place", path.to_owned()), ("rice", p.as_str().to_owned())],
                        ),
                    })
                    .collect();
                MatrixRow {
                    heading: false,
                    path: path.to_owned(),
                    title: title.to_owned(),
                    cells,
                    total: site.catalog.entries_under(path).count(),
                }
            };
            if children.is_empty() {
                rows.push(row(
                    &section.path,
                    &format!("{} · {}", top.title, section.title),
                ));
                continue;
            }
            rows.push(MatrixRow {
                heading: true,
                path: section.path.clone(),
                title: format!("{} · {}", top.title, section.title),
                cells: Vec::new(),
                total: 0,
            });
            for child in children {
                rows.push(row(&child.path, &child.title));
            }
        }
    }
    render(&HomePage {
        q: String::new(),
        total: site.catalog.entries.len(),
        principles: Principle::ALL
            .iter()
            .map(|p| match p {
                Principle::Robustness => "Robustness",
                Principle::Interpretability => "Interpretability",
                Principle::Controllability => "Controllability",
                Principle::Ethicality => "Ethicality",
            })
            .collect(),
        rows,
    })
}

// ── Facet links (entries and search pages) ────────────────────────────────────────────────────────────────────

struct FacetLink {
    label: String,
    count: u64,
    href: String,
    active: bool,
    depth: usize,
}

struct FacetGroup {
    title: &'static str,
    links: Vec<FacetLink>,
}

/// Links that toggle one filter while keeping the others, with counts for the current query and filters.
fn facet_groups(
    site: &Site,
    base: &str,
    request: &SearchRequest,
    counts: &FacetCounts,
) -> Vec<FacetGroup> {
    let current = |replace: &str, value: Option<String>| -> String {
        let keep = |key: &str, v: Option<String>| {
            if key == replace {
                value.clone().unwrap_or_default()
            } else {
                v.unwrap_or_default()
            }
        };
        url(
            base,
            &[
                (
                    "q",
                    if base == "/search" {
                        request.q.clone()
                    } else {
                        String::new()
                    },
                ),
                ("place", keep("place", request.place.clone())),
                (
                    "rice",
                    keep("rice", request.rice.map(|p| p.as_str().to_owned())),
                ),
                (
                    "kind",
                    keep("kind", request.kind.map(|k| k.as_str().to_owned())),
                ),
                (
                    "implemented",
                    keep(
                        "implemented",
                        request.has_implementation.map(|b| b.to_string()),
                    ),
                ),
            ],
        )
    };
    let toggle =
        |key: &str, value: &str, active: bool| current(key, (!active).then(|| value.to_owned()));
    let mut groups = Vec::new();

    let mut places = Vec::new();
    for node in &site.catalog.taxonomy.nodes {
        let depth = node.path.matches('/').count();
        let Some(count) = counts.place.get(&node.path) else {
            continue;
        };
        // Show the two top levels always, deeper levels under the selected place.
        let under_selection = request.place.as_deref().is_some_and(|p| {
            rice_catalog::Taxonomy::is_within(&node.path, p)
                || rice_catalog::Taxonomy::is_within(p, rice_catalog::parent_path(&node.path))
        });
        if depth <= 1 || under_selection {
            let active = request.place.as_deref() == Some(node.path.as_str());
            places.push(FacetLink {
                label: node.title.clone(),
                count: *count,
                href: toggle("place", &node.path, active),
                active,
                depth,
            });
        }
    }
    groups.push(FacetGroup {
        title: "Taxonomy",
        links: places,
    });

    let rice = Principle::ALL
        .iter()
        .filter_map(|p| {
            let count = *counts.rice.get(p)?;
            let active = request.rice == Some(*p);
            Some(FacetLink {
                label: p.as_str().to_owned(),
                count,
                href: toggle("rice", p.as_str(), active),
                active,
                depth: 0,
            })
        })
        .collect();
    groups.push(FacetGroup {
        title: "RICE principle",
        links: rice,
    });

    let kinds = Kind::ALL
        .iter()
        .filter_map(|k| {
            let count = *counts.kind.get(k)?;
            let active = request.kind == Some(*k);
            Some(FacetLink {
                label: k.as_str().to_owned(),
                count,
                href: toggle("kind", k.as_str(), active),
                active,
                depth: 0,
            })
        })
        .collect();
    groups.push(FacetGroup {
        title: "Kind",
        links: kinds,
    });

    let implemented = [true, false]
        .iter()
        .filter_map(|yes| {
            let count = *counts.has_implementation.get(yes)?;
            let active = request.has_implementation == Some(*yes);
            let label = if *yes {
                "with implementation"
            } else {
                "without implementation"
            };
            Some(FacetLink {
                label: label.to_owned(),
                count,
                href: toggle("implemented", &yes.to_string(), active),
                active,
                depth: 0,
            })
        })
        .collect();
    groups.push(FacetGroup {
        title: "Runnable",
        links: implemented,
    });
    groups
}

fn filtered(request: &SearchRequest) -> bool {
    request.place.is_some()
        || request.rice.is_some()
        || request.kind.is_some()
        || request.has_implementation.is_some()
}

// ── Entries ───────────────────────────────────────────────────────────────────────────────────────────────────

struct EntryCard {
    id: String,
    name: String,
    kind: Kind,
    badges: Vec<Badge>,
    place_title: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "entries.html")]
struct EntriesPage {
    q: String,
    entries: Vec<EntryCard>,
    all: usize,
    filtered: bool,
    facets: Vec<FacetGroup>,
    /// Where "clear all filters" goes, when a filter is on.
    clear: Option<String>,
}

pub async fn entries(
    State(site): State<Arc<Site>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let request = parse_request(&site, &query_pairs(raw.as_deref()), LIST_PARAMS)?;
    let counts = run_search(
        &site,
        &SearchRequest {
            q: String::new(),
            limit: 1,
            offset: 0,
            ..request.clone()
        },
    )?
    .facets;
    let entries = filter_entries(&site, &request)
        .into_iter()
        .map(|e| EntryCard {
            id: e.id.clone(),
            name: e.name.clone(),
            kind: e.kind,
            badges: badges(e),
            place_title: place_title(&site, &e.place),
            summary: e.summary.clone(),
        })
        .collect();
    let filtered = filtered(&request);
    render(&EntriesPage {
        q: String::new(),
        entries,
        all: site.catalog.entries.len(),
        filtered,
        facets: facet_groups(&site, "/entries", &request, &counts),
        clear: filtered.then(|| "/entries".to_owned()),
    })
}

// ── One entry ─────────────────────────────────────────────────────────────────────────────────────────────────

struct PaperView {
    title: String,
    authors: String,
    year: u16,
    venue: Option<String>,
    arxiv: Option<String>,
    link: Option<String>,
    unverified: bool,
}

#[derive(Template)]
#[template(path = "entry.html")]
struct EntryPage {
    q: String,
    id: String,
    name: String,
    kind: Kind,
    badges: Vec<Badge>,
    aliases: Vec<String>,
    summary: String,
    body_html: String,
    trail: Vec<(String, String)>,
    papers: Vec<PaperView>,
    bibtex: String,
    related: Vec<(String, String, String)>,
    run: Option<(String, String)>,
    /// The entry's reference page in the course book, when a book is served.
    book_page: Option<String>,
    /// Chapters and labs of the served book that discuss the entry: (title, URL).
    book_links: Vec<(String, String)>,
    source: String,
}

fn authors(list: &[String]) -> String {
    match list {
        [] => String::new(),
        [one] => one.clone(),
        [first, second] if second != "others" => format!("{first} and {second}"),
        [first, second, third] if third != "others" => format!("{first}, {second} and {third}"),
        [first, ..] => format!("{first} et al."),
    }
}

pub async fn entry(
    State(site): State<Arc<Site>>,
    PathParams(id): PathParams<String>,
) -> Result<Response, PageError> {
    let e = find(&site, &id)?;
    let papers = e
        .papers
        .iter()
        .map(|p| PaperView {
            title: p.title.clone(),
            authors: authors(&p.authors),
            year: p.year,
            venue: p.venue.clone(),
            arxiv: p.arxiv.clone(),
            link: p.link(),
            unverified: p.unverified,
        })
        .collect();
    let bibtex = e
        .papers
        .iter()
        .map(|p| rice_catalog::export::bibtex_record(site.keys.key(p), p))
        .collect::<Vec<_>>()
        .join("\n");
    let related = e
        .related
        .iter()
        .filter_map(|r| site.catalog.entry(r))
        .map(|r| {
            (
                r.id.clone(),
                r.name.clone(),
                r.summary
                    .split(". ")
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('.')
                    .to_owned()
                    + ".",
            )
        })
        .collect();
    render(&EntryPage {
        q: String::new(),
        id: e.id.clone(),
        name: e.name.clone(),
        kind: e.kind,
        badges: badges(e),
        aliases: e.aliases.clone(),
        summary: e.summary.clone(),
        body_html: site.bodies.get(&e.id).cloned().unwrap_or_default(),
        trail: site
            .catalog
            .taxonomy
            .ancestors(&e.place)
            .iter()
            .map(|n| (n.title.clone(), n.path.clone()))
            .collect(),
        papers,
        bibtex,
        related,
        run: e
            .implementation
            .as_ref()
            .map(|i| (i.crate_name.clone(), i.command.clone())),
        book_page: site
            .options
            .book_dir
            .as_ref()
            .map(|_| format!("/book/entries/{}.html", e.id)),
        book_links: match &site.options.book_dir {
            Some(_) => site
                .options
                .book
                .backlinks
                .get(&e.id)
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        },
        source: e.source.clone(),
    })
}

// ── Taxonomy ──────────────────────────────────────────────────────────────────────────────────────────────────

struct TreeRow {
    depth: usize,
    path: String,
    anchor: String,
    title: String,
    section: Option<String>,
    summary: Option<String>,
    count: usize,
    entries: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "taxonomy.html")]
struct TaxonomyPage {
    q: String,
    nodes: Vec<TreeRow>,
}

pub async fn taxonomy(State(site): State<Arc<Site>>) -> Result<Response, PageError> {
    let nodes = site
        .catalog
        .taxonomy
        .nodes
        .iter()
        .map(|n| TreeRow {
            depth: n.path.matches('/').count(),
            path: n.path.clone(),
            anchor: n.path.replace('/', "--"),
            title: n.title.clone(),
            section: n.section.clone(),
            summary: n.summary.clone(),
            count: site.catalog.entries_under(&n.path).count(),
            entries: site
                .catalog
                .entries
                .iter()
                .filter(|e| e.place == n.path)
                .map(|e| (e.id.clone(), e.name.clone()))
                .collect(),
        })
        .collect();
    render(&TaxonomyPage {
        q: String::new(),
        nodes,
    })
}

// ── Search ────────────────────────────────────────────────────────────────────────────────────────────────────

struct HitView {
    url: String,
    title_html: String,
    place_title: String,
    snippet_html: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    q: String,
    total: usize,
    took_us: u64,
    hits: Vec<HitView>,
    facets: Vec<FacetGroup>,
    clear: Option<String>,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn search(
    State(site): State<Arc<Site>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let request = parse_request(&site, &query_pairs(raw.as_deref()), SEARCH_PARAMS)?;
    let results = run_search(&site, &request)?;
    let page = |offset: usize| {
        url(
            "/search",
            &[
                ("q", request.q.clone()),
                ("place", request.place.clone().unwrap_or_default()),
                (
                    "rice",
                    request
                        .rice
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                ),
                (
                    "kind",
                    request
                        .kind
                        .map(|k| k.as_str().to_owned())
                        .unwrap_or_default(),
                ),
                (
                    "implemented",
                    request
                        .has_implementation
                        .map(|b| b.to_string())
                        .unwrap_or_default(),
                ),
                (
                    "offset",
                    if offset == 0 {
                        String::new()
                    } else {
                        offset.to_string()
                    },
                ),
            ],
        )
    };
    let prev = (request.offset > 0).then(|| page(request.offset.saturating_sub(request.limit)));
    let next = (request.offset + results.hits.len() < results.total)
        .then(|| page(request.offset + request.limit));
    let hits = results
        .hits
        .iter()
        .map(|h| HitView {
            url: h.url.clone(),
            title_html: h.title_html.clone(),
            place_title: match h.doc_type {
                rice_search::DocType::Section => "Course book".to_owned(),
                rice_search::DocType::Entry => place_title(&site, &h.place),
            },
            snippet_html: h.snippet_html.clone(),
        })
        .collect();
    render(&SearchPage {
        q: request.q.clone(),
        total: results.total,
        took_us: results.took_us,
        hits,
        facets: facet_groups(&site, "/search", &request, &results.facets),
        clear: filtered(&request).then(|| url("/search", &[("q", request.q.clone())])),
        prev,
        next,
    })
}

// ── Book, sitemap ─────────────────────────────────────────────────────────────────────────────────────────────

pub async fn no_book() -> Response {
    AppError::NotFound {
        what: "course book",
        id: "(not built yet: run `rice build`, then `rice serve --book DIR`)".into(),
    }
    .into_page()
}

pub async fn sitemap(State(site): State<Arc<Site>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("localhost");
    let base = format!("http://{host}");
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let paths = [
        "/".to_owned(),
        "/entries".into(),
        "/taxonomy".into(),
        "/search".into(),
    ]
    .into_iter()
    .chain(
        site.catalog
            .entries
            .iter()
            .map(|e| format!("/entries/{}", e.id)),
    );
    for path in paths {
        xml.push_str(&format!("  <url><loc>{base}{path}</loc></url>\n"));
    }
    xml.push_str("</urlset>\n");
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
