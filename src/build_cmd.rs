//! `rice build`: writes what the site serves into a directory. Today that is the search index; the course book
//! joins it when it exists.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use rice_catalog::Catalog;
use rice_search::SearchIndex;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Where to write (created if missing); the search index goes to OUT/search-index.
    #[arg(long, value_name = "DIR", default_value = "target/rice-site")]
    pub out: PathBuf,
}

pub fn run(args: BuildArgs, catalog: &Catalog) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let target = args.out.join("search-index");
    // Build next to the target and swap it in, so an interrupted build never leaves a half-written index there.
    let staging = args
        .out
        .join(format!(".search-index.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let documents = SearchIndex::entry_documents(catalog);
    SearchIndex::build_from(&documents, Some(&staging)).context("writing the search index")?;
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("removing the old index at {}", target.display()))?;
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("moving the index to {}", target.display()))?;
    println!(
        "wrote the search index ({} documents) to {} in {} ms",
        documents.len(),
        target.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}
