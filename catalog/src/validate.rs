//! From TOML text to a validated [`Catalog`]: strict parsing with source positions, then every rule, collecting
//! every problem before giving up.
//!
//! A file that does not parse (bad syntax, unknown field, wrong type) gets one diagnostic and is left out of the
//! checks that follow; every other rule runs on every entry that parsed, so one run reports all problems at once.

use std::collections::HashMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::{
    Catalog, Entry, Implementation, Kind, Paper, Principle, Rice, Taxonomy, TaxonomyNode,
};
use crate::source::SourceFile;

// ── The TOML shapes, with positions ─────────────────────────────────────────────────────────────────────────────

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    #[serde(default)]
    node: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    path: Spanned<String>,
    title: Spanned<String>,
    section: Option<String>,
    summary: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Spanned<String>,
    name: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    kind: Spanned<String>,
    place: Spanned<String>,
    rice: Spanned<RawRice>,
    summary: Spanned<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    papers: Vec<Spanned<RawPaper>>,
    #[serde(default)]
    related: Vec<Spanned<String>>,
    implementation: Option<RawImplementation>,
    #[serde(default)]
    tags: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRice {
    #[serde(default)]
    primary: Vec<Spanned<String>>,
    #[serde(default)]
    secondary: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaper {
    title: Spanned<String>,
    authors: Spanned<Vec<Spanned<String>>>,
    year: Spanned<i64>,
    venue: Option<String>,
    arxiv: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    unverified: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImplementation {
    #[serde(rename = "crate")]
    crate_name: Spanned<String>,
    command: Spanned<String>,
}

// ── Collecting problems ─────────────────────────────────────────────────────────────────────────────────────────

struct Problems(Vec<Diagnostic>);

impl Problems {
    fn push(
        &mut self,
        file: &SourceFile,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.0
            .push(Diagnostic::at(&file.path, &file.text, span, message, hint));
    }

    fn toml_error(&mut self, file: &SourceFile, err: &toml::de::Error) {
        let message = err.message().trim().to_owned();
        let hint = toml_hint(&message);
        self.push(file, err.span().unwrap_or(0..0), message, hint);
    }
}

fn toml_hint(message: &str) -> Option<String> {
    let hint = if message.starts_with("unknown field") {
        "remove the field or fix its spelling; the fields are listed in catalog/README.md"
    } else if message.starts_with("missing field") {
        "add the field; see the example entry in catalog/README.md"
    } else if message.starts_with("invalid type") {
        "strings go in quotes, years are bare numbers, lists go in [...]; see catalog/README.md"
    } else if message.contains("escape") {
        "write LaTeX in literal strings ('''…''') so that backslashes need no escaping"
    } else {
        "this is TOML syntax; compare with the example entry in catalog/README.md"
    };
    Some(hint.to_owned())
}

/// Parse and validate a catalog. `known_crates` are the crate names an `implementation` may name.
pub fn validate(
    taxonomy: &SourceFile,
    entries: &[SourceFile],
    known_crates: &[&str],
) -> Result<Catalog, Diagnostics> {
    let mut problems = Problems(Vec::new());
    let taxonomy = check_taxonomy(taxonomy, &mut problems);

    let mut parsed: Vec<(&SourceFile, RawEntry)> = Vec::new();
    // Ids of entries that did not parse, recovered as well as possible, so that their problem is reported once
    // and not again as a dangling `related` id in every entry that points at them.
    let mut unparsed_ids: Vec<String> = Vec::new();
    for file in entries {
        match toml::from_str::<RawEntry>(&file.text) {
            Ok(raw) => parsed.push((file, raw)),
            Err(err) => {
                problems.toml_error(file, &err);
                let id = toml::from_str::<toml::Table>(&file.text)
                    .ok()
                    .and_then(|t| t.get("id").and_then(|v| v.as_str()).map(str::to_owned))
                    .or_else(|| file.stem().map(str::to_owned));
                unparsed_ids.extend(id);
            }
        }
    }

    // Ids first, so that `related` can be checked against all of them.
    let mut first_seen: HashMap<&str, &SourceFile> = HashMap::new();
    for (file, raw) in &parsed {
        let id = raw.id.get_ref().as_str();
        if let Some(first) = first_seen.get(id) {
            let at = Diagnostic::at(
                &first.path,
                &first.text,
                span_of_key(&first.text, "id"),
                "",
                None,
            )
            .location();
            problems.push(
                file,
                raw.id.span(),
                format!("duplicate id `{id}`"),
                Some(format!("first defined at {at}; ids must be unique")),
            );
        } else {
            first_seen.insert(id, file);
        }
    }
    let mut ids: Vec<&str> = first_seen.keys().copied().collect();
    ids.extend(unparsed_ids.iter().map(String::as_str));

    let mut out = Vec::new();
    for (file, raw) in &parsed {
        out.push(check_entry(
            file,
            raw,
            &taxonomy,
            &ids,
            known_crates,
            &mut problems,
        ));
    }

    if problems.0.is_empty() {
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Catalog {
            taxonomy,
            entries: out,
        })
    } else {
        let mut diagnostics = Diagnostics(problems.0);
        diagnostics.sort();
        Err(diagnostics)
    }
}

fn span_of_key(text: &str, key: &str) -> Range<usize> {
    text.lines()
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len() + 1;
            Some((start, line))
        })
        .find(|(_, line)| {
            line.trim_start().starts_with(key)
                && line[line.find(key).unwrap_or(0) + key.len()..]
                    .trim_start()
                    .starts_with('=')
        })
        .map_or(0..0, |(start, line)| {
            let indent = line.len() - line.trim_start().len();
            start + indent..start + indent + key.len()
        })
}

