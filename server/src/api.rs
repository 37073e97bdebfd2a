//! The JSON API under `/api`, `/healthz`, and the parameter parsing shared with the pages.
//!
//! Parameters are parsed by hand so that every problem is a 400 that names the parameter; query strings are decoded
//! leniently (a stray `%` is kept as text), so no query string can make a handler fail.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rice_catalog::{Entry, Kind, Principle, Taxonomy};
use rice_search::{DocType, SearchRequest, SearchResults};
use serde::Serialize;
use serde_json::{Value, json};

use crate::Site;
use crate::error::{ApiError, AppError, PathParams};

/// Decoded `key=value` pairs of a query string.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Filters and paging shared by `/api/search`, `/api/entries`, `/search` and `/entries`.
pub fn parse_request(
    site: &Site,
    pairs: &[(String, String)],
    allowed: &[&str],
) -> Result<SearchRequest, AppError> {
    let mut request = SearchRequest::default();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in pairs {
        let key = key.as_str();
        if key.is_empty() {
            // `?=100`: there is no name to report, so report what was written.
            return Err(AppError::bad(
                &format!("={value}"),
                format!(
                    "a parameter without a name; this route takes {}",
                    allowed.join(", ")
                ),
            ));
        }
        if !allowed.contains(&key) {
            return Err(AppError::bad(
                key,
                format!("unknown parameter; this route takes {}", allowed.join(", ")),
            ));
        }
        if seen.contains(&key) {
            return Err(AppError::bad(key, "given more than once"));
        }
        seen.push(key);
        let value = value.trim();
        match key {
            "q" => request.q = value.to_owned(),
            "place" if value.is_empty() => {}
            "place" => {
                if site.catalog.taxonomy.node(value).is_none() {
                    let paths = site.catalog.taxonomy.nodes.iter().map(|n| n.path.as_str());
                    let hint = rice_catalog::did_you_mean(value, paths)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(AppError::bad(
                        "place",
                        format!("unknown taxonomy path `{value}`{hint}"),
                    ));
                }
                request.place = Some(value.to_owned());
            }
            "rice" if value.is_empty() => {}
            "rice" => {
                request.rice = Some(
                    value
                        .parse::<Principle>()
                        .map_err(|e| AppError::bad("rice", e.to_string()))?,
                )
            }
            "kind" if value.is_empty() => {}
            "kind" => {
                request.kind = Some(
                    value
                        .parse::<Kind>()
                        .map_err(|e| AppError::bad("kind", e.to_string()))?,
                )
            }
            "implemented" if value.is_empty() => {}
            "implemented" => {
                request.has_implementation = Some(match value {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(AppError::bad(
                            "implemented",
                            format!("expected true or false, got `{value}`"),
                        ));
                    }
                })
            }
            "type" if value.is_empty() => {}
            "type" => {
                request.doc_type = Some(match value {
                    "entry" => DocType::Entry,
                    "section" => DocType::Section,
                    _ => {
                        return Err(AppError::bad(
                            "type",
                            format!("expected entry or section, got `{value}`"),
                        ));
                    }
                })
            }
            "limit" => {
                request.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=rice_search::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        AppError::bad(
                            "limit",
                            format!(
                                "expected a number from 1 to {}, got `{value}`",
                                rice_search::MAX_LIMIT
                            ),
                        )
                    })?
            }
            "offset" => {
                request.offset = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| {
                        AppError::bad(
                            "offset",
                            format!("expected a number from 0 to 100000, got `{value}`"),
                        )
                    })?
            }
            _ => unreachable!("allowed parameters are all handled"),
        }
    }
    Ok(request)
}

pub const SEARCH_PARAMS: &[&str] = &[
    "q",
    "place",
    "rice",
    "kind",
    "implemented",
    "type",
    "limit",
    "offset",
];
pub const LIST_PARAMS: &[&str] = &["place", "rice", "kind", "implemented"];

pub fn run_search(site: &Site, request: &SearchRequest) -> Result<SearchResults, AppError> {
    site.search.search(request).map_err(|e| match e {
        rice_search::SearchError::InvalidParameter { name, problem } => {
            AppError::bad(name, problem)
        }
        other => AppError::Internal(other.to_string()),
    })
}

