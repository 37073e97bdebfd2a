//! `rice serve`: the website and JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rice_catalog::Catalog;
use rice_server::{BookInfo, Site, SiteOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Use 0.0.0.0:8080 to accept connections from other machines.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: SocketAddr,
    /// A built course book (HTML, from `rice build`) to serve at /book/. Without it, the book built into rice is
    /// built at start-up (under a temporary directory, removed on exit; about a second).
    #[arg(long, value_name = "DIR")]
    pub book: Option<PathBuf>,
    /// A directory of reference-implementation runs to show at /runs. Defaults to ./runs when that exists. Nothing
    /// outside it is served: a symlink in it that leads out of it counts as absent.
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
}

pub fn run(args: ServeArgs, catalog: Catalog) -> anyhow::Result<()> {
    let started = Instant::now();
    // The book's chapters and labs are built into rice: what the site says about them (sections for search,
    // backlinks on entry pages) holds for a `--book` directory built by the same rice.
    let book =
        rice_book::Book::embedded(&catalog).context("reading the book's chapters and labs")?;
    let mut scratch = None;
    let book_dir = match args.book {
        Some(dir) => {
            anyhow::ensure!(
                dir.join("index.html").is_file(),
                "--book {} holds no index.html: build one with `rice build --out DIR` and pass DIR/book",
                dir.display()
            );
            dir
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("rice-book-")
                .tempdir()
                .context("creating a temporary directory for the course book")?;
            crate::build_cmd::build_book(&book, dir.path())?;
            let html = dir.path().join("book");
            scratch = Some(dir);
            html
        }
    };
    let book_info = BookInfo {
        sections: book.search_documents(),
        backlinks: book
            .backlinks()
            .into_iter()
            .map(|(id, links)| (id, links.into_iter().map(|b| (b.title, b.url)).collect()))
            .collect(),
    };
    let runs_dir = args.runs.or_else(|| {
        PathBuf::from("runs")
            .is_dir()
            .then(|| PathBuf::from("runs"))
    });
    if let Some(dir) = &runs_dir {
        anyhow::ensure!(dir.is_dir(), "--runs {} is not a directory", dir.display());
    }
    let entries = catalog.entries.len();
    let options = SiteOptions {
        book_dir: Some(book_dir),
        runs_dir,
        book: book_info,
    };
    drop(book);
    let site = Site::new(catalog, options).context("building the search index")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| {
            format!("cannot listen on {}: is another server using that port? Try --addr 127.0.0.1:8081", args.addr)
        })?;
        let local = listener.local_addr().context("reading the bound address")?;
        println!(
            "RICE Atlas: {entries} entries and the course book at http://{local}/ (ready in {} ms). Press Ctrl-C to stop.",
            started.elapsed().as_millis()
        );
        rice_server::serve(listener, Arc::new(site)).await.context("serving")?;
        println!("RICE Atlas: stopped.");
        Ok::<(), anyhow::Error>(())
    })?;
    drop(scratch);
    Ok(())
}
