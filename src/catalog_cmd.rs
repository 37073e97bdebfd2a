//! `rice catalog …`: check, list, show, export and count the catalog.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::builder::TypedValueParser as _;
use clap::{Subcommand, ValueEnum};
use rice_catalog::stats::{Coverage, Stats};
use rice_catalog::{Catalog, CatalogError, Entry, Kind, Principle, export};

use crate::output::{bold, width, write_atomically};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Validate every entry and the taxonomy; report every problem with file:line:column.
    ///
    /// Exits 0 and prints the entry count when the catalog is valid, 1 when it is not.
    Check,
    /// List entries, optionally filtered (filters combine with AND).
    List {
        /// Only entries that serve this RICE principle (primary or secondary).
        #[arg(long, value_name = "PRINCIPLE", value_parser = principle_parser())]
        rice: Option<Principle>,
        /// Only entries in this taxonomy subtree, e.g. `forward/learning-from-feedback`.
        #[arg(long, value_name = "SLUG")]
        place: Option<String>,
        /// Only entries of this kind.
        #[arg(long, value_name = "KIND", value_parser = kind_parser())]
        kind: Option<Kind>,
        /// Print the matching entries as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry: summary, body, papers, related entries, how to run it.
    Show {
        /// The entry's id, e.g. `dpo` (see `rice catalog list`).
        id: String,
    },
    /// Count entries per taxonomy section, RICE principle and kind, and check coverage of the survey's topics.
    Stats {
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the catalog as JSON, BibTeX or CSV.
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Write to FILE (atomically) instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// The whole catalog; reads back into the same catalog.
    Json,
    /// One record per distinct paper, with stable keys.
    Bibtex,
    /// One row per entry.
    Csv,
}

pub fn principle_parser() -> impl clap::builder::TypedValueParser<Value = Principle> {
    clap::builder::PossibleValuesParser::new(Principle::ALL.map(|p| p.as_str())).map(|s| {
        s.parse::<Principle>()
            .expect("only possible values get here")
    })
}

pub fn kind_parser() -> impl clap::builder::TypedValueParser<Value = Kind> {
    clap::builder::PossibleValuesParser::new(Kind::ALL.map(|k| k.as_str()))
        .map(|s| s.parse::<Kind>().expect("only possible values get here"))
}

/// Loads the built-in catalog, or the one in `dir`. An invalid catalog's diagnostics are printed here; the error
/// returned then is [`Reported`], so that `main` exits 1 without printing anything more.
pub fn load(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    let loaded = match dir {
        Some(dir) => Catalog::load_dir(dir),
        None => Catalog::embedded(),
    };
    match loaded {
        Ok(catalog) => Ok(catalog),
        Err(CatalogError::Invalid(diagnostics)) => {
            eprintln!("{diagnostics}");
            let which = dir.map_or("the built-in catalog".to_owned(), |d| {
                d.display().to_string()
            });
            eprintln!(
                "error: {which} is invalid; fix the problems above and run `rice catalog check` again"
            );
            Err(Reported.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// An error that has already been printed.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("already reported")
    }
}

impl std::error::Error for Reported {}

pub fn run(command: CatalogCommand, dir: Option<&Path>) -> anyhow::Result<()> {
    let catalog = load(dir)?;
    match command {
        CatalogCommand::Check => check(&catalog, dir),
        CatalogCommand::List {
            rice,
            place,
            kind,
            json,
        } => list(&catalog, rice, place.as_deref(), kind, json)?,
        CatalogCommand::Show { id } => show(&catalog, &id)?,
        CatalogCommand::Stats { json } => stats(&catalog, json)?,
        CatalogCommand::Export { format, out } => {
            let text = match format {
                ExportFormat::Json => export::json(&catalog),
                ExportFormat::Bibtex => export::bibtex(&catalog),
                ExportFormat::Csv => export::csv(&catalog),
            };
            match out {
                Some(path) => {
                    write_atomically(&path, text.as_bytes())?;
                    eprintln!("wrote {} ({} bytes)", path.display(), text.len());
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

fn check(catalog: &Catalog, dir: Option<&Path>) {
    let papers = catalog.papers();
    let unverified = papers.iter().filter(|p| p.unverified).count();
    let which = dir.map_or("built-in catalog".to_owned(), |d| d.display().to_string());
    println!(
        "catalog ok: {} entries, {} taxonomy nodes, {} distinct papers ({unverified} marked unverified) in {which}",
        catalog.entries.len(),
        catalog.taxonomy.nodes.len(),
        papers.len(),
    );
}

fn list(
    catalog: &Catalog,
    rice: Option<Principle>,
    place: Option<&str>,
    kind: Option<Kind>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(place) = place
        && catalog.taxonomy.node(place).is_none()
    {
        let paths = catalog.taxonomy.nodes.iter().map(|n| n.path.as_str());
        match rice_catalog::did_you_mean(place, paths) {
            Some(s) => bail!(
                "unknown place `{place}`; did you mean `{s}`? (`rice catalog list` shows each entry's place)"
            ),
            None => bail!(
                "unknown place `{place}`; places are the `path` values of catalog/taxonomy.toml"
            ),
        }
    }
    let matches: Vec<&Entry> = catalog
        .entries
        .iter()
        .filter(|e| rice.is_none_or(|p| e.rice.contains(p)))
        .filter(|e| place.is_none_or(|p| rice_catalog::Taxonomy::is_within(&e.place, p)))
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&matches).context("serialising entries")?
        );
        return Ok(());
    }
    let id_w = matches.iter().map(|e| e.id.len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        bold(&format!(
            "{:id_w$}  {:10}  {:8}  {}",
            "ID", "KIND", "RICE", "NAME"
        ))
    );
    for e in &matches {
        let _ = writeln!(
            out,
            "{:id_w$}  {:10}  {:8}  {}",
            e.id,
            e.kind.as_str(),
            e.rice.letters(),
            e.name
        );
    }
    let _ = writeln!(
        out,
        "{} of {} entries  (RICE: primary letters, then + and secondary in lowercase)",
        matches.len(),
        catalog.entries.len()
    );
    print!("{out}");
    Ok(())
}

fn show(catalog: &Catalog, id: &str) -> anyhow::Result<()> {
    let Some(e) = catalog.entry(id) else {
        let ids = catalog.entries.iter().map(|e| e.id.as_str());
        let by_alias = catalog
            .entries
            .iter()
            .find(|e| e.aliases.iter().any(|a| a.eq_ignore_ascii_case(id)));
        match (by_alias, rice_catalog::did_you_mean(id, ids)) {
            (Some(e), _) => bail!(
                "no entry with id `{id}`, but `{}` has the alias {id}: run `rice catalog show {}`",
                e.id,
                e.id
            ),
            (None, Some(s)) => bail!("no entry with id `{id}`; did you mean `{s}`?"),
            (None, None) => bail!("no entry with id `{id}`; `rice catalog list` shows every id"),
        }
    };
    let w = width();
    let wrap = |text: &str, indent: &str| -> String {
        let options = textwrap::Options::new(w)
            .initial_indent(indent)
            .subsequent_indent(indent);
        textwrap::fill(text, options)
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}  [{}]", bold(&e.name), e.id);
    let trail: Vec<&str> = catalog
        .taxonomy
        .ancestors(&e.place)
        .iter()
        .map(|n| n.title.as_str())
        .collect();
    let _ = writeln!(
        out,
        "{}",
        wrap(&format!("{} · {}", e.kind, trail.join(" › ")), "")
    );
    let names = |ps: &[Principle]| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    let mut rice = format!("RICE: {} (primary)", names(&e.rice.primary));
    if !e.rice.secondary.is_empty() {
        let _ = write!(rice, "; {} (secondary)", names(&e.rice.secondary));
    }
    let _ = writeln!(out, "{rice}");
    if !e.aliases.is_empty() {
        let _ = writeln!(out, "Also known as: {}", e.aliases.join(", "));
    }
    let _ = writeln!(out, "\n{}", wrap(&e.summary, ""));
    if !e.body.is_empty() {
        out.push('\n');
        for line in e.body.lines() {
            let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "{}", wrap(line.trim_start(), &indent));
            }
        }
    }
    if !e.papers.is_empty() {
        let _ = writeln!(out, "\n{}", bold("Papers"));
        for (i, p) in e.papers.iter().enumerate() {
            let authors = match p.authors.as_slice() {
                [one] => one.clone(),
                [first, second] if second != "others" => format!("{first} and {second}"),
                [first, ..] => format!("{first} et al."),
                [] => String::new(),
            };
            let mut line = format!("[{}] {}. {authors}, {}", i + 1, p.title, p.year);
            if let Some(venue) = &p.venue {
                let _ = write!(line, ". {venue}");
            }
            if let Some(arxiv) = &p.arxiv {
                let _ = write!(line, ". arXiv:{arxiv}");
            }
            if p.unverified {
                line.push_str(" (unverified: some details could not be confirmed)");
            }
            let _ = writeln!(out, "{}", wrap(&line, "  "));
            if let Some(link) = p.link() {
                let _ = writeln!(out, "      {link}");
            }
        }
    }
    if !e.related.is_empty() {
        let related: Vec<String> = e
            .related
            .iter()
            .map(|r| {
                catalog
                    .entry(r)
                    .map_or_else(|| r.clone(), |x| format!("{} ({})", x.id, x.name))
            })
            .collect();
        let _ = writeln!(
            out,
            "\n{}\n{}",
            bold("Related"),
            wrap(&related.join("; "), "  ")
        );
    }
    if let Some(imp) = &e.implementation {
        let _ = writeln!(
            out,
            "\n{}\n  {}   (crate {})",
            bold("Run it"),
            imp.command,
            imp.crate_name
        );
    }
    let _ = writeln!(out, "\nSource: {}", e.source);
    print!("{out}");
    Ok(())
}

fn stats(catalog: &Catalog, json: bool) -> anyhow::Result<()> {
    let stats = Stats::compute(catalog);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats).context("serialising stats")?
        );
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} entries, {} distinct papers ({} marked unverified), {} with a reference implementation",
        stats.entries, stats.papers, stats.unverified_papers, stats.with_implementation
    );
    let _ = writeln!(
        out,
        "\n{}",
        bold("By taxonomy section (entries here or below; * = placed exactly here)")
    );
    let name_w = stats
        .by_node
        .iter()
        .map(|n| 2 * n.depth + n.path.rsplit('/').next().map_or(0, str::len))
        .max()
        .unwrap_or(0);
    for n in &stats.by_node {
        let label = format!(
            "{}{}",
            "  ".repeat(n.depth),
            n.path.rsplit('/').next().unwrap_or(&n.path)
        );
        let flag = if n.leaf && n.total == 0 {
            "   EMPTY LEAF"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {label:name_w$}  {:4}  ({:3}*){flag}",
            n.total, n.own
        );
    }
    let _ = writeln!(
        out,
        "\n{}",
        bold("By RICE principle (primary / primary or secondary)")
    );
    for (p, (primary, any)) in &stats.by_principle {
        let _ = writeln!(out, "  {:16}  {primary:4} / {any:4}", p.as_str());
    }
    let _ = writeln!(out, "\n{}", bold("By kind"));
    for (k, n) in &stats.by_kind {
        let _ = writeln!(out, "  {:16}  {n:4}", k.as_str());
    }
    let as_entry = stats
        .coverage
        .iter()
        .filter(|(_, c)| *c == Coverage::Entry)
        .count();
    let merged: Vec<String> = stats
        .coverage
        .iter()
        .filter_map(|(r, c)| match c {
            Coverage::Merged { into } => Some(format!("{} → {into}", r.id)),
            _ => None,
        })
        .collect();
    let missing = stats.missing();
    let _ = writeln!(
        out,
        "\n{}",
        bold("Coverage of the survey's topic list (catalog/survey.toml)")
    );
    let _ = writeln!(
        out,
        "  {} rows: {as_entry} entries, {} merged into other entries, {} missing",
        stats.coverage.len(),
        merged.len(),
        missing.len()
    );
    if !merged.is_empty() {
        let _ = writeln!(out, "  merged: {}", merged.join(", "));
    }
    if !missing.is_empty() {
        let ids: Vec<&str> = missing.iter().map(|r| r.id.as_str()).collect();
        let _ = writeln!(out, "  missing: {}", ids.join(", "));
    }
    let empty = stats.empty_leaves();
    if !empty.is_empty() {
        let _ = writeln!(out, "  empty taxonomy leaves: {}", empty.join(", "));
    }
    print!("{out}");
    Ok(())
}