pub async fn search(
    State(site): State<Arc<Site>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<SearchResults>, ApiError> {
    let request = parse_request(&site, &query_pairs(raw.as_deref()), SEARCH_PARAMS)?;
    Ok(Json(run_search(&site, &request)?))
}

/// An entry in lists: enough to show a card and link to it.
#[derive(Serialize)]
pub struct EntrySummary<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub kind: Kind,
    pub place: &'a str,
    pub rice: &'a rice_catalog::Rice,
    pub summary: &'a str,
    pub aliases: &'a [String],
    pub has_implementation: bool,
    pub url: String,
}

impl<'a> From<&'a Entry> for EntrySummary<'a> {
    fn from(e: &'a Entry) -> Self {
        EntrySummary {
            id: &e.id,
            name: &e.name,
            kind: e.kind,
            place: &e.place,
            rice: &e.rice,
            summary: &e.summary,
            aliases: &e.aliases,
            has_implementation: e.implementation.is_some(),
            url: format!("/entries/{}", e.id),
        }
    }
}

/// Entries matching the list filters, in id order.
pub fn filter_entries<'a>(site: &'a Site, request: &SearchRequest) -> Vec<&'a Entry> {
    site.catalog
        .entries
        .iter()
        .filter(|e| {
            request
                .place
                .as_deref()
                .is_none_or(|p| Taxonomy::is_within(&e.place, p))
        })
        .filter(|e| request.rice.is_none_or(|p| e.rice.contains(p)))
        .filter(|e| request.kind.is_none_or(|k| e.kind == k))
        .filter(|e| {
            request
                .has_implementation
                .is_none_or(|yes| e.implementation.is_some() == yes)
        })
        .collect()
}

pub async fn entries(
    State(site): State<Arc<Site>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let request = parse_request(&site, &query_pairs(raw.as_deref()), LIST_PARAMS)?;
    let list: Vec<EntrySummary> = filter_entries(&site, &request)
        .into_iter()
        .map(EntrySummary::from)
        .collect();
    Ok(Json(json!({ "total": list.len(), "entries": list })).into_response())
}

pub fn find<'a>(site: &'a Site, id: &str) -> Result<&'a Entry, AppError> {
    site.catalog.entry(id).ok_or_else(|| AppError::NotFound {
        what: "entry",
        id: id.to_owned(),
    })
}

