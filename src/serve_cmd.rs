//! `rice serve`: the website and JSON API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use rice_catalog::Catalog;
use rice_server::{Site, SiteOptions};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Use 0.0.0.0:8080 to accept connections from other machines.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub addr: SocketAddr,
    /// A built course book (HTML) to serve at /book/. Defaults to target/rice-site/book when that exists.
    #[arg(long, value_name = "DIR")]
    pub book: Option<PathBuf>,
    /// A directory of reference-implementation runs to show at /runs. Defaults to ./runs when that exists.
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
}

pub fn run(args: ServeArgs, catalog: Catalog) -> anyhow::Result<()> {
    let started = Instant::now();
    let default_book = PathBuf::from("target/rice-site/book");
    let book_dir = args.book.or_else(|| {
        default_book
            .join("index.html")
            .is_file()
            .then_some(default_book)
    });
    if let Some(dir) = &book_dir {
        anyhow::ensure!(dir.is_dir(), "--book {} is not a directory", dir.display());
    }
    let runs_dir = args.runs.or_else(|| {
        PathBuf::from("runs")
            .is_dir()
            .then(|| PathBuf::from("runs"))
    });
    if let Some(dir) = &runs_dir {
        anyhow::ensure!(dir.is_dir(), "--runs {} is not a directory", dir.display());
    }
    let entries = catalog.entries.len();
    let site = Site::new(catalog, SiteOptions { book_dir, runs_dir })
        .context("building the search index")?;
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
            "RICE Atlas: {entries} entries at http://{local}/ (ready in {} ms). Press Ctrl-C to stop.",
            started.elapsed().as_millis()
        );
        rice_server::serve(listener, Arc::new(site)).await.context("serving")?;
        println!("RICE Atlas: stopped.");
        Ok(())
    })
}
