//! The RICE Atlas course book.
//!
//! What it is for: turning the hand-written chapters (`book/chapters/`), the labs (`book/labs/`) and the catalog
//! (one reference page per entry, grouped by the survey's taxonomy) into an mdBook source tree with a generated
//! `SUMMARY.md`, and building it into HTML with the `mdbook-driver` library — no `mdbook` binary, no network.
//! Math becomes MathML at build time ([`math::MathPreprocessor`]); the pages carry no inline script or style, so the
//! site serves them under its strict CSP at `/book/`. It also tells the rest of the site what the book contains:
//! its sections for the search index ([`Book::search_documents`]) and which pages discuss each entry
//! ([`Book::backlinks`]).
//!
//! What it is not for: serving (the server reads the built directory as plain files) or running the labs (a
//! test in the root package runs every lab command).
//!
//! Layout of the generated book (paths relative to the book root, served under `/book/`):
//! `index.html` (introduction), `chapters/<file>.html`, `labs/<name>.html`, `reference/<taxonomy path>.html`,
//! `entries/<id>.html`. Chapters link to entries as `../entries/<id>.md` and to labs as `../labs/<name>.md`:
//! those are the book's own pages, so the links work as written; [`Book::write_source`] refuses a link to a page or
//! an anchor that does not exist.

pub mod markdown;
pub mod math;
mod pages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rice_catalog::Catalog;
use rice_search::{DocType, Document};

pub use crate::math::{MathConverter, MathFailure, MathPreprocessor};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Where the book is served on the site.
pub const URL_PREFIX: &str = "/book";

/// The labs in teaching order (a lab not listed here comes after these, alphabetically).
pub const LAB_ORDER: &[&str] = &[
    "sft",
    "reward-ppo",
    "safe-rlhf",
    "dpo",
    "aligner",
    "stream-aligner",
    "elasticity",
    "evaluation",
];

/// Something that stops the book from being made.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{}", .0.join("\n"))]
    BrokenLinks(Vec<String>),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Source(String),
    #[error("mdBook: {0:#}")]
    Mdbook(anyhow::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BookError + '_ {
    move |source| BookError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a hand-written page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    Chapter,
    Lab,
}

/// A hand-written page: a chapter or a lab.
#[derive(Clone, Debug)]
pub struct Page {
    pub kind: PageKind,
    /// The file name without `.md`, e.g. `04-learning-from-feedback` or `dpo`.
    pub stem: String,
    /// The page's first `#` heading.
    pub title: String,
    pub markdown: String,
}

impl Page {
    fn new(kind: PageKind, stem: &str, markdown: &str) -> Result<Page, BookError> {
        let dir = match kind {
            PageKind::Chapter => "chapters",
            PageKind::Lab => "labs",
        };
        let title = markdown::headings(markdown)
            .into_iter()
            .find(|h| h.level == 1)
            .map(|h| h.title)
            .ok_or_else(|| BookError::Source(format!("book/{dir}/{stem}.md has no `#` title")))?;
        Ok(Page {
            kind,
            stem: stem.to_owned(),
            title,
            markdown: markdown.to_owned(),
        })
    }

    /// The page's path in the book source, e.g. `chapters/04-learning-from-feedback.md`.
    pub fn path(&self) -> String {
        match self.kind {
            PageKind::Chapter => format!("chapters/{}.md", self.stem),
            PageKind::Lab => format!("labs/{}.md", self.stem),
        }
    }

    /// The title as the table of contents shows it: chapters numbered by their file name (`4. Learning from
    /// Feedback`), labs as written.
    pub fn toc_title(&self) -> String {
        let number: String = self.stem.chars().take_while(char::is_ascii_digit).collect();
        match (self.kind, number.parse::<u32>()) {
            (PageKind::Chapter, Ok(n)) => format!("{n}. {}", self.title),
            _ => self.title.clone(),
        }
    }
}

