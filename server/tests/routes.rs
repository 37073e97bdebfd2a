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
