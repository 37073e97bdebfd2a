//! Every route through `tower::ServiceExt::oneshot`: status, content type, key content, error shapes, limits and
//! hardening. No network.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use rice_catalog::Catalog;
use rice_server::{API_ROUTES, Site, SiteOptions, routes};
use serde_json::Value;
use tower::ServiceExt;

fn site() -> Arc<Site> {
    static SITE: OnceLock<Arc<Site>> = OnceLock::new();
    SITE.get_or_init(|| {
        Arc::new(Site::new(Catalog::embedded().unwrap(), SiteOptions::default()).unwrap())
    })
    .clone()
}

fn app() -> Router {
    routes(site())
}

struct Reply {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn call(app: Router, request: Request<Body>) -> Reply {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 10 << 20)
        .await
        .unwrap();
    Reply {
        status,
        content_type,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(uri: &str) -> Reply {
    call(app(), Request::get(uri).body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn pages_render_with_their_content() {
    let cases = [
        ("/", "RICE × taxonomy"),
        ("/entries", "Entries"),
        (
            "/entries?place=forward&rice=controllability&kind=method",
            "match the filters",
        ),
        ("/entries/dpo", "Direct Preference Optimization"),
        ("/taxonomy", "Learning from feedback"),
        ("/search?q=reward+hackng", "<mark>"),
        ("/search", "results appear as you type"),
    ];
    for (uri, needle) in cases {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert_eq!(r.content_type, "text/html; charset=utf-8", "{uri}");
        assert!(r.body.contains(needle), "{uri} lacks {needle:?}");
        assert!(
            r.body
                .contains("<script src=\"/static/site.js\" defer></script>"),
            "{uri}"
        );
        assert!(
            !r.body.contains("<script>") && !r.body.contains(" style=\""),
            "{uri} has inline script or style"
        );
    }
}

#[tokio::test]
async fn filtered_pages_offer_to_clear_the_filters() {
    let r = get("/search?q=reward&kind=method").await;
    assert!(
        r.body
            .contains("<a href=\"/search?q=reward\">Clear all filters</a>"),
        "search keeps the query"
    );
    let r = get("/entries?kind=method").await;
    assert!(
        r.body
            .contains("<a href=\"/entries\">Clear all filters</a>")
    );
    assert!(!get("/entries").await.body.contains("Clear all filters"));
}

#[tokio::test]
async fn home_matrix_links_every_cell_to_its_entries() {
    let r = get("/").await;
    assert!(
        r.body.contains("href=\"/entries?place=forward%2Flearning-from-feedback%2Fpolicy-learning&#38;rice=controllability\""),
        "cell links are filter URLs"
    );
    // The counts add up: the RLHF node's controllability cell equals the filtered entry list.
    let listed = get(
        "/entries?place=forward/learning-from-feedback/policy-learning/rlhf&rice=controllability",
    )
    .await;
    let catalog = Catalog::embedded().unwrap();
    let n = catalog
        .entries_under("forward/learning-from-feedback/policy-learning/rlhf")
        .filter(|e| e.rice.contains(rice_catalog::Principle::Controllability))
        .count();
    assert!(
        listed
            .body
            .contains(&format!("{n} of {} entries", catalog.entries.len())),
        "{}",
        listed.body.len()
    );
}

#[tokio::test]
async fn an_entry_page_has_mathml_papers_bibtex_and_related() {
    let r = get("/entries/dpo").await;
    assert!(
        r.body.contains("<math"),
        "math renders to MathML on the server"
    );
    assert!(r.body.contains("href=\"https://arxiv.org/abs/2305.18290\""));
    assert!(r.body.contains("@article{rafailov2023direct,"));
    assert!(r.body.contains("href=\"/entries/rlhf\""));
    assert!(
        r.body
            .contains("Taxonomy</a> › <a href=\"/entries?place=forward\">")
    );
}

#[tokio::test]
async fn every_formula_in_the_catalog_renders_as_mathml() {
    for e in &Catalog::embedded().unwrap().entries {
        let html = &site().bodies[&e.id];
        assert!(
            !html.contains("math-source"),
            "a formula in {} did not convert to MathML",
            e.id
        );
    }
}

#[tokio::test]
async fn api_routes_answer_with_json() {
    let r = get("/api/search?q=IDA&limit=3").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::OK, "application/json")
    );
    let v = r.json();
    assert_eq!(v["hits"][0]["id"], "ida");
    assert!(v["took_us"].is_u64() && v["facets"]["kind"].is_object());

    let v = get("/api/entries?rice=interpretability&kind=method")
        .await
        .json();
    assert!(v["total"].as_u64().unwrap() > 0);
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "method")
    );

