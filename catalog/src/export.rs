//! Exports of the catalog: JSON (round-trips into the same [`Catalog`]), BibTeX (one record per distinct paper,
//! stable keys) and CSV (one row per entry).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::model::{Catalog, Entry, Paper, paper_identity};

/// The whole catalog as pretty JSON; `serde_json::from_str::<Catalog>` gives back an equal catalog.
pub fn json(catalog: &Catalog) -> String {
    let mut out = serde_json::to_string_pretty(catalog).expect("a catalog always serialises");
    out.push('\n');
    out
}

/// Stable BibTeX keys for every paper of a catalog: `lastnameYEARword` (e.g. `rafailov2023direct`), with `b`, `c`, …
/// appended in a fixed order when two different papers would share a key.
pub struct CitationKeys {
    by_identity: HashMap<String, String>,
}

impl CitationKeys {
    pub fn new(catalog: &Catalog) -> CitationKeys {
        let mut papers = catalog.papers();
        // Order by base key, then identity, so suffixes do not depend on where a paper happens to be cited first.
        papers.sort_by_cached_key(|p| (base_key(p), paper_identity(p)));
        let mut by_identity = HashMap::new();
        let mut used: HashMap<String, usize> = HashMap::new();
        for paper in papers {
            let base = base_key(paper);
            let n = used.entry(base.clone()).or_insert(0);
            let key = format!("{base}{}", collision_suffix(*n));
            *n += 1;
            by_identity.insert(paper_identity(paper), key);
        }
        CitationKeys { by_identity }
    }

    /// The key of a paper of the catalog these keys were made from.
    pub fn key(&self, paper: &Paper) -> &str {
        self.by_identity
            .get(&paper_identity(paper))
            .map_or("unknown", String::as_str)
    }
}

/// The suffix of the `n`-th paper (from 0) sharing a base key: none, then `b` … `z`, then `zb` … `zz`, `zzb` …: always
/// letters and never the same twice (the letter alone would run past `z` into `{` after 26 papers).
fn collision_suffix(n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let (zs, letter) = ((n - 1) / 25, (n - 1) % 25 + 1);
    format!("{}{}", "z".repeat(zs), (b'a' + letter as u8) as char)
}

fn base_key(paper: &Paper) -> String {
    let surname = paper
        .first_author()
        .filter(|a| *a != "others")
        .and_then(|a| a.split_whitespace().last())
        .map(ascii_fold)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "anon".into());
    const SKIP: &[&str] = &[
        "a", "an", "the", "on", "of", "in", "for", "to", "and", "with", "is", "are", "do", "can",
    ];
    let word = paper
        .title
        .split(|c: char| !c.is_alphanumeric())
        .map(ascii_fold)
        .find(|w| !w.is_empty() && !SKIP.contains(&w.as_str()))
        .unwrap_or_default();
    format!("{surname}{}{word}", paper.year)
}

/// Lowercase ASCII letters and digits only, with common accented Latin letters mapped to their base letter.
fn ascii_fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => Some('a'),
            'ç' | 'ć' | 'č' => Some('c'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' => Some('e'),
            'ì' | 'í' | 'î' | 'ï' => Some('i'),
            'ñ' | 'ń' => Some('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => Some('o'),
            'ù' | 'ú' | 'û' | 'ü' => Some('u'),
            'ý' | 'ÿ' => Some('y'),
            'ł' => Some('l'),
            'š' | 'ś' => Some('s'),
            'ž' | 'ź' | 'ż' => Some('z'),
            _ => None,
        })
        .collect()
}

/// Every distinct paper of the catalog as BibTeX, sorted by key.
pub fn bibtex(catalog: &Catalog) -> String {
    let keys = CitationKeys::new(catalog);
    let mut papers = catalog.papers();
    papers.sort_by(|a, b| keys.key(a).cmp(keys.key(b)));
    let mut out = String::new();
    for paper in papers {
        out.push_str(&bibtex_record(keys.key(paper), paper));
        out.push('\n');
    }
    out
}