/// A page of the book that discusses an entry (a chapter or a lab linking to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backlink {
    /// The page's title as the table of contents shows it.
    pub title: String,
    /// The site URL of the page, at the section holding the first link, e.g.
    /// `/book/chapters/04-learning-from-feedback.html#preference-modelling`.
    pub url: String,
}

/// The book's hand-written sources, and the catalog its reference pages come from.
pub struct Book<'c> {
    pub catalog: &'c Catalog,
    /// Chapters in file-name order.
    pub chapters: Vec<Page>,
    /// Labs in [`LAB_ORDER`].
    pub labs: Vec<Page>,
    /// The introduction (`book/intro.md`).
    pub intro: String,
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// Markdown pages in the book (introduction, chapters, labs, reference pages).
    pub pages: usize,
    /// Formulas shown as LaTeX because they did not convert.
    pub math_failures: Vec<MathFailure>,
    pub millis: u128,
}

impl<'c> Book<'c> {
    /// The chapters and labs built into this crate, with `catalog`'s reference pages.
    pub fn embedded(catalog: &'c Catalog) -> Result<Book<'c>, BookError> {
        let chapters = embedded::CHAPTERS
            .iter()
            .map(|(stem, md)| Page::new(PageKind::Chapter, stem, md))
            .collect::<Result<Vec<_>, _>>()?;
        let labs = embedded::LABS
            .iter()
            .map(|(stem, md)| Page::new(PageKind::Lab, stem, md))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Book::from_pages(
            catalog,
            chapters,
            labs,
            include_str!("../intro.md"),
        ))
    }

    /// The chapters and labs in `dir/chapters` and `dir/labs` (e.g. `book/` while editing), read from disk.
    pub fn from_dir(catalog: &'c Catalog, dir: &Path) -> Result<Book<'c>, BookError> {
        let read = |sub: &str, kind: PageKind| -> Result<Vec<Page>, BookError> {
            let dir = dir.join(sub);
            let mut pages = Vec::new();
            for item in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let path = item.map_err(io(&dir))?.path();
                if path.extension().is_some_and(|e| e == "md") {
                    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    pages.push(Page::new(kind, stem, &text)?);
                }
            }
            pages.sort_by(|a, b| a.stem.cmp(&b.stem));
            Ok(pages)
        };
        let intro_path = dir.join("intro.md");
        let intro = std::fs::read_to_string(&intro_path).map_err(io(&intro_path))?;
        Ok(Book::from_pages(
            catalog,
            read("chapters", PageKind::Chapter)?,
            read("labs", PageKind::Lab)?,
            &intro,
        ))
    }