    let v = get("/api/entries/dpo").await.json();
    assert_eq!(v["id"], "dpo");
    assert!(v["body_html"].as_str().unwrap().contains("<math"));

    let r = get("/api/entries/dpo/bibtex").await;
    assert_eq!(r.content_type, "application/x-bibtex; charset=utf-8");
    assert!(biblatex::Bibliography::parse(&r.body).is_ok());

    let v = get("/api/taxonomy").await.json();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(v["nodes"][1]["path"], "forward");

    let v = get("/api/stats").await.json();
    assert_eq!(
        v["entries"].as_u64(),
        Some(Catalog::embedded().unwrap().entries.len() as u64)
    );

    let v = get("/healthz").await.json();
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_api_routes() {
    let v = get("/api/openapi.json").await.json();
    assert_eq!(v["openapi"], "3.1.0");
    let mut documented: Vec<&str> = v["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut mounted: Vec<&str> = API_ROUTES.to_vec();
    documented.sort();
    mounted.sort();
    assert_eq!(documented, mounted);
    // And every listed route is really mounted (a concrete id stands in for {id}, a test run for {name}).
    let (dir, site) = site_with_runs();
    for route in API_ROUTES {
        let uri = route.replace("{id}", "dpo").replace("{name}", "dpo-toy");
        let r = call(
            routes(site.clone()),
            Request::get(&uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{route}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_parameters_are_400_with_the_parameter_named() {
    for (uri, parameter) in [
        ("/api/search?limit=0", "limit"),
        ("/api/search?limit=abc", "limit"),
        ("/api/search?offset=-1", "offset"),
        ("/api/search?rice=honesty", "rice"),
        ("/api/search?kind=algorithm", "kind"),
        ("/api/search?place=forward/nowhere", "place"),
        ("/api/search?implemented=maybe", "implemented"),
        ("/api/search?type=video", "type"),
        ("/api/search?q=a&q=b", "q"),
        ("/api/search?color=blue", "color"),
        ("/api/entries?q=dpo", "q"),
    ] {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        let v = r.json();
        assert_eq!(v["error"]["status"], 400, "{uri}");
        assert_eq!(v["error"]["code"], "bad_parameter");
        assert_eq!(v["error"]["parameter"], parameter, "{uri}");
    }
    let r = get("/search?rice=honesty").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::BAD_REQUEST, "text/html; charset=utf-8")
    );
    assert!(r.body.contains("rice"));
}

#[tokio::test]
async fn unknown_ids_and_routes_are_404_in_the_right_shape() {
    let r = get("/api/entries/no-such-entry").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
    let r = get("/api/entries/no-such-entry/bibtex").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get("/api/nothing-here").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::NOT_FOUND, "application/json")
    );
    let r = get("/entries/no-such-entry").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::NOT_FOUND, "text/html; charset=utf-8")
    );
    assert!(r.body.contains("404"));
    let r = get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get("/static/nope.css").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get("/book/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no book is built yet");
}