/// The papers of one entry as BibTeX, with the catalog-wide keys.
pub fn entry_bibtex(catalog: &Catalog, entry: &Entry) -> String {
    let keys = CitationKeys::new(catalog);
    entry
        .papers
        .iter()
        .map(|p| bibtex_record(keys.key(p), p) + "\n")
        .collect()
}

/// One BibTeX record: `@article` when the paper has a venue, `@misc` otherwise.
pub fn bibtex_record(key: &str, paper: &Paper) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let authors: Vec<String> = paper.authors.iter().map(|a| escape(a)).collect();
    fields.push(("author", authors.join(" and ")));
    // Double braces keep the title's capitalisation (acronyms such as RLHF) in every style.
    fields.push(("title", format!("{{{}}}", escape(&paper.title))));
    fields.push(("year", paper.year.to_string()));
    let kind = match &paper.venue {
        Some(venue) => {
            fields.push(("journal", escape(venue)));
            "article"
        }
        None => "misc",
    };
    if let Some(id) = &paper.arxiv {
        fields.push(("eprint", escape(id)));
        fields.push(("archiveprefix", "arXiv".into()));
    }
    if let Some(link) = paper.link() {
        fields.push(("url", link.replace(['{', '}'], "")));
    }
    if paper.unverified {
        fields.push((
            "note",
            "Unverified: some details of this reference could not be confirmed".into(),
        ));
    }
    let mut out = format!("@{kind}{{{key},\n");
    for (name, value) in fields {
        let _ = writeln!(out, "  {name} = {{{value}}},");
    }
    out.push_str("}\n");
    out
}

/// Escapes TeX's special characters so that braces stay balanced and the text prints as written.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '{' | '}' | '&' | '%' | '$' | '#' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One row per entry; list fields are joined with `; `.
pub fn csv(catalog: &Catalog) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "name",
        "kind",
        "place",
        "rice_primary",
        "rice_secondary",
        "aliases",
        "tags",
        "related",
        "papers",
        "arxiv",
        "implementation",
        "summary",
        "source",
    ];
    writer
        .write_record(header)
        .expect("writing to memory cannot fail");
    let join = |items: Vec<String>| items.join("; ");
    for e in &catalog.entries {
        let papers = join(
            e.papers
                .iter()
                .map(|p| format!("{} ({})", p.title, p.year))
                .collect(),
        );
        let arxiv = join(e.papers.iter().filter_map(|p| p.arxiv.clone()).collect());
        let row = [
            e.id.clone(),
            e.name.clone(),
            e.kind.to_string(),
            e.place.clone(),
            join(e.rice.primary.iter().map(|p| p.to_string()).collect()),
            join(e.rice.secondary.iter().map(|p| p.to_string()).collect()),
            join(e.aliases.clone()),
            join(e.tags.clone()),
            join(e.related.clone()),
            papers,
            arxiv,
            e.implementation
                .as_ref()
                .map(|i| i.command.clone())
                .unwrap_or_default(),
            e.summary.clone(),
            e.source.clone(),
        ];
        writer
            .write_record(row)
            .expect("writing to memory cannot fail");
    }
    String::from_utf8(writer.into_inner().expect("writing to memory cannot fail"))
        .expect("csv of UTF-8 is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::collision_suffix;

    #[test]
    fn keys_stay_letters_and_distinct_past_26_papers_sharing_one() {
        // Found with the fuzz target's key check (fuzz/regressions/catalog_entry/): the 27th paper sharing a base
        // key got `{`, and the 160th overflowed.
        let suffixes: Vec<String> = (0..300).map(collision_suffix).collect();
        assert_eq!(suffixes[..3], ["", "b", "c"]);
        assert_eq!((suffixes[25].as_str(), suffixes[26].as_str()), ("z", "zb"));
        assert_eq!(
            (suffixes[50].as_str(), suffixes[51].as_str()),
            ("zz", "zzb")
        );
        assert!(
            suffixes
                .iter()
                .all(|s| s.bytes().all(|b| b.is_ascii_lowercase()))
        );
        let distinct: std::collections::HashSet<&String> = suffixes.iter().collect();
        assert_eq!(distinct.len(), suffixes.len());
    }
}
