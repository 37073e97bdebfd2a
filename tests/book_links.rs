//! The link checker: `rice build` writes the course book, `rice serve` serves it, and no link breaks — not inside
//! the book (files and `#anchors`), not from the book to the site (every `/entries/…`, `/api/…` and other site URL
//! answers 200), and not from the site back to the book (every `/book/…` link on every entry page leads to a file
//! and an anchor that exist). The built pages also keep the site's CSP promises: no inline script or style.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;
use common::{ok, rice};

/// A `rice serve` child process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(book: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rice"))
        .args(["serve", "--addr", "127.0.0.1:0", "--book"])
        .arg(book)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rice serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    Server { child, addr }
}

/// A plain HTTP/1.1 GET: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Values of an attribute (`href`, `src`, `id`) in an HTML page.
fn attributes(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| decode(&rest[..end]))
        })
        .collect()
}

fn decode(value: &str) -> String {
    value
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
}

/// Percent-decoding for anchors (mdBook writes `#über` as `#%C3%BCber` in some places).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            html_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

/// `target` (a path relative to the page's directory, or absolute under `/book/`) as a path under `root`.
fn resolve(root: &Path, page: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = if let Some(abs) = target.strip_prefix("/book/") {
        return resolve(root, &root.join("index.html"), abs);
    } else {
        page.strip_prefix(root)
            .ok()?
            .parent()?
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s.to_owned()),
        }
    }
    let mut path = root.join(parts.join("/"));
    if target.is_empty() || target.ends_with('/') {
        path = path.join("index.html");
    }
    Some(path)
}

struct Checker {
    root: PathBuf,
    ids: HashMap<PathBuf, BTreeSet<String>>,
    broken: Vec<String>,
}

impl Checker {
    fn ids(&mut self, file: &Path) -> &BTreeSet<String> {
        self.ids.entry(file.to_owned()).or_insert_with(|| {
            let html = std::fs::read_to_string(file).unwrap_or_default();
            attributes(&html, "id").into_iter().collect()
        })
    }

    /// Checks a link to a file of the book (relative to `page`, or absolute `/book/…`).
    fn book_link(&mut self, from: &str, page: &Path, link: &str) {
        let (path, fragment) = match link.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (link, None),
        };
        let path = path.split('?').next().unwrap_or(path);
        let Some(file) = (if path.is_empty() {
            Some(page.to_owned())
        } else {
            resolve(&self.root, page, path)
        }) else {
            self.broken
                .push(format!("{from}: `{link}` leaves the book"));
            return;
        };
        if !file.is_file() {
            self.broken
                .push(format!("{from}: `{link}`: no file {}", file.display()));
            return;
        }
        if let Some(fragment) = fragment.filter(|f| !f.is_empty())
            && file.extension().is_some_and(|e| e == "html")
        {
            let fragment = percent_decode(fragment);
            if !self.ids(&file).contains(&fragment) {
                self.broken.push(format!(
                    "{from}: `{link}`: no id `{fragment}` in the target page"
                ));
            }
        }
    }
}