fn check_taxonomy(file: &SourceFile, problems: &mut Problems) -> Taxonomy {
    let raw = match toml::from_str::<RawTaxonomy>(&file.text) {
        Ok(raw) => raw,
        Err(err) => {
            problems.toml_error(file, &err);
            return Taxonomy { nodes: Vec::new() };
        }
    };
    if raw.node.is_empty() {
        problems.push(
            file,
            0..0,
            "the taxonomy has no nodes",
            Some("add `[[node]]` tables with `path` and `title`".into()),
        );
    }
    let mut nodes: Vec<TaxonomyNode> = Vec::new();
    for node in raw.node {
        let path = node.path.get_ref();
        if !path.split('/').all(is_slug) {
            problems.push(
                file,
                node.path.span(),
                format!("malformed taxonomy path `{path}`"),
                Some(
                    "segments are lowercase letters, digits and single hyphens, joined by `/`"
                        .into(),
                ),
            );
        } else if nodes.iter().any(|n| &n.path == path) {
            problems.push(
                file,
                node.path.span(),
                format!("duplicate taxonomy path `{path}`"),
                None,
            );
        } else if let Some((parent, _)) = path.rsplit_once('/')
            && !nodes.iter().any(|n| n.path == parent)
        {
            problems.push(
                file,
                node.path.span(),
                format!("the parent `{parent}` of `{path}` is not defined before it"),
                Some("define every node after its parent".into()),
            );
        }
        if node.title.get_ref().trim().is_empty() {
            problems.push(
                file,
                node.title.span(),
                "empty title",
                Some("give the node a title".into()),
            );
        }
        nodes.push(TaxonomyNode {
            path: path.clone(),
            title: node.title.into_inner().trim().to_owned(),
            section: node.section,
            summary: node.summary.map(|s| collapse_whitespace(&s)),
        });
    }
    Taxonomy { nodes }
}

