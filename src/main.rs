//! `rice`: the RICE Atlas command line. Thin by design: it parses arguments, calls the library crates and prints.

mod catalog_cmd;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// RICE Atlas: learn, look up and run AI-alignment methods.
///
/// A catalog of AI alignment built on the survey "AI Alignment: A Comprehensive Survey" (the RICE principles:
/// Robustness, Interpretability, Controllability, Ethicality), with runnable reference implementations.
/// The catalog is built into this binary; `--catalog DIR` reads one from a directory instead.
#[derive(Debug, Parser)]
#[command(name = "rice", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// Use the catalog in DIR (holding taxonomy.toml and entries/) instead of the one built into rice.
    #[arg(long, global = true, value_name = "DIR")]
    catalog: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, browse and export the method catalog.
    #[command(subcommand)]
    Catalog(catalog_cmd::CatalogCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Catalog(command) => catalog_cmd::run(command, cli.catalog.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