#[test]
fn no_link_breaks_in_the_book_or_between_book_and_site() {
    let out = tempfile::tempdir().unwrap();
    let built = ok(&rice(&["build", "--out", out.path().to_str().unwrap()]));
    assert!(built.contains("wrote the course book"), "{built}");
    let root = out.path().join("book");
    let mut pages = Vec::new();
    html_files(&root, &mut pages);
    pages.sort();
    assert!(pages.len() > 200, "only {} pages", pages.len());

    let mut checker = Checker {
        root: root.clone(),
        ids: HashMap::new(),
        broken: Vec::new(),
    };
    // Site URL → the first page linking to it.
    let mut site_links: BTreeMap<String, String> = BTreeMap::new();
    let mut checked = 0;
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        let from = page.strip_prefix(&root).unwrap().display().to_string();
        assert!(
            !html.contains(" style=\""),
            "{from}: an inline style attribute (the CSP forbids it)"
        );
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains(" src=\""), "{from}: an inline script");
        }
        for link in attributes(&html, "href")
            .into_iter()
            .chain(attributes(&html, "src"))
        {
            checked += 1;
            if link.contains("://") || link.starts_with("mailto:") || link.starts_with("data:") {
                continue;
            }
            if link.starts_with('/') && !link.starts_with("/book/") {
                site_links.entry(link).or_insert_with(|| from.clone());
            } else {
                checker.book_link(&from, page, &link);
            }
        }
    }
    assert!(
        checker.broken.is_empty(),
        "{} broken links inside the book:\n{}",
        checker.broken.len(),
        checker.broken.join("\n")
    );

    let server = serve(&root);
    let mut broken = Vec::new();
    for (link, from) in &site_links {
        let path = link.split('#').next().unwrap();
        let (status, _) = get(&server.addr, path);
        if status != 200 {
            broken.push(format!("{from}: `{link}` answers {status}"));
        }
    }
    // From the site back to the book: every entry page's links into the book.
    let catalog = rice_catalog::Catalog::embedded().unwrap();
    let mut to_book = 0;
    for entry in &catalog.entries {
        let (status, html) = get(&server.addr, &format!("/entries/{}", entry.id));
        assert_eq!(status, 200, "/entries/{}", entry.id);
        let reference = format!("/book/entries/{}.html", entry.id);
        assert!(
            html.contains(&format!("href=\"{reference}\"")),
            "/entries/{} does not link to its book page",
            entry.id
        );
        for link in attributes(&html, "href")
            .into_iter()
            .filter(|l| l.starts_with("/book/"))
        {
            to_book += 1;
            checker.book_link(
                &format!("/entries/{}", entry.id),
                &root.join("index.html"),
                &link,
            );
            let (status, _) = get(&server.addr, link.split('#').next().unwrap());
            if status != 200 {
                broken.push(format!("/entries/{}: `{link}` answers {status}", entry.id));
            }
        }
    }
    broken.extend(checker.broken);
    assert!(
        broken.is_empty(),
        "{} broken links between book and site:\n{}",
        broken.len(),
        broken.join("\n")
    );
    // Chapters discuss entries, so some entry pages must link to chapters, not only to their reference page.
    assert!(
        to_book > catalog.entries.len() + 50,
        "only {to_book} links from entry pages into the book"
    );
    eprintln!(
        "{} pages, {checked} links and sources in the book, {} distinct site URLs, {to_book} links from entry pages \
         into the book: none broken",
        pages.len(),
        site_links.len()
    );
}

#[test]
fn the_served_book_has_search_and_math() {
    let out = tempfile::tempdir().unwrap();
    ok(&rice(&["build", "--out", out.path().to_str().unwrap()]));
    let server = serve(&out.path().join("book"));
    let (status, chapter) = get(
        &server.addr,
        "/book/chapters/04-learning-from-feedback.html",
    );
    assert_eq!(status, 200);
    assert!(chapter.matches("<math").count() > 10, "math is MathML");
    assert!(!chapter.contains("$$"), "no LaTeX left behind");
    assert!(
        chapter.contains("action=\"/search\""),
        "the site's search box"
    );
    // A word that only the book uses finds a book section, linked at its anchor.
    let (status, json) = get(&server.addr, "/api/search?q=glaivouxite&type=section");
    assert_eq!(status, 200, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let url = v["hits"][0]["url"].as_str().unwrap_or_default();
    assert!(
        url.starts_with("/book/") && url.contains(".html#"),
        "{json}"
    );
    // The same query on the search page shows it as a book result.
    let (status, page) = get(&server.addr, "/search?q=glaivouxite");
    assert_eq!(status, 200);
    assert!(page.contains("Course book") && page.contains(url), "{page}");
    // A missing book page is the site's 404 page, and no directory is listed.
    let (status, page) = get(&server.addr, "/book/chapters/nope.html");
    assert_eq!(status, 404);
    assert!(page.contains("<html"), "{page}");
    let (status, _) = get(&server.addr, "/book/chapters/");
    assert_eq!(status, 404, "no directory listing");
}

#[test]
fn the_checker_finds_broken_files_and_anchors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("chapters")).unwrap();
    std::fs::write(root.join("index.html"), "<h1 id=\"top\">x</h1>").unwrap();
    let page = root.join("chapters/a.html");
    std::fs::write(&page, "<a href=\"../index.html#top\">").unwrap();
    let mut checker = Checker {
        root: root.clone(),
        ids: HashMap::new(),
        broken: Vec::new(),
    };
    checker.book_link("a", &page, "../index.html#top");
    checker.book_link("a", &page, "/book/index.html");
    checker.book_link("a", &page, "#");
    assert!(checker.broken.is_empty(), "{:?}", checker.broken);
    checker.book_link("a", &page, "../index.html#nowhere");
    checker.book_link("a", &page, "../missing.html");
    checker.book_link("a", &page, "../../../etc/passwd");
    assert_eq!(checker.broken.len(), 3, "{:?}", checker.broken);
    assert_eq!(
        attributes("<a href=\"x?a=1&amp;b=2\" id=\"i\">", "href"),
        ["x?a=1&b=2"]
    );
}