fn check_entry(
    file: &SourceFile,
    raw: &RawEntry,
    taxonomy: &Taxonomy,
    ids: &[&str],
    known_crates: &[&str],
    problems: &mut Problems,
) -> Entry {
    let id = raw.id.get_ref();
    if !is_slug(id) {
        problems.push(
            file,
            raw.id.span(),
            format!("malformed id `{id}`"),
            Some("ids are lowercase letters, digits and single hyphens, e.g. `safe-rlhf`".into()),
        );
    } else if let Some(stem) = file.stem()
        && stem != id
    {
        problems.push(
            file,
            raw.id.span(),
            format!("id `{id}` does not match the file name `{stem}.toml`"),
            Some(format!(
                "rename the file to `{id}.toml` or change the id to `{stem}`"
            )),
        );
    }

    non_empty(file, &raw.name, "name", problems);
    if raw.summary.get_ref().trim().is_empty() {
        problems.push(
            file,
            raw.summary.span(),
            "empty summary",
            Some("write one paragraph saying what this is and why it matters".into()),
        );
    }

    let kind = raw.kind.get_ref().parse::<Kind>().map_err(|err| {
        let hint = closest(&err.given, Kind::ALL.iter().map(|k| k.as_str()))
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        problems.push(
            file,
            raw.kind.span(),
            err.to_string(),
            Some(format!("{hint}kinds are {}", err.expected)),
        );
    });

    let place = raw.place.get_ref();
    if taxonomy.node(place).is_none() && !taxonomy.nodes.is_empty() {
        let last = place.rsplit('/').next().unwrap_or(place);
        let suggestion = taxonomy
            .nodes
            .iter()
            .find(|n| n.path.rsplit('/').next() == Some(last))
            .map(|n| n.path.as_str())
            .or_else(|| closest(place, taxonomy.nodes.iter().map(|n| n.path.as_str())));
        let hint = match suggestion {
            Some(s) => {
                format!("did you mean `{s}`? places are the `path` values of catalog/taxonomy.toml")
            }
            None => "places are the `path` values of catalog/taxonomy.toml".into(),
        };
        problems.push(
            file,
            raw.place.span(),
            format!("unknown place `{place}`"),
            Some(hint),
        );
    }

    let rice = check_rice(file, &raw.rice, problems);
    let papers = raw
        .papers
        .iter()
        .map(|p| check_paper(file, p, problems))
        .collect();

    let mut related = Vec::new();
    for rel in &raw.related {
        let r = rel.get_ref();
        if r == id {
            problems.push(
                file,
                rel.span(),
                format!("`{id}` lists itself as related"),
                Some("remove it from `related`".into()),
            );
        } else if related.contains(r) {
            problems.push(
                file,
                rel.span(),
                format!("`{r}` is listed twice in `related`"),
                None,
            );
        } else if !ids.contains(&r.as_str()) {
            let hint = match closest(r, ids.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? `related` holds ids of entries in this catalog"),
                None => "`related` holds ids of entries in this catalog; write the entry or remove the id".into(),
            };
            problems.push(
                file,
                rel.span(),
                format!("related id `{r}` does not exist"),
                Some(hint),
            );
        }
        related.push(r.clone());
    }

    let mut aliases: Vec<String> = Vec::new();
    for alias in &raw.aliases {
        let a = alias.get_ref().trim();
        if a.is_empty() {
            problems.push(file, alias.span(), "empty alias", Some("remove it".into()));
        } else if aliases.iter().any(|b| b == a) {
            problems.push(
                file,
                alias.span(),
                format!("alias `{a}` is listed twice"),
                None,
            );
        }
        aliases.push(a.to_owned());
    }

    for tag in &raw.tags {
        if !is_slug(tag.get_ref()) {
            problems.push(
                file,
                tag.span(),
                format!("malformed tag `{}`", tag.get_ref()),
                Some("tags are lowercase slugs such as `preference-optimization`".into()),
            );
        }
    }

    let implementation = raw.implementation.as_ref().map(|imp| {
        let name = imp.crate_name.get_ref();
        if !known_crates.contains(&name.as_str()) {
            let hint = match closest(name, known_crates.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? crates in this workspace: {}",
                    known_crates.join(", ")
                ),
                None => format!(
                    "crates in this workspace: {}; add the implementation once its crate exists",
                    known_crates.join(", ")
                ),
            };
            problems.push(
                file,
                imp.crate_name.span(),
                format!("implementation names crate `{name}`, which is not in this workspace"),
                Some(hint),
            );
        }
        if !imp.command.get_ref().starts_with("rice ") {
            problems.push(
                file,
                imp.command.span(),
                "the implementation command must be a `rice …` command line",
                Some("write the command a user types, e.g. `rice run dpo`".into()),
            );
        }
        Implementation {
            crate_name: name.clone(),
            command: imp.command.get_ref().clone(),
        }
    });

    Entry {
        id: id.clone(),
        name: raw.name.get_ref().trim().to_owned(),
        aliases,
        kind: kind.unwrap_or(Kind::Concept),
        place: place.clone(),
        rice,
        summary: collapse_whitespace(raw.summary.get_ref()),
        body: raw.body.as_deref().unwrap_or("").trim().to_owned(),
        papers,
        related,
        implementation,
        tags: raw.tags.iter().map(|t| t.get_ref().clone()).collect(),
        source: file.path.clone(),
    }
}

