//! `rice build`: writes what the site serves into a directory — the course book (HTML) and the search index over
//! catalog entries and book sections.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rice_book::Book;
use rice_catalog::Catalog;
use rice_search::SearchIndex;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Where to write (created if missing): the book's HTML to OUT/book, its generated mdBook source to
    /// OUT/book-src, the search index to OUT/search-index.
    #[arg(long, value_name = "DIR", default_value = "target/rice-site")]
    pub out: PathBuf,
}

pub fn run(args: BuildArgs, catalog: &Catalog) -> anyhow::Result<()> {
    let book = Book::embedded(catalog).context("reading the book's chapters and labs")?;
    let started = Instant::now();
    let report = build_book(&book, &args.out)?;
    println!(
        "wrote the course book ({} pages) to {} in {} ms",
        report.pages,
        args.out.join("book").display(),
        started.elapsed().as_millis()
    );

    let started = Instant::now();
    let target = args.out.join("search-index");
    // Build next to the target and swap it in, so an interrupted build never leaves a half-written index there.
    let staging = args
        .out
        .join(format!(".search-index.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let mut documents = SearchIndex::entry_documents(catalog);
    let entries = documents.len();
    documents.extend(book.search_documents());
    SearchIndex::build_from(&documents, Some(&staging)).context("writing the search index")?;
    swap_in(&staging, &target)?;
    println!(
        "wrote the search index ({entries} entries, {} book sections) to {} in {} ms",
        documents.len() - entries,
        target.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Builds the book's HTML into `out/book` (its mdBook source into `out/book-src`), swapping the new HTML in only
/// once it is complete. Formulas that did not render are reported on stderr.
pub fn build_book(book: &Book<'_>, out: &Path) -> anyhow::Result<rice_book::BuildReport> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let staging = out.join(format!(".book.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let report = book
        .build(&out.join("book-src"), &staging)
        .context("building the course book")?;
    for failure in &report.math_failures {
        eprintln!("warning: {failure}");
    }
    swap_in(&staging, &out.join("book"))?;
    Ok(report)
}

fn swap_in(staging: &Path, target: &Path) -> anyhow::Result<()> {
    if target.exists() {
        std::fs::remove_dir_all(target)
            .with_context(|| format!("removing the old {}", target.display()))?;
    }
    std::fs::rename(staging, target)
        .with_context(|| format!("moving the new build to {}", target.display()))
}
