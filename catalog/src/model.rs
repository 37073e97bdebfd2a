//! The catalog's data model: what an entry is, once loaded and validated.
//!
//! These types are what the rest of RICE Atlas sees (the book, the search index, the site) and what the JSON export
//! writes; the TOML-facing types with source positions live in `load.rs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The whole catalog: the taxonomy tree and every entry, sorted by id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub taxonomy: Taxonomy,
    pub entries: Vec<Entry>,
}

/// The survey's taxonomy: nodes in document order, parents before children.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Taxonomy {
    pub nodes: Vec<TaxonomyNode>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxonomyNode {
    /// Slug path such as `forward/learning-from-feedback/policy-learning`.
    pub path: String,
    pub title: String,
    /// The survey's section number, e.g. `§2.3`.
    pub section: Option<String>,
    pub summary: Option<String>,
}

/// One catalog entry: a principle, concept, risk, method, benchmark, dataset or governance topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub aliases: Vec<String>,
    pub kind: Kind,
    /// A taxonomy path.
    pub place: String,
    pub rice: Rice,
    /// One paragraph of plain text, whitespace collapsed.
    pub summary: String,
    /// Markdown with LaTeX math (`$…$`, `$$…$$`); empty when the entry has none.
    pub body: String,
    pub papers: Vec<Paper>,
    pub related: Vec<String>,
    pub implementation: Option<Implementation>,
    pub tags: Vec<String>,
    /// Where the entry came from, e.g. `catalog/entries/forward/dpo.toml`.
    pub source: String,
}

/// What sort of thing an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Principle,
    Concept,
    Risk,
    Method,
    Benchmark,
    Dataset,
    Governance,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Principle,
        Kind::Concept,
        Kind::Risk,
        Kind::Method,
        Kind::Benchmark,
        Kind::Dataset,
        Kind::Governance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Principle => "principle",
            Kind::Concept => "concept",
            Kind::Risk => "risk",
            Kind::Method => "method",
            Kind::Benchmark => "benchmark",
            Kind::Dataset => "dataset",
            Kind::Governance => "governance",
        }
    }
}

/// One of the four RICE objectives of alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Principle {
    Robustness,
    Interpretability,
    Controllability,
    Ethicality,
}

impl Principle {
    pub const ALL: [Principle; 4] = [
        Principle::Robustness,
        Principle::Interpretability,
        Principle::Controllability,
        Principle::Ethicality,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Principle::Robustness => "robustness",
            Principle::Interpretability => "interpretability",
            Principle::Controllability => "controllability",
            Principle::Ethicality => "ethicality",
        }
    }

    /// The principle's initial: R, I, C or E.
    pub fn letter(self) -> char {
        match self {
            Principle::Robustness => 'R',
            Principle::Interpretability => 'I',
            Principle::Controllability => 'C',
            Principle::Ethicality => 'E',
        }
    }
}

/// An unknown name for a [`Kind`] or [`Principle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

macro_rules! from_str_by_name {
    ($ty:ty, $what:literal) => {
        impl FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        given: s.to_owned(),
                        expected: Self::ALL.map(|v| v.as_str()).join(", "),
                    })
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
from_str_by_name!(Kind, "kind");
from_str_by_name!(Principle, "RICE principle");

/// The RICE principles an entry serves: primary objectives and secondary ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rice {
    pub primary: Vec<Principle>,
    pub secondary: Vec<Principle>,
}

impl Rice {
    /// Whether the entry serves `p` at all (primary or secondary).
    pub fn contains(&self, p: Principle) -> bool {
        self.primary.contains(&p) || self.secondary.contains(&p)
    }

    /// Compact form such as `C E (r)`: primary letters, then secondary letters in lowercase.
    pub fn letters(&self) -> String {
        let mut s: String = self.primary.iter().map(|p| p.letter()).collect();
        if !self.secondary.is_empty() {
            s.push('+');
            s.extend(
                self.secondary
                    .iter()
                    .map(|p| p.letter().to_ascii_lowercase()),
            );
        }
        s
    }
}

/// A paper an entry cites.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    pub title: String,
    /// In order; a final `"others"` stands for the rest of a long list.
    pub authors: Vec<String>,
    pub year: u16,
    pub venue: Option<String>,
    /// A bare arXiv identifier such as `2305.18290`.
    pub arxiv: Option<String>,
    pub url: Option<String>,
    /// Some fact of this paper (title, year, authors, id) could not be confirmed.
    pub unverified: bool,
}

impl Paper {
    /// The page to link: the given URL, else the arXiv abstract page.
    pub fn link(&self) -> Option<String> {
        self.url.clone().or_else(|| {
            self.arxiv
                .as_ref()
                .map(|id| format!("https://arxiv.org/abs/{id}"))
        })
    }

    pub fn first_author(&self) -> Option<&str> {
        self.authors.first().map(String::as_str)
    }
}

/// Where an entry's reference implementation lives and how to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Implementation {
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub command: String,
}

impl Catalog {
    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Entries whose place is `path` or lies below it.
    pub fn entries_under<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| Taxonomy::is_within(&e.place, path))
    }

    /// All distinct papers, in entry order, first occurrence kept (same arXiv id, or same title without one).
    pub fn papers(&self) -> Vec<&Paper> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .flat_map(|e| &e.papers)
            .filter(|p| seen.insert(paper_identity(p)))
            .collect()
    }
}

/// Two citations of the same paper have the same identity: the arXiv id, else the normalised title.
pub(crate) fn paper_identity(p: &Paper) -> String {
    match &p.arxiv {
        Some(id) => format!("arxiv:{}", crate::validate::strip_arxiv_version(id)),
        None => format!(
            "title:{}",
            p.title
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

impl Taxonomy {
    pub fn node(&self, path: &str) -> Option<&TaxonomyNode> {
        self.nodes.iter().find(|n| n.path == path)
    }

    /// Direct children of `path` (the roots for `""`), in document order.
    pub fn children<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a TaxonomyNode> + 'a {
        self.nodes
            .iter()
            .filter(move |n| parent_path(&n.path) == path)
    }

    /// The nodes from the root down to `path`, inclusive.
    pub fn ancestors(&self, path: &str) -> Vec<&TaxonomyNode> {
        let mut prefix = String::new();
        let mut out = Vec::new();
        for segment in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            if let Some(node) = self.node(&prefix) {
                out.push(node);
            }
        }
        out
    }

    /// Nodes with no children.
    pub fn leaves(&self) -> impl Iterator<Item = &TaxonomyNode> {
        self.nodes
            .iter()
            .filter(|n| self.children(&n.path).next().is_none())
    }

    /// Whether `place` is `path` or a descendant of it.
    pub fn is_within(place: &str, path: &str) -> bool {
        place == path
            || (place.starts_with(path) && place.as_bytes().get(path.len()) == Some(&b'/'))
    }
}

/// `a/b/c` → `a/b`; a root → `""`.
pub fn parent_path(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}