fn check_rice(file: &SourceFile, raw: &Spanned<RawRice>, problems: &mut Problems) -> Rice {
    let mut parse = |list: &[Spanned<String>]| -> Vec<Principle> {
        let mut out = Vec::new();
        for item in list {
            match item.get_ref().parse::<Principle>() {
                Ok(p) if out.contains(&p) => problems.push(
                    file,
                    item.span(),
                    format!("principle `{p}` is listed twice"),
                    None,
                ),
                Ok(p) => out.push(p),
                Err(err) => {
                    let hint = closest(&err.given, Principle::ALL.iter().map(|p| p.as_str()))
                        .map(|s| format!("did you mean `{s}`? "))
                        .unwrap_or_default();
                    problems.push(
                        file,
                        item.span(),
                        err.to_string(),
                        Some(format!("{hint}the RICE principles are {}", err.expected)),
                    );
                }
            }
        }
        out
    };
    let primary = parse(&raw.get_ref().primary);
    let secondary = parse(&raw.get_ref().secondary);
    if raw.get_ref().primary.is_empty() {
        problems.push(
            file,
            raw.span(),
            "no primary RICE principle",
            Some("list at least one in `rice.primary`".into()),
        );
    }
    for item in &raw.get_ref().secondary {
        if let Ok(p) = item.get_ref().parse::<Principle>()
            && primary.contains(&p)
        {
            problems.push(
                file,
                item.span(),
                format!("`{p}` is both primary and secondary"),
                Some("keep it in one list".into()),
            );
        }
    }
    Rice { primary, secondary }
}

fn check_paper(file: &SourceFile, raw: &Spanned<RawPaper>, problems: &mut Problems) -> Paper {
    let p = raw.get_ref();
    non_empty(file, &p.title, "paper title", problems);
    if p.authors.get_ref().is_empty() {
        problems.push(
            file,
            p.authors.span(),
            "a paper without authors",
            Some("list the authors in order; end with \"others\" for a long list".into()),
        );
    }
    let last = p.authors.get_ref().len().saturating_sub(1);
    for (i, author) in p.authors.get_ref().iter().enumerate() {
        if author.get_ref().trim().is_empty() {
            problems.push(
                file,
                author.span(),
                "empty author name",
                Some("remove the empty string".into()),
            );
        } else if author.get_ref() == "others" && i != last {
            problems.push(
                file,
                author.span(),
                "\"others\" must be the last author",
                Some("\"others\" stands for the rest of a long list; move it to the end".into()),
            );
        }
    }
    let max_year = current_year() + 1;
    let year = *p.year.get_ref();
    if !(1900..=max_year as i64).contains(&year) {
        problems.push(
            file,
            p.year.span(),
            format!("year {year} is out of range"),
            Some(format!("a paper's year lies between 1900 and {max_year}")),
        );
    }
    if let Some(arxiv) = &p.arxiv
        && let Err(hint) = check_arxiv(arxiv.get_ref())
    {
        problems.push(
            file,
            arxiv.span(),
            format!("malformed arXiv id `{}`", arxiv.get_ref()),
            Some(hint),
        );
    }
    if let Some(url) = &p.url {
        let u = url.get_ref();
        if !(u.starts_with("https://") || u.starts_with("http://"))
            || u.contains(char::is_whitespace)
        {
            problems.push(
                file,
                url.span(),
                format!("malformed URL `{u}`"),
                Some("write a full http(s):// address without spaces".into()),
            );
        }
    }
    Paper {
        title: p.title.get_ref().trim().to_owned(),
        authors: p
            .authors
            .get_ref()
            .iter()
            .map(|a| a.get_ref().trim().to_owned())
            .collect(),
        year: u16::try_from(year).unwrap_or(0),
        venue: p
            .venue
            .as_ref()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        arxiv: p.arxiv.as_ref().map(|a| a.get_ref().clone()),
        url: p.url.as_ref().map(|u| u.get_ref().clone()),
        unverified: p.unverified,
    }
}

