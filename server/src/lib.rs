//! The RICE Atlas website and JSON API (`rice serve`).
//!
//! What it is for: serving the catalog to people (server-rendered pages that work without JavaScript, math as
//! MathML, search as you type) and to programs (a JSON API described by an OpenAPI document), from one binary
//! with every asset embedded, offline.
//!
//! What it is not for: writing anything. The site is stateless and read-only: it reads a [`Catalog`] at start-up,
//! builds the search index in memory, and serves. Run replicas behind any load balancer to scale.
//!
//! Layout: [`routes`] builds the whole router in one place; `pages` and `api` hold one handler per page area;
//! [`error::AppError`] renders as an HTML page on the site and as JSON on the API.

mod api;
mod assets;
pub mod error;
pub mod markdown;
mod pages;
mod runs;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rice_catalog::Catalog;
use rice_catalog::export::CitationKeys;
use rice_catalog::stats::Stats;
use rice_search::SearchIndex;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::AppError;
use crate::markdown::MarkdownRenderer;

// The query-string parsing every search route shares, public so that the fuzzer (`fuzz/`) runs exactly this path.
pub use api::{SEARCH_PARAMS, parse_request, query_pairs, run_search};

/// Longest request URI accepted (a 10 kB search query fits); longer gets 414.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Largest request body accepted; larger gets 413. No route reads a body today.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A request that takes longer than this is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has not sent a whole request head this long after it opened (or after its last answer) is
/// closed: idle and slowly-sent ("slowloris") connections cannot pile up.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON API's routes, exactly as the router mounts them (the OpenAPI document is tested against this list).
pub const API_ROUTES: &[&str] = &[
    "/api/search",
    "/api/entries",
    "/api/entries/{id}",
    "/api/entries/{id}/bibtex",
    "/api/taxonomy",
    "/api/stats",
    "/api/runs",
    "/api/runs/{name}",
    "/api/openapi.json",
];

/// Where optional content lives.
#[derive(Clone, Debug, Default)]
pub struct SiteOptions {
    /// A built course book (HTML) served at `/book/`.
    pub book_dir: Option<PathBuf>,
    /// A directory of reference-implementation runs, shown at `/runs`.
    pub runs_dir: Option<PathBuf>,
    /// What the book holds (from `rice-book`); used only when `book_dir` is set.
    pub book: BookInfo,
}

/// What the site needs to know about the course book it serves. The CLI fills it from `rice-book`; the server
/// never builds the book itself (it serves the built directory as plain files).
#[derive(Clone, Debug, Default)]
pub struct BookInfo {
    /// The book's chapter and lab sections, searched together with the entries.
    pub sections: Vec<rice_search::Document>,
    /// Entry id → the book pages that discuss it, as (title, URL under `/book/`).
    pub backlinks: HashMap<String, Vec<(String, String)>>,
}

/// Everything the handlers read, built once at start-up.
pub struct Site {
    pub catalog: Catalog,
    pub search: SearchIndex,
    /// Entry id → body rendered to HTML (math as MathML).
    pub bodies: HashMap<String, String>,
    pub keys: CitationKeys,
    pub stats: Stats,
    pub options: SiteOptions,
}

impl Site {
    pub fn new(catalog: Catalog, options: SiteOptions) -> Result<Site, rice_search::SearchError> {
        let mut documents = SearchIndex::entry_documents(&catalog);
        if options.book_dir.is_some() {
            documents.extend(options.book.sections.iter().cloned());
        }
        let search = SearchIndex::build_from(&documents, None)?;
        let renderer = MarkdownRenderer::default();
        let bodies = catalog
            .entries
            .iter()
            .map(|e| (e.id.clone(), renderer.render(&e.body)))
            .collect();
        let keys = CitationKeys::new(&catalog);
        let stats = Stats::compute(&catalog);
        Ok(Site {
            catalog,
            search,
            bodies,
            keys,
            stats,
            options,
        })
    }
}

