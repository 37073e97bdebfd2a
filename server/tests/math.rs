//! The catalog's math as the site renders it: every table keeps its rows.
//!
//! math-core lets a style switch such as `\textstyle` run on to the end of its group, and an alignment cell is not
//! one: in `& \textstyle\sum_e … \\` it swallows the rest of the table, whose row separators are then dropped (a
//! debug build of math-core panics there instead, which is how the fuzzer found it). Brace the switch:
//! `& {\textstyle\sum_e …} \\`.

use math_core::MathDisplay;
use rice_catalog::Catalog;
use rice_server::markdown::MarkdownRenderer;

/// The display formulas (`$$…$$`) of a Markdown body.
fn display_math(body: &str) -> impl Iterator<Item = &str> {
    body.split("$$").skip(1).step_by(2)
}

#[test]
fn every_table_in_the_catalog_keeps_its_rows() {
    let catalog = Catalog::embedded().unwrap();
    let renderer = MarkdownRenderer::default();
    let mut tables = 0;
    for entry in &catalog.entries {
        for latex in display_math(&entry.body) {
            // Each environment is one table; each `\\` starts one more row in it.
            let environments = latex.matches("\\begin{").count();
            if environments == 0 {
                continue;
            }
            tables += environments;
            let rows = environments + latex.matches("\\\\").count();
            let mathml = renderer.math(latex, MathDisplay::Block);
            assert_eq!(
                mathml.matches("<mtr").count(),
                rows,
                "{}: {latex}\n{mathml}",
                entry.source
            );
        }
    }
    assert!(tables >= 3, "only {tables} tables in the catalog's math");
}
