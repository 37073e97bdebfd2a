//! The RICE Atlas catalog: a structured, citable catalog of AI-alignment principles, concepts, risks, methods,
//! benchmarks, datasets and governance topics, organised by the taxonomy of "AI Alignment: A Comprehensive Survey"
//! (Ji et al., arXiv 2310.19852).
//!
//! What it is for: loading the catalog (embedded in the binary, or from a directory), validating it strictly with
//! `file:line:column` diagnostics for every problem at once, and exporting it (JSON, BibTeX, CSV). Everything else
//! in RICE Atlas (book, search, site) reads a [`Catalog`] from here.
//!
//! What it is not for: rendering (Markdown and math are the site's and the book's job) or searching. This crate
//! depends on no other crate of the workspace.
//!
//! ```
//! let catalog = rice_catalog::Catalog::embedded().expect("the embedded catalog is valid");
//! assert!(catalog.entry("rlhf").is_some());
//! ```

mod diagnostic;
pub mod export;
mod model;
mod source;
pub mod stats;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::{
    Catalog, Entry, Implementation, Kind, Paper, Principle, Rice, Taxonomy, TaxonomyNode,
    UnknownName, parent_path,
};
pub use source::{ReadError, SourceFile, Sources, WORKSPACE_CRATES};
pub use validate::{check_arxiv, closest as did_you_mean, is_slug, strip_arxiv_version};

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the catalog is invalid:\n{0}")]
    Invalid(Diagnostics),
}

impl Catalog {
    /// The catalog embedded in this binary at build time.
    pub fn embedded() -> Result<Catalog, CatalogError> {
        Catalog::from_sources(&Sources::embedded(), Diagnostics(Vec::new()))
    }

    /// A catalog directory holding `taxonomy.toml` and `entries/`.
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
        let (sources, unreadable) = Sources::read_dir(dir)?;
        Catalog::from_sources(&sources, unreadable)
    }

    /// Validates `sources`; `earlier` holds problems already found while reading them.
    pub fn from_sources(sources: &Sources, earlier: Diagnostics) -> Result<Catalog, CatalogError> {
        match validate::validate(&sources.taxonomy, &sources.entries, WORKSPACE_CRATES) {
            Ok(catalog) if earlier.is_empty() => Ok(catalog),
            Ok(_) => Err(CatalogError::Invalid(earlier)),
            Err(Diagnostics(mut found)) => {
                found.extend(earlier.0);
                let mut all = Diagnostics(found);
                all.sort();
                Err(CatalogError::Invalid(all))
            }
        }
    }

    /// Validates catalog text given directly; `known_crates` are the crates an `implementation` may name.
    pub fn from_files(
        taxonomy: &SourceFile,
        entries: &[SourceFile],
        known_crates: &[&str],
    ) -> Result<Catalog, Diagnostics> {
        validate::validate(taxonomy, entries, known_crates)
    }
}