#[tokio::test]
async fn oversized_requests_get_413_and_414() {
    let long = format!("/api/search?q={}", "a".repeat(rice_server::MAX_URI_BYTES));
    let r = get(&long).await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    assert_eq!(r.json()["error"]["code"], "uri_too_long");
    // A 10 kB query is still fine.
    let r = get(&format!("/api/search?q={}", "reward+".repeat(1_400))).await;
    assert_eq!(r.status, StatusCode::OK);
    let big = Request::get("/api/search?q=x")
        .header(header::CONTENT_LENGTH, rice_server::MAX_BODY_BYTES + 1)
        .body(Body::from(vec![b'x'; rice_server::MAX_BODY_BYTES + 1]))
        .unwrap();
    let r = call(app(), big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn hardening_headers_are_on_every_response() {
    for uri in [
        "/",
        "/entries/dpo",
        "/api/search?q=x",
        "/static/style.css",
        "/nope",
        "/api/nope",
    ] {
        let r = get(uri).await;
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{uri}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{uri}: {csp}"
        );
    }
}

#[tokio::test]
async fn static_assets_are_embedded_and_traversal_is_impossible() {
    let r = get("/static/style.css").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (StatusCode::OK, "text/css; charset=utf-8")
    );
    let r = get("/static/site.js").await;
    assert!(r.body.contains("api/search"));
    for uri in [
        "/static/..%2fCargo.toml",
        "/static/../Cargo.toml",
        "/static/%2e%2e%2fsrc%2flib.rs",
    ] {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn a_book_directory_is_served_without_escaping_it() {
    let dir = std::env::temp_dir().join(format!("rice-book-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("book")).unwrap();
    std::fs::write(dir.join("book/index.html"), "<h1>Course book</h1>").unwrap();
    std::fs::write(dir.join("secret.txt"), "outside the book").unwrap();
    let site = Arc::new(
        Site::new(
            Catalog::embedded().unwrap(),
            SiteOptions {
                book_dir: Some(dir.join("book")),
                ..SiteOptions::default()
            },
        )
        .unwrap(),
    );
    let r = call(
        routes(site.clone()),
        Request::get("/book/index.html")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Course book"));
    for uri in [
        "/book/../secret.txt",
        "/book/..%2fsecret.txt",
        "/book/%2e%2e/secret.txt",
        "/book//etc/passwd",
    ] {
        let r = call(
            routes(site.clone()),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
        .await;
        assert!(
            !r.body.contains("outside the book"),
            "{uri} escaped the book directory"
        );
        assert_ne!(r.status, StatusCode::OK, "{uri}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_sitemap_lists_every_entry() {
    let r = get("/sitemap.xml").await;
    assert_eq!(r.content_type, "application/xml; charset=utf-8");
    let n = Catalog::embedded().unwrap().entries.len();
    assert_eq!(r.body.matches("<loc>").count(), n + 4);
    assert!(r.body.contains("<loc>http://localhost/entries/dpo</loc>"));
}

/// 1,000 random query strings (random bytes, percent-encoded or raw, random parameter names) never give a 5xx.
#[tokio::test]
async fn random_query_strings_never_give_a_server_error() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> =
        "abcdefghijklmnopqrstuvwxyz ABC0123456789\"'()+-*~^:&=%#?/\\<>{}[]!|.,;é中🙂\u{0}\t"
            .chars()
            .collect();
    let keys = [
        "q",
        "limit",
        "offset",
        "place",
        "rice",
        "kind",
        "implemented",
        "type",
        "x",
    ];
    let app = app();
    for i in 0..1_000 {
        let len = (next() % 60) as usize;
        let text: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let encoded: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let key = keys[(next() % keys.len() as u64) as usize];
        let query = match i % 3 {
            0 => format!("q={encoded}"),
            1 => format!("{key}={encoded}"),
            // Raw bytes where a URI allows them: stray % and & included.
            _ => format!(
                "q={}",
                text.chars()
                    .filter(|c| c.is_ascii_graphic() && *c != '#')
                    .collect::<String>()
            ),
        };
        let Ok(request) = Request::get(format!("/api/search?{query}")).body(Body::empty()) else {
            continue;
        };
        let r = call(app.clone(), request).await;
        assert!(
            !r.status.is_server_error(),
            "{query:?} gave {}: {}",
            r.status,
            r.body
        );
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
            "{query:?} gave {}",
            r.status
        );
    }
}

/// A runs directory with one run (`dpo-toy`: summary, config, metrics, a plot), a broken one, and a site over it.
fn site_with_runs() -> (std::path::PathBuf, Arc<Site>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rice-runs-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let run = dir.join("dpo-toy");
    std::fs::create_dir_all(run.join("plots")).unwrap();
    std::fs::write(
        run.join("summary.json"),
        r#"{"method": "dpo", "steps": 200, "win_rate": 0.71}"#,
    )
    .unwrap();
    std::fs::write(
        run.join("config.toml"),
        "beta = 0.1\nlearning_rate = 5e-4\n",
    )
    .unwrap();
    let metrics: String = (0..30)
        .map(|i| {
            format!(
                "{{\"step\": {i}, \"loss\": {:.3}}}\n",
                0.69 - i as f64 * 0.01
            )
        })
        .collect();
    std::fs::write(run.join("metrics.jsonl"), metrics + "not json\n").unwrap();
    std::fs::write(
        run.join("plots/loss.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("empty-dir")).unwrap();
    std::fs::write(dir.join("secret.txt"), "outside").unwrap();
    let options = SiteOptions {
        runs_dir: Some(dir.clone()),
        ..SiteOptions::default()
    };
    (
        dir,
        Arc::new(Site::new(Catalog::embedded().unwrap(), options).unwrap()),
    )
}

#[tokio::test]
async fn runs_are_listed_and_shown_from_the_runs_directory() {
    let (dir, site) = site_with_runs();
    let page = |uri: &str| {
        call(
            routes(site.clone()),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
    };
    let r = page("/runs").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("href=\"/runs/dpo-toy\"") && r.body.contains("win_rate: 0.71"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("empty-dir"),
        "a directory without summary or metrics is not a run"
    );

    let r = page("/runs/dpo-toy").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("The last 20 of 30 rows"),
        "bad metrics lines are skipped"
    );
    assert!(r.body.contains("<img src=\"/runs/dpo-toy/plots/loss.svg\""));
    assert!(r.body.contains("learning_rate = 5e-4"));

    let r = page("/runs/dpo-toy/plots/loss.svg").await;
    assert_eq!(r.content_type, "image/svg+xml");
    assert_eq!(
        r.headers["content-security-policy"], "default-src 'none'; style-src 'unsafe-inline'",
        "scripts in SVG never run"
    );

    let v = page("/api/runs").await.json();
    assert_eq!(v["total"], 1);
    let v = page("/api/runs/dpo-toy").await.json();
    assert_eq!(v["metrics"].as_array().unwrap().len(), 30);
    assert_eq!(v["summary"]["method"], "dpo");

    for uri in [
        "/runs/nope",
        "/runs/..",
        "/runs/.%2e",
        "/runs/dpo-toy/plots/..%2f..%2fsecret.txt",
        "/runs/dpo-toy/plots/loss.txt",
        "/api/runs/empty-dir",
    ] {
        let r = page(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!r.body.contains("outside"), "{uri}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn runs_without_a_runs_directory_explain_how_to_get_one() {
    let r = get("/runs").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("rice serve --runs DIR"));
    assert_eq!(
        get("/api/runs/anything").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_served_book_is_searched_and_linked_from_entry_pages() {
    let dir = std::env::temp_dir().join(format!("rice-book-links-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("chapters")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>Course book</h1>").unwrap();
    let section = rice_search::Document {
        doc_type: rice_search::DocType::Section,
        id: "chapters/04-x#brewing".into(),
        title: "4. Feedback › Brewing".into(),
        aliases: Vec::new(),
        summary: String::new(),
        body: "A word only the book uses: glaivouxite.".into(),
        place: String::new(),
        rice_primary: Vec::new(),
        rice_secondary: Vec::new(),
        kind: None,
        year: None,
        has_implementation: false,
        url: "/book/chapters/04-x.html#brewing".into(),
    };
    let mut options = SiteOptions {
        book_dir: Some(dir.clone()),
        ..SiteOptions::default()
    };
    options.book.sections = vec![section];
    options.book.backlinks.insert(
        "dpo".into(),
        vec![("4. Feedback".into(), "/book/chapters/04-x.html#dpo".into())],
    );
    let site = Arc::new(Site::new(Catalog::embedded().unwrap(), options).unwrap());
    let get = |uri: &str| {
        call(
            routes(Arc::clone(&site)),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
    };
    let r = get("/entries/dpo").await;
    assert!(
        r.body.contains("href=\"/book/entries/dpo.html\""),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("href=\"/book/chapters/04-x.html#dpo\""),
        "{}",
        r.body
    );
    let r = get("/search?q=glaivouxite").await;
    assert!(r.body.contains("/book/chapters/04-x.html#brewing") && r.body.contains("Course book"));
    let r = get("/book/chapters/missing.html").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.content_type.starts_with("text/html"),
        "{}",
        r.content_type
    );
    let r = get("/book/chapters/").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no directory listing");
    // Relative links need the trailing slash, and redirects stay under /book/.
    let r = get("/book").await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers[header::LOCATION], "/book/");
    let r = get("/book/chapters").await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers[header::LOCATION], "/book/chapters/");
    // Without a book, entry pages do not link to one and sections are not searched.
    let r = call(
        app(),
        Request::get("/entries/dpo").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(!r.body.contains("/book/entries/dpo.html"));
    let _ = std::fs::remove_dir_all(&dir);
}

// ── Security review: traversal, injection, headers, listings, connections ─────────────────────────────────────

/// What every trap outside the served roots holds; no response may ever contain it.
const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// A site serving a book and a runs directory, next to a directory of secrets that symlinks inside both point to:
/// a run directory that is a link out (`escape`), a plot and a `config.toml` that are links out, and a link that
/// stays inside (`latest -> dpo-toy`), which must keep working.
#[cfg(unix)]
fn site_with_traps() -> (tempfile::TempDir, Arc<Site>) {
    use std::fs;
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let outside = d.join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), SECRET).unwrap();
    fs::write(outside.join("secret.svg"), format!("<svg>{SECRET}</svg>")).unwrap();
    fs::write(
        outside.join("summary.json"),
        format!("{{\"secret\": \"{SECRET}\"}}"),
    )
    .unwrap();

    let book = d.join("book");
    fs::create_dir_all(book.join("chapters")).unwrap();
    fs::write(book.join("index.html"), "<h1>Course book</h1>").unwrap();
    fs::write(book.join("chapters/intro.html"), "<h1>Intro</h1>").unwrap();

    let runs = d.join("runs");
    let run = runs.join("dpo-toy");
    fs::create_dir_all(run.join("plots")).unwrap();
    fs::write(run.join("summary.json"), r#"{"method": "dpo"}"#).unwrap();
    fs::write(run.join("metrics.jsonl"), "{\"step\": 1, \"loss\": 0.5}\n").unwrap();
    fs::write(run.join("config.toml"), "beta = 0.1\n").unwrap();
    fs::write(
        run.join("plots/loss.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
    )
    .unwrap();
    symlink(outside.join("secret.svg"), run.join("plots/leak.svg")).unwrap();
    symlink(&outside, runs.join("escape")).unwrap();
    let linked = runs.join("linked-config");
    fs::create_dir_all(&linked).unwrap();
    fs::write(linked.join("summary.json"), r#"{"method": "sft"}"#).unwrap();
    symlink(outside.join("secret.txt"), linked.join("config.toml")).unwrap();
    symlink("dpo-toy", runs.join("latest")).unwrap();

    let options = SiteOptions {
        book_dir: Some(book),
        runs_dir: Some(runs),
        ..SiteOptions::default()
    };
    let site = Arc::new(Site::new(Catalog::embedded().unwrap(), options).unwrap());
    (dir, site)
}

/// Every path that comes from the URL — book files, static assets, entry ids, run names, plot names, on pages and
/// the API — tried with `..`, encoded dots and slashes, backslashes, absolute paths, NUL, non-UTF-8, overlong names
/// and symlinks out of the root: always a 404 or 400, never a 5xx, never a byte from outside.
#[cfg(unix)]
#[tokio::test]
async fn paths_from_the_url_never_leave_the_served_roots() {
    let (_dir, site) = site_with_traps();
    let long = "a".repeat(300);
    let deep = "a/".repeat(2100);
    let mut uris: Vec<String> = Vec::new();
    for root in [
        "/book",
        "/book/chapters",
        "/static",
        "/entries",
        "/api/entries",
        "/runs",
        "/api/runs",
        "/runs/dpo-toy/plots",
    ] {
        for attack in [
            "..",
            "%2e%2e",
            "..%2fsecret.txt",
            "..%2f..%2foutside%2fsecret.txt",
            "%2e%2e%2f%2e%2e%2foutside%2fsecret.svg",
            "..%5c..%5coutside%5csecret.txt",
            "%5c..%5csecret.txt",
            "%2fetc%2fpasswd",
            "%2fetc%2fpasswd.svg",
            "/etc/passwd",
            "secret.txt%00",
            "a%00b.svg",
            "%ff",
            "%c0%ae%c0%ae%2fsecret.txt",
            long.as_str(),
            deep.as_str(),
        ] {
            uris.push(format!("{root}/{attack}"));
        }
    }
    uris.extend(
        [
            "/runs/escape",
            "/api/runs/escape",
            "/runs/escape/plots/secret.svg",
            "/runs/dpo-toy/plots/leak.svg",
            "/api/entries/..%2f..%2fCargo.toml/bibtex",
        ]
        .map(String::from),
    );
    for uri in &uris {
        let r = call(
            routes(site.clone()),
            Request::get(uri.as_str()).body(Body::empty()).unwrap(),
        )
        .await;
        assert!(
            r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
            "{uri}: {}",
            r.status
        );
        assert!(!r.body.contains(SECRET), "{uri} read a file outside");
    }
    // Links inside the runs directory still work; links out are not runs, plots or configs.
    let get = |uri: &'static str| {
        call(
            routes(site.clone()),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
    };
    let r = get("/runs/latest").await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a symlink within the runs directory"
    );
    let r = get("/runs/dpo-toy").await;
    assert!(r.body.contains("plots/loss.svg") && !r.body.contains("leak.svg"));
    let r = get("/runs/linked-config").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains(SECRET));
    for uri in ["/runs", "/api/runs", "/api/runs/linked-config"] {
        let r = get(uri).await;
        assert!(
            !r.body.contains(SECRET) && !r.body.contains("escape"),
            "{uri}"
        );
    }
}

/// A path segment that is not UTF-8 once decoded is a 400 naming the parameter, in the site's shapes (axum's own
/// rejection would be plain text).
#[tokio::test]
async fn undecodable_path_segments_are_400s_naming_the_parameter() {
    for (uri, parameter) in [
        ("/api/entries/%ff", "id"),
        ("/api/entries/%ff/bibtex", "id"),
        ("/api/runs/%c3%28", "name"),
    ] {
        let r = get(uri).await;
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (StatusCode::BAD_REQUEST, "application/json"),
            "{uri}"
        );
        assert_eq!(r.json()["error"]["parameter"], parameter, "{uri}");
    }
    for (uri, parameter) in [
        ("/entries/%ff", "id"),
        ("/runs/%ff", "name"),
        ("/runs/x/plots/%ff", "file"),
        ("/static/%ff", "file"),
    ] {
        let r = get(uri).await;
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (StatusCode::BAD_REQUEST, "text/html; charset=utf-8"),
            "{uri}"
        );
        assert!(
            r.body.contains(&format!("bad parameter `{parameter}`")),
            "{uri}: {}",
            r.body
        );
    }
}

/// Script-injection payloads through every input a page echoes — the search box and its filters, unknown
/// parameters, entry ids, run and plot names, book and asset paths, any 404 — never come back unescaped.
#[cfg(unix)]
#[tokio::test]
async fn script_injection_is_escaped_wherever_input_is_echoed() {
    let (_dir, site) = site_with_traps();
    let payloads = [
        "\"><script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\" autofocus onfocus=alert(1) x=\"",
    ];
    let mut echoed = 0;
    for payload in payloads {
        let e: String = payload.bytes().map(|b| format!("%{b:02X}")).collect();
        let uris = [
            format!("/search?q={e}"),
            format!("/search?q=reward&place={e}"),
            format!("/search?q=reward&rice={e}"),
            format!("/search?kind={e}"),
            format!("/search?implemented={e}"),
            format!("/search?limit={e}"),
            format!("/search?offset={e}"),
            format!("/search?{e}=1"),
            format!("/entries?place={e}"),
            format!("/entries?{e}=1"),
            format!("/entries/{e}"),
            format!("/{e}"),
            format!("/no/such/{e}"),
            format!("/book/{e}"),
            format!("/book/chapters/{e}.html"),
            format!("/runs/{e}"),
            format!("/runs/dpo-toy/plots/{e}.svg"),
            format!("/static/{e}"),
        ];
        for uri in &uris {
            let r = call(
                routes(site.clone()),
                Request::get(uri.as_str()).body(Body::empty()).unwrap(),
            )
            .await;
            assert!(r.content_type.starts_with("text/html"), "{uri}");
            for raw in [
                payload,
                "<script>alert",
                "<img src=x",
                "\" autofocus onfocus",
            ] {
                assert!(!r.body.contains(raw), "{uri} echoes {raw:?} unescaped");
            }
            if r.body.contains("alert(1)") {
                echoed += 1;
            }
        }
        // The search box shows the query back, escaped.
        let r = get(&format!("/search?q={e}")).await;
        assert!(
            r.body.contains(
                &payload
                    .replace('<', "&#60;")
                    .replace('>', "&#62;")
                    .replace('"', "&#34;")
            ),
            "{}",
            r.body
        );
    }
    assert!(
        echoed >= 30,
        "only {echoed} responses showed the input at all"
    );
}

/// The headers every response carries, whatever produced it: pages, JSON, errors of every status, assets, the
/// book's files, redirects. Plots have their own, stricter policy.
#[cfg(unix)]
#[tokio::test]
async fn security_headers_are_on_every_kind_of_response() {
    let (_dir, site) = site_with_traps();
    let big_body = || Body::from(vec![b'x'; rice_server::MAX_BODY_BYTES + 1]);
    let long_query = "q=".to_owned() + &"a".repeat(rice_server::MAX_URI_BYTES);
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        (
            Request::get("/").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/search?q=dpo").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/api/search?q=dpo")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/healthz").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/sitemap.xml").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/static/style.css")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/static/site.js").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/static/favicon.svg")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/book/").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/book/chapters/intro.html")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/book").body(Body::empty()).unwrap(),
            StatusCode::PERMANENT_REDIRECT,
        ),
        (
            Request::get("/book/chapters").body(Body::empty()).unwrap(),
            StatusCode::TEMPORARY_REDIRECT,
        ),
        (
            Request::get("/book/missing.html")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::get("/runs").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/runs/dpo-toy").body(Body::empty()).unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/api/runs/dpo-toy")
                .body(Body::empty())
                .unwrap(),
            StatusCode::OK,
        ),
        (
            Request::get("/search?rice=honesty")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::get("/api/search?rice=honesty")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::get("/entries/%ff").body(Body::empty()).unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Request::get("/entries/nope").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::get("/api/entries/nope")
                .body(Body::empty())
                .unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::get("/nope").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            Request::post("/entries").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::post("/api/search").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Request::post("/search")
                .header(header::CONTENT_LENGTH, rice_server::MAX_BODY_BYTES + 1)
                .body(big_body())
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Request::post("/api/search")
                .header(header::CONTENT_LENGTH, rice_server::MAX_BODY_BYTES + 1)
                .body(big_body())
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Request::get(format!("/search?{long_query}"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::URI_TOO_LONG,
        ),
        (
            Request::get(format!("/api/search?{long_query}"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::URI_TOO_LONG,
        ),
    ];
    for (request, status) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let r = call(routes(site.clone()), request).await;
        assert_eq!(r.status, status, "{what}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(r.headers["x-frame-options"], "DENY", "{what}");
        assert_eq!(r.headers["referrer-policy"], "no-referrer", "{what}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert_eq!(
            csp,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            "{what}"
        );
    }
    let r = call(
        routes(site.clone()),
        Request::get("/runs/dpo-toy/plots/loss.svg")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(
        r.headers["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
}

/// No directory is ever listed: the book's root serves its index page, any other directory is a 404.
#[cfg(unix)]
#[tokio::test]
async fn no_directory_is_listed() {
    let (_dir, site) = site_with_traps();
    let get = |uri: &'static str| {
        call(
            routes(site.clone()),
            Request::get(uri).body(Body::empty()).unwrap(),
        )
    };
    let r = get("/book/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<h1>Course book</h1>") && !r.body.contains("chapters"));
    for uri in [
        "/book/chapters/",
        "/static/",
        "/static",
        "/runs/dpo-toy/",
        "/runs/dpo-toy/plots/",
        "/runs/dpo-toy/plots",
        "/api/runs/dpo-toy/plots/",
        "/runs/latest/plots/",
    ] {
        let r = get(uri).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        for name in [
            "intro.html",
            "site.js",
            "favicon.svg",
            "loss.svg",
            "summary.json",
        ] {
            assert!(!r.body.contains(name), "{uri} lists {name}");
        }
    }
}

/// `rice_server::serve` over the embedded catalog on a free loopback port, on a runtime of its own.
fn serve_on_loopback() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let site = site();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            rice_server::serve(listener, site).await.unwrap();
        });
    });
    address
}

/// Writes `request` on a new connection (from another thread: the server may answer and close before reading it
/// all) and reads the answer until the server closes: (status, the whole answer).
fn exchange(address: std::net::SocketAddr, request: Vec<u8>) -> (u16, String) {
    use std::io::{Read, Write};
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut bytes = Vec::new();
    // A reset after the answer (the server closed with our request unread) ends the reading, not the test.
    let _ = (&stream).read_to_end(&mut bytes);
    sending.join().unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn healthz(address: std::net::SocketAddr) -> (u16, String) {
    exchange(
        address,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    )
}

/// Oversized request heads over real HTTP: a URI over our limit gets our JSON 414; one over hyper's limits (10 MB)
/// and 100 kB of headers get hyper's own 431 before any handler runs; the server keeps serving.
#[test]
fn oversized_uris_and_headers_are_refused_on_the_wire() {
    let address = serve_on_loopback();
    let get = |target: &str, headers: &str| {
        exchange(
            address,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n")
                .into_bytes(),
        )
    };
    let (status, text) = get(&format!("/api/search?q={}", "a".repeat(20_000)), "");
    assert_eq!(status, 414, "{text}");
    assert!(text.contains("\"code\":\"uri_too_long\""), "{text}");
    let (status, text) = get(&format!("/search?q={}", "a".repeat(20_000)), "");
    assert_eq!(status, 414);
    assert!(
        text.contains("request URI too long (limit 16384 bytes)"),
        "{text}"
    );

    let started = std::time::Instant::now();
    let (status, _) = get(&format!("/api/search?q={}", "a".repeat(10 << 20)), "");
    assert_eq!(status, 431, "a 10 MB URI");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let many: String = (0..100)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)))
        .collect();
    assert_eq!(get("/healthz", &many).0, 431, "100 headers of 1 kB");
    let huge = format!("X-Pad: {}\r\n", "a".repeat(1 << 20));
    assert_eq!(get("/healthz", &huge).0, 431, "a 1 MB header");
    assert_eq!(healthz(address).0, 200);
}