    fn from_pages(
        catalog: &'c Catalog,
        chapters: Vec<Page>,
        mut labs: Vec<Page>,
        intro: &str,
    ) -> Book<'c> {
        labs.sort_by_key(|l| {
            (
                LAB_ORDER
                    .iter()
                    .position(|n| *n == l.stem)
                    .unwrap_or(LAB_ORDER.len()),
                l.stem.clone(),
            )
        });
        Book {
            catalog,
            chapters,
            labs,
            intro: intro.to_owned(),
        }
    }

    /// Chapters, then labs.
    pub fn pages(&self) -> impl Iterator<Item = &Page> {
        self.chapters.iter().chain(&self.labs)
    }

    /// Writes the mdBook source (`book.toml`, `theme/`, `src/` with `SUMMARY.md` and every page) into `root`,
    /// set up to build its HTML into `html_dir`. Refuses, listing each one as `file:line`, links to pages or
    /// anchors that do not exist. Returns the number of Markdown pages.
    pub fn write_source(&self, root: &Path, html_dir: &Path) -> Result<usize, BookError> {
        let source = pages::Source::generate(self);
        let broken = source.broken_links(self.catalog);
        if !broken.is_empty() {
            return Err(BookError::BrokenLinks(broken));
        }
        source.write(root, html_dir)
    }

    /// Generates the source into `work` and builds the HTML into `html_dir` (emptied first).
    pub fn build(&self, work: &Path, html_dir: &Path) -> Result<BuildReport, BookError> {
        let started = Instant::now();
        if work.exists() {
            std::fs::remove_dir_all(work).map_err(io(work))?;
        }
        let pages = self.write_source(work, html_dir)?;
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut book = mdbook_driver::MDBook::load(work).map_err(BookError::Mdbook)?;
        book.with_preprocessor(MathPreprocessor::new(Arc::clone(&failures)));
        book.build().map_err(BookError::Mdbook)?;
        let math_failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
        Ok(BuildReport {
            pages,
            math_failures,
            millis: started.elapsed().as_millis(),
        })
    }

    /// Every chapter and lab cut at its headings, as search documents (type `section`) whose URL is the page
    /// under [`URL_PREFIX`] at the heading's anchor. Entry reference pages are left out: the entries are indexed
    /// already.
    pub fn search_documents(&self) -> Vec<Document> {
        let mut out = Vec::new();
        for page in self.pages() {
            let html = page.path().replace(".md", ".html");
            for section in markdown::sections(&page.markdown) {
                if section.text.is_empty() {
                    continue;
                }
                let (title, url, id) = match &section.heading {
                    Some(h) if h.level == 1 => (
                        page.toc_title(),
                        format!("{URL_PREFIX}/{html}"),
                        page.path().replace(".md", ""),
                    ),
                    Some(h) => (
                        format!("{} › {}", page.toc_title(), h.title),
                        format!("{URL_PREFIX}/{html}#{}", h.id),
                        format!("{}#{}", page.path().replace(".md", ""), h.id),
                    ),
                    None => (
                        page.toc_title(),
                        format!("{URL_PREFIX}/{html}"),
                        page.path().replace(".md", ""),
                    ),
                };
                out.push(Document {
                    doc_type: DocType::Section,
                    id,
                    title,
                    aliases: Vec::new(),
                    summary: String::new(),
                    body: section.text,
                    place: String::new(),
                    rice_primary: Vec::new(),
                    rice_secondary: Vec::new(),
                    kind: None,
                    year: None,
                    has_implementation: false,
                    url,
                });
            }
        }
        out
    }

    /// For each entry id, the chapters and labs that link to it (in book order, one link per page, at the
    /// section of its first link).
    pub fn backlinks(&self) -> BTreeMap<String, Vec<Backlink>> {
        let mut out: BTreeMap<String, Vec<Backlink>> = BTreeMap::new();
        for page in self.pages() {
            let html = page.path().replace(".md", ".html");
            for link in markdown::links(&page.markdown) {
                let Some(id) = entry_link(&link.dest) else {
                    continue;
                };
                let list = out.entry(id.to_owned()).or_default();
                let prefix = format!("{URL_PREFIX}/{html}");
                if list.iter().any(|b| b.url.starts_with(&prefix)) {
                    continue;
                }
                let url = match &link.section {
                    Some(s)
                        if markdown::headings(&page.markdown).first().map(|h| &h.id) != Some(s) =>
                    {
                        format!("{prefix}#{s}")
                    }
                    _ => prefix,
                };
                list.push(Backlink {
                    title: page.toc_title(),
                    url,
                });
            }
        }
        out
    }

    /// Page path (e.g. `chapters/04-learning-from-feedback`) → title, for showing search hits.
    pub fn page_titles(&self) -> BTreeMap<String, String> {
        self.pages()
            .map(|p| (p.path().replace(".md", ""), p.toc_title()))
            .collect()
    }
}

/// The site URL of an entry's reference page in the book.
pub fn entry_page_url(id: &str) -> String {
    format!("{URL_PREFIX}/entries/{id}.html")
}

/// The entry id of a link from a chapter or lab to an entry's page (`../entries/<id>.md`, with or without an
/// anchor).
pub fn entry_link(dest: &str) -> Option<&str> {
    let path = dest.split('#').next().unwrap_or(dest);
    path.strip_prefix("../entries/")?.strip_suffix(".md")
}