/// The whole site: every route, the fallback, and the hardening layers.
pub fn routes(site: Arc<Site>) -> Router {
    let book = match &site.options.book_dir {
        // ServeDir resolves paths under its root only (no `..`, no absolute paths), serves index.html for a
        // directory and never lists one; a missing file gets the site's 404 page.
        Some(dir) => Router::new()
            .nest_service(
                "/book",
                tower_http::services::ServeDir::new(dir).not_found_service(tower::service_fn(
                    |request: Request| async move {
                        Ok::<_, std::convert::Infallible>(
                            AppError::NoRoute(format!("/book{}", request.uri().path())).into_page(),
                        )
                    },
                )),
            )
            .layer(middleware::from_fn(book_paths)),
        None => Router::new()
            .route("/book", get(pages::no_book))
            .route("/book/{*path}", get(pages::no_book)),
    };
    Router::new()
        .route("/", get(pages::home))
        .route("/entries", get(pages::entries))
        .route("/entries/{id}", get(pages::entry))
        .route("/taxonomy", get(pages::taxonomy))
        .route("/search", get(pages::search))
        .route("/runs", get(runs::index))
        .route("/runs/{name}", get(runs::show))
        .route("/runs/{name}/plots/{file}", get(runs::plot))
        .route("/healthz", get(api::healthz))
        .route("/sitemap.xml", get(pages::sitemap))
        .route("/static/{file}", get(assets::serve))
        .route("/api/search", get(api::search))
        .route("/api/entries", get(api::entries))
        .route("/api/entries/{id}", get(api::entry))
        .route("/api/entries/{id}/bibtex", get(api::bibtex))
        .route("/api/taxonomy", get(api::taxonomy))
        .route("/api/stats", get(api::stats))
        .route("/api/runs", get(runs::api_index))
        .route("/api/runs/{name}", get(runs::api_show))
        .route("/api/openapi.json", get(api::openapi))
        .merge(book)
        .fallback(fallback)
        .with_state(site)
        .layer(middleware::from_fn(limits))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
}

/// The book's pages link relatively, so they must be read under `/book/`: `/book` redirects there, and a redirect
/// from the file service (a directory without its trailing slash) keeps the `/book` prefix that nesting removed.
///
/// A path no file system can hold (a name over 255 bytes, or over 1,024 bytes in all; the book's are far shorter) is
/// a 404 here: the file service would answer the operating system's "file name too long" with a 500.
async fn book_paths(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/book" {
        return axum::response::Redirect::permanent("/book/").into_response();
    }
    if path.len() > 1024 || path.split('/').any(|name| name.len() > 255) {
        return AppError::NoRoute(path.to_owned()).into_page();
    }
    let mut response = next.run(request).await;
    if response.status().is_redirection() {
        let fixed = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|l| l.starts_with('/') && !l.starts_with("/book/"))
            .and_then(|l| HeaderValue::from_str(&format!("/book{l}")).ok());
        if let Some(location) = fixed {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
}

/// No inline script or style anywhere: scripts and styles come from `/static/` only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Rejects oversized requests before any handler runs: 414 for a long URI, 413 for a declared large body.
async fn limits(request: Request, next: Next) -> Response {
    let api = is_api(request.uri().path());
    let respond = |e: AppError| if api { e.into_json() } else { e.into_page() };
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return respond(AppError::UriTooLong {
            limit: MAX_URI_BYTES,
        });
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return respond(AppError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    next.run(request).await
}

async fn fallback(uri: axum::http::Uri) -> Response {
    let e = AppError::NoRoute(uri.path().to_owned());
    if is_api(uri.path()) {
        e.into_json()
    } else {
        e.into_page().into_response()
    }
}

/// Serves until SIGINT or SIGTERM, then finishes the requests in flight; connections that send no whole request
/// head within [`HEADER_READ_TIMEOUT`] are closed (see `rice-http`).
pub async fn serve(listener: tokio::net::TcpListener, site: Arc<Site>) -> std::io::Result<()> {
    rice_http::serve(listener, routes(site), HEADER_READ_TIMEOUT).await
}