/// Connections that send nothing, or a request head a byte at a time (slowloris), neither block other clients nor
/// stay open: each is closed `HEADER_READ_TIMEOUT` after it opened.
#[test]
fn idle_and_slowly_sent_connections_are_closed_and_block_no_one() {
    use std::io::{ErrorKind, Read, Write};
    use std::time::{Duration, Instant};
    let address = serve_on_loopback();
    assert_eq!(healthz(address).0, 200);
    let opened = Instant::now();
    let mut idle: Vec<std::net::TcpStream> = (0..200)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(address).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
            }
            s
        })
        .collect();
    // The slowloris: a header byte every 200 ms, for ever.
    let slow = std::net::TcpStream::connect(address).unwrap();
    let mut writer = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        while writer.write_all(b"X").is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    assert_eq!(healthz(address).0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "others wait {:?}",
        started.elapsed()
    );

    // The server closes the slowloris (end of stream, or a reset) once its time is up.
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buffer = [0u8; 256];
    let _ = (&slow).read(&mut buffer);
    let closed_after = opened.elapsed();
    let limit = rice_server::HEADER_READ_TIMEOUT;
    assert!(
        closed_after >= limit - Duration::from_millis(500)
            && closed_after < limit + Duration::from_secs(3),
        "the slowloris was closed after {closed_after:?}"
    );
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        // Closed: end of stream or a reset; a read timeout would mean it is still open.
        match s.read(&mut buffer) {
            Ok(0) => {}
            Err(e) if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!(
                "an idle connection is still open: {other:?} after {:?}",
                opened.elapsed()
            ),
        }
    }
    assert_eq!(healthz(address).0, 200);
}

#[tokio::test]
async fn a_parameter_without_a_name_is_named_by_what_was_written() {
    // Found by the fuzzer (fuzz/regressions/search_query/): `?=100` used to be reported as parameter ``.
    let r = get("/api/search?q=dpo&=100").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = r.json();
    assert_eq!(v["error"]["parameter"], "=100");
    assert_eq!(
        v["error"]["message"],
        "bad parameter `=100`: a parameter without a name; this route takes q, place, rice, kind, implemented, \
         type, limit, offset"
    );
}
