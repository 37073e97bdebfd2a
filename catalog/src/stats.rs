//! Counts over the catalog, and its coverage of the survey's list of topics (`catalog/survey.toml`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Catalog, Kind, Principle};

/// One row of the coverage target: a topic of "AI Alignment: A Comprehensive Survey" that the catalog must cover.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SurveyRow {
    pub number: u32,
    pub id: String,
    pub name: String,
    pub survey_place: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurveyFile {
    row: Vec<SurveyRow>,
}

/// The survey's topic list, compiled into the binary.
pub fn survey_rows() -> Vec<SurveyRow> {
    let file: SurveyFile = toml::from_str(include_str!("../survey.toml"))
        .expect("catalog/survey.toml is valid (tested)");
    file.row
}

/// How one survey row is covered.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Coverage {
    /// An entry has the row's id.
    Entry,
    /// The row was merged into another entry, which lists the row's id among its aliases.
    Merged {
        into: String,
    },
    Missing,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeCount {
    pub path: String,
    pub title: String,
    pub depth: usize,
    /// Entries placed exactly here.
    pub own: usize,
    /// Entries here or below.
    pub total: usize,
    pub leaf: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    pub entries: usize,
    pub papers: usize,
    pub unverified_papers: usize,
    pub with_implementation: usize,
    pub by_node: Vec<NodeCount>,
    /// Per principle: (entries where it is primary, entries where it is primary or secondary).
    pub by_principle: BTreeMap<Principle, (usize, usize)>,
    pub by_kind: BTreeMap<Kind, usize>,
    pub coverage: Vec<(SurveyRow, Coverage)>,
}

impl Stats {
    pub fn compute(catalog: &Catalog) -> Stats {
        let by_node = catalog
            .taxonomy
            .nodes
            .iter()
            .map(|n| NodeCount {
                path: n.path.clone(),
                title: n.title.clone(),
                depth: n.path.matches('/').count(),
                own: catalog.entries.iter().filter(|e| e.place == n.path).count(),
                total: catalog.entries_under(&n.path).count(),
                leaf: catalog.taxonomy.children(&n.path).next().is_none(),
            })
            .collect();
        let by_principle = Principle::ALL
            .into_iter()
            .map(|p| {
                let primary = catalog
                    .entries
                    .iter()
                    .filter(|e| e.rice.primary.contains(&p))
                    .count();
                let any = catalog
                    .entries
                    .iter()
                    .filter(|e| e.rice.contains(p))
                    .count();
                (p, (primary, any))
            })
            .collect();
        let by_kind = Kind::ALL
            .into_iter()
            .map(|k| (k, catalog.entries.iter().filter(|e| e.kind == k).count()))
            .collect();
        let coverage = survey_rows()
            .into_iter()
            .map(|row| {
                let status = if catalog.entry(&row.id).is_some() {
                    Coverage::Entry
                } else if let Some(e) = catalog
                    .entries
                    .iter()
                    .find(|e| e.aliases.iter().any(|a| a == &row.id))
                {
                    Coverage::Merged { into: e.id.clone() }
                } else {
                    Coverage::Missing
                };
                (row, status)
            })
            .collect();
        let papers = catalog.papers();
        Stats {
            entries: catalog.entries.len(),
            papers: papers.len(),
            unverified_papers: papers.iter().filter(|p| p.unverified).count(),
            with_implementation: catalog
                .entries
                .iter()
                .filter(|e| e.implementation.is_some())
                .count(),
            by_node,
            by_principle,
            by_kind,
            coverage,
        }
    }

    /// Leaves of the taxonomy that hold no entry.
    pub fn empty_leaves(&self) -> Vec<&str> {
        self.by_node
            .iter()
            .filter(|n| n.leaf && n.total == 0)
            .map(|n| n.path.as_str())
            .collect()
    }

    pub fn missing(&self) -> Vec<&SurveyRow> {
        self.coverage
            .iter()
            .filter(|(_, c)| *c == Coverage::Missing)
            .map(|(r, _)| r)
            .collect()
    }
}