fn non_empty(file: &SourceFile, value: &Spanned<String>, what: &str, problems: &mut Problems) {
    if value.get_ref().trim().is_empty() {
        problems.push(
            file,
            value.span(),
            format!("empty {what}"),
            Some(format!(
                "write the {what}, or remove the table it belongs to"
            )),
        );
    }
}

// ── Small rules ────────────────────────────────────────────────────────────────────────────────────────────────

/// `safe-rlhf`, `ppo`, `2310`: lowercase ASCII letters and digits in hyphen-separated runs.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks an arXiv identifier: new style `YYMM.NNNN` (to 2014) or `YYMM.NNNNN` (from 2015), optional `vN`; old
/// style `archive(.SC)?/YYMMNNN`. On failure returns a hint.
pub fn check_arxiv(id: &str) -> Result<(), String> {
    let bare_hint = || "write the bare identifier, e.g. `2305.18290` or `cs/0112017`".to_owned();
    if id.to_ascii_lowercase().starts_with("arxiv:") || id.starts_with("http") {
        return Err(format!("drop the prefix: {}", bare_hint()));
    }
    let core = strip_arxiv_version(id);
    let valid_yymm = |yymm: &str| {
        let month: u32 = yymm[2..4].parse().unwrap_or(0);
        (1..=12).contains(&month)
    };
    if let Some((archive, number)) = core.split_once('/') {
        let archive_ok = {
            let (name, sub) = archive.split_once('.').unwrap_or((archive, ""));
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && (sub.is_empty()
                    || (sub.len() == 2 && sub.bytes().all(|b| b.is_ascii_uppercase())))
        };
        if archive_ok
            && number.len() == 7
            && number.bytes().all(|b| b.is_ascii_digit())
            && valid_yymm(number)
        {
            return Ok(());
        }
        return Err(format!(
            "old-style ids look like `cs/0112017` or `math.GT/0309136`; {}",
            bare_hint()
        ));
    }
    let Some((yymm, number)) = core.split_once('.') else {
        return Err(bare_hint());
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if yymm.len() != 4 || !digits(yymm) || !digits(number) || !valid_yymm(yymm) {
        return Err(format!(
            "new-style ids are YYMM.NNNNN with a month 01–12; {}",
            bare_hint()
        ));
    }
    let year: u32 = yymm[..2].parse().unwrap_or(0);
    let expected = if year >= 15 { 5 } else { 4 };
    if yymm < "0704" || number.len() != expected {
        return Err(format!(
            "ids from 20{yymm:.2} have a {expected}-digit number after the dot; {}",
            bare_hint()
        ));
    }
    Ok(())
}

/// `2305.18290v2` → `2305.18290`; ids without a version are returned as they are.
pub fn strip_arxiv_version(id: &str) -> &str {
    match id.rfind('v') {
        Some(i) if i + 1 < id.len() && id[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &id[..i],
        _ => id,
    }
}

/// Collapses runs of whitespace (including newlines) to single spaces.
pub(crate) fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The candidate closest to `given` by edit distance, if close enough to be a likely typo.
pub fn closest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (given.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Levenshtein distance in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// This year (UTC), for the upper bound on paper years.
fn current_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Days since 1970-01-01 to a civil year (Howard Hinnant's algorithm, year part only).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}