pub async fn entry(
    State(site): State<Arc<Site>>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let e = find(&site, &id)?;
    let mut value = serde_json::to_value(e).map_err(|err| AppError::Internal(err.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("url".into(), json!(format!("/entries/{}", e.id)));
        map.insert("body_html".into(), json!(site.bodies.get(&e.id)));
        map.insert(
            "bibtex_url".into(),
            json!(format!("/api/entries/{}/bibtex", e.id)),
        );
    }
    Ok(Json(value).into_response())
}

pub async fn bibtex(
    State(site): State<Arc<Site>>,
    PathParams(id): PathParams<String>,
) -> Result<Response, ApiError> {
    let e = find(&site, &id)?;
    let text: String = e
        .papers
        .iter()
        .map(|p| rice_catalog::export::bibtex_record(site.keys.key(p), p) + "\n")
        .collect();
    Ok((
        [(header::CONTENT_TYPE, "application/x-bibtex; charset=utf-8")],
        text,
    )
        .into_response())
}

/// The taxonomy as a tree with entry counts (here or below).
pub fn taxonomy_tree(site: &Site, parent: &str) -> Vec<Value> {
    site.catalog
        .taxonomy
        .children(parent)
        .map(|n| {
            json!({
                "path": n.path,
                "title": n.title,
                "section": n.section,
                "summary": n.summary,
                "entries": site.catalog.entries_under(&n.path).count(),
                "children": taxonomy_tree(site, &n.path),
            })
        })
        .collect()
}

pub async fn taxonomy(State(site): State<Arc<Site>>) -> Json<Value> {
    Json(json!({ "nodes": taxonomy_tree(&site, "") }))
}

pub async fn stats(State(site): State<Arc<Site>>) -> Json<Value> {
    Json(serde_json::to_value(&site.stats).unwrap_or(Value::Null))
}

pub async fn healthz(State(site): State<Arc<Site>>) -> Json<Value> {
    Json(
        json!({ "status": "ok", "entries": site.catalog.entries.len(), "documents": site.search.len() }),
    )
}

pub async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// OpenAPI 3.1 for exactly the routes in [`crate::API_ROUTES`].
pub fn openapi_document() -> Value {
    let error = json!({ "description": "Error", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let param = |name: &str, description: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema });
    let filters = vec![
        param(
            "place",
            "Taxonomy subtree, e.g. forward/learning-from-feedback",
            json!({ "type": "string" }),
        ),
        param(
            "rice",
            "RICE principle served (primary or secondary)",
            json!({ "type": "string", "enum": ["robustness", "interpretability", "controllability", "ethicality"] }),
        ),
        param(
            "kind",
            "Kind of entry",
            json!({ "type": "string", "enum": Kind::ALL.map(|k| k.as_str()) }),
        ),
        param(
            "implemented",
            "Only entries with (true) or without (false) a reference implementation",
            json!({ "type": "boolean" }),
        ),
    ];
    let mut search_params = vec![param(
        "q",
        "Query text: words, \"phrases\", acronyms; typos and half-typed words are tolerated",
        json!({ "type": "string" }),
    )];
    search_params.extend(filters.clone());
    search_params.push(param(
        "type",
        "Document type",
        json!({ "type": "string", "enum": ["entry", "section"] }),
    ));
    search_params.push(param(
        "limit",
        "Hits per page",
        json!({ "type": "integer", "minimum": 1, "maximum": 100, "default": 10 }),
    ));
    search_params.push(param(
        "offset",
        "Hits to skip",
        json!({ "type": "integer", "minimum": 0, "maximum": 100000, "default": 0 }),
    ));
    let id =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let ok = |description: &str, schema: Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "RICE Atlas API", "version": env!("CARGO_PKG_VERSION"), "description": "Search and read the RICE Atlas catalog of AI-alignment methods. Read-only; no authentication." },
        "paths": {
            "/api/search": { "get": { "summary": "Search entries (and book sections)", "parameters": search_params,
                "responses": { "200": ok("Ranked hits with highlighted snippets, facet counts, total and time taken", json!({ "$ref": "#/components/schemas/SearchResults" })), "400": error, "414": error } } },
            "/api/entries": { "get": { "summary": "List entries, filtered", "parameters": filters,
                "responses": { "200": ok("Matching entries", json!({ "type": "object", "properties": { "total": { "type": "integer" }, "entries": { "type": "array", "items": { "type": "object" } } } })), "400": error } } },
            "/api/entries/{id}": { "get": { "summary": "One entry, with its body rendered to HTML", "parameters": [id],
                "responses": { "200": ok("The entry", json!({ "type": "object" })), "404": error } } },
            "/api/entries/{id}/bibtex": { "get": { "summary": "BibTeX for the entry's papers", "parameters": [id],
                "responses": { "200": { "description": "BibTeX", "content": { "application/x-bibtex": { "schema": { "type": "string" } } } }, "404": error } } },
            "/api/taxonomy": { "get": { "summary": "The taxonomy tree with entry counts", "responses": { "200": ok("The tree", json!({ "type": "object" })) } } },
            "/api/stats": { "get": { "summary": "Counts per section, principle and kind; survey coverage", "responses": { "200": ok("Statistics", json!({ "type": "object" })) } } },
            "/api/runs": { "get": { "summary": "Runs of the reference implementations (from `rice serve --runs DIR`)", "responses": { "200": ok("Runs, newest first", json!({ "type": "object" })) } } },
            "/api/runs/{name}": { "get": { "summary": "One run: summary, configuration, every metrics row, plot names", "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": ok("The run", json!({ "type": "object" })), "404": error } } },
            "/api/openapi.json": { "get": { "summary": "This document", "responses": { "200": ok("OpenAPI 3.1", json!({ "type": "object" })) } } }
        },
        "components": { "schemas": {
            "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["status", "code", "message"], "properties": {
                "status": { "type": "integer" }, "code": { "type": "string" }, "message": { "type": "string" }, "parameter": { "type": "string" } } } } },
            "SearchResults": { "type": "object", "required": ["q", "total", "offset", "limit", "hits", "facets", "took_us"], "properties": {
                "q": { "type": "string" }, "total": { "type": "integer" }, "offset": { "type": "integer" }, "limit": { "type": "integer" },
                "hits": { "type": "array", "items": { "type": "object", "properties": {
                    "id": { "type": "string" }, "title": { "type": "string" }, "title_html": { "type": "string" }, "url": { "type": "string" },
                    "place": { "type": "string" }, "snippet_html": { "type": "string", "description": "HTML-escaped text; matches in <mark>" }, "score": { "type": "number" } } } },
                "facets": { "type": "object" }, "took_us": { "type": "integer", "description": "Microseconds spent answering" } } }
        } }
    })
}
