//! `rice search`: the catalog's search engine on the command line.

use std::fmt::Write as _;

use anyhow::Context;
use clap::Args;
use rice_catalog::{Catalog, Kind, Principle};
use rice_search::{SearchIndex, SearchRequest, SearchResults};

use crate::catalog_cmd::{kind_parser, principle_parser};
use crate::output::{emphasis_enabled, width};

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for: words, "a phrase", an acronym (IDA, DPO), or a half-typed word. Typos are tolerated.
    pub query: String,
    /// Only entries that serve this RICE principle (primary or secondary).
    #[arg(long, value_name = "PRINCIPLE", value_parser = principle_parser())]
    pub rice: Option<Principle>,
    /// Only entries in this taxonomy subtree, e.g. `forward/learning-from-feedback`.
    #[arg(long, value_name = "SLUG")]
    pub place: Option<String>,
    /// Only entries of this kind.
    #[arg(long, value_name = "KIND", value_parser = kind_parser())]
    pub kind: Option<Kind>,
    /// Only entries with a runnable reference implementation.
    #[arg(long)]
    pub implemented: bool,
    /// How many results to show (1 to 100).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// Skip this many results (for the next page).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub offset: usize,
    /// Print the full results (hits, facet counts, timing) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SearchArgs, catalog: &Catalog) -> anyhow::Result<()> {
    if let Some(place) = &args.place
        && catalog.taxonomy.node(place).is_none()
    {
        let paths = catalog.taxonomy.nodes.iter().map(|n| n.path.as_str());
        match rice_catalog::did_you_mean(place, paths) {
            Some(s) => anyhow::bail!("unknown place `{place}`; did you mean `{s}`?"),
            None => anyhow::bail!(
                "unknown place `{place}`; places are the `path` values of catalog/taxonomy.toml"
            ),
        }
    }
    let index = SearchIndex::build(catalog).context("building the search index")?;
    let request = SearchRequest {
        q: args.query,
        place: args.place,
        rice: args.rice,
        kind: args.kind,
        has_implementation: args.implemented.then_some(true),
        doc_type: None,
        limit: args.limit,
        offset: args.offset,
    };
    let results = index.search(&request)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).context("serialising results")?
        );
    } else {
        print!("{}", render(&results, catalog));
    }
    Ok(())
}

fn render(r: &SearchResults, catalog: &Catalog) -> String {
    let mut out = String::new();
    if r.hits.is_empty() {
        let _ = writeln!(
            out,
            "No results for {:?} ({} µs). Try fewer words, or `rice catalog list`.",
            r.q, r.took_us
        );
        return out;
    }
    let w = width();
    for (i, hit) in r.hits.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:>2}. {}  [{}]",
            r.offset + i + 1,
            terminal_text(&hit.title_html),
            hit.id
        );
        let trail: Vec<&str> = catalog
            .taxonomy
            .ancestors(&hit.place)
            .iter()
            .map(|n| n.title.as_str())
            .collect();
        let badges: String = hit
            .rice_primary
            .iter()
            .map(|p| p.letter())
            .chain(
                hit.rice_secondary
                    .iter()
                    .map(|p| p.letter().to_ascii_lowercase()),
            )
            .collect();
        let kind = hit.kind.map_or("section", Kind::as_str);
        let meta = format!("{kind} · RICE {badges} · {}", trail.join(" › "));
        let options = textwrap::Options::new(w)
            .initial_indent("    ")
            .subsequent_indent("    ");
        let _ = writeln!(out, "{}", textwrap::fill(&meta, options.clone()));
        let _ = writeln!(
            out,
            "{}\n",
            textwrap::fill(&terminal_text(&hit.snippet_html), options)
        );
    }
    let last = r.offset + r.hits.len();
    let _ = writeln!(
        out,
        "{} of {} results ({}–{}) in {} µs",
        r.hits.len(),
        r.total,
        r.offset + 1,
        last,
        r.took_us
    );
    if last < r.total {
        let _ = writeln!(out, "next page: --offset {last}");
    }
    out
}

/// Search HTML (escaped text with `<mark>`) for a terminal: marks become bold on a terminal, `*…*` elsewhere.
fn terminal_text(html: &str) -> String {
    let (open, close) = if emphasis_enabled() {
        ("\x1b[1;4m", "\x1b[0m")
    } else {
        ("*", "*")
    };
    html.replace("<mark>", open)
        .replace("</mark>", close)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_text_unescapes_after_marking() {
        // `&amp;lt;` must become the literal text `&lt;`, not `<`.
        assert_eq!(super::terminal_text("a &amp;lt; b"), "a &lt; b");
    }
}
