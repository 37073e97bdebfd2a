//! Math at build time: every `$…$` and `$$…$$` outside code becomes MathML (math-core, pure Rust), so the book
//! needs no script and no CDN, and pages satisfy a CSP without inline styles.
//!
//! [`MathPreprocessor`] plugs this into mdBook. The MathML is written into the Markdown as inline HTML, one line
//! per formula, with the characters Markdown would read as markup replaced by character references.

use std::sync::{Arc, Mutex};

use math_core::{LatexToMathML, MathCoreConfig, MathDisplay};
use mdbook_preprocessor::book::{Book, BookItem};
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};
use pulldown_cmark::{Event, Parser};

/// A formula that did not convert (it is shown as its LaTeX source instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MathFailure {
    /// The page, e.g. `chapters/04-learning-from-feedback.md`.
    pub page: String,
    pub line: usize,
    pub latex: String,
    pub message: String,
}

impl std::fmt::Display for MathFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: cannot render `{}` as MathML: {}",
            self.page, self.line, self.latex, self.message
        )
    }
}

/// LaTeX → MathML. Built once; conversion takes `&self`.
pub struct MathConverter {
    converter: LatexToMathML,
}

impl Default for MathConverter {
    fn default() -> Self {
        MathConverter {
            converter: LatexToMathML::new(MathCoreConfig::default())
                .expect("the default config has no macros"),
        }
    }
}

impl MathConverter {
    /// One formula as MathML on one line, without `style` attributes (math-core uses them for negative thin
    /// spaces; the site's CSP forbids inline styles), with self-closing tags written out (`<mspace></mspace>`:
    /// HTML parsers ignore `/>` on elements that are not void).
    pub fn mathml(&self, latex: &str, display: MathDisplay) -> Result<String, String> {
        let result = self
            .converter
            .convert_with_local_state(latex, display)
            .map_err(|e| e.to_string())?;
        Ok(tidy(&result.mathml))
    }

    /// The page with every formula replaced by MathML; formulas that fail are kept as code and reported.
    pub fn markdown(&self, markdown: &str, page: &str) -> (String, Vec<MathFailure>) {
        let mut out = String::with_capacity(markdown.len() * 2);
        let mut failures = Vec::new();
        let mut copied = 0;
        for (event, range) in
            Parser::new_ext(markdown, crate::markdown::options()).into_offset_iter()
        {
            let (latex, display) = match event {
                Event::InlineMath(latex) => (latex, MathDisplay::Inline),
                Event::DisplayMath(latex) => (latex, MathDisplay::Block),
                _ => continue,
            };
            out.push_str(&markdown[copied..range.start]);
            copied = range.end;
            match self.mathml(&latex, display) {
                Ok(mathml) => out.push_str(&markdown_safe(&mathml)),
                Err(message) => {
                    failures.push(MathFailure {
                        page: page.to_owned(),
                        line: crate::markdown::line_of(markdown, range.start),
                        latex: latex.to_string(),
                        message,
                    });
                    out.push_str("<code class=\"math-source\">");
                    out.push_str(&markdown_safe(&escape_html(&latex)));
                    out.push_str("</code>");
                }
            }
        }
        out.push_str(&markdown[copied..]);
        (out, failures)
    }
}

/// Drops `style="…"` attributes, expands `<tag …/>` to `<tag …></tag>`, and removes newlines.
fn tidy(mathml: &str) -> String {
    let mut out = String::with_capacity(mathml.len() + 64);
    let mut rest = mathml;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>').map(|i| open + i) else {
            break;
        };
        let tag = &rest[open..=close];
        let mut cleaned = String::with_capacity(tag.len());
        let mut t = tag;
        while let Some(i) = t.find(" style=\"") {
            cleaned.push_str(&t[..i]);
            let after = &t[i + 8..];
            t = after.find('"').map_or("", |j| &after[j + 1..]);
        }
        cleaned.push_str(t);
        if let Some(body) = cleaned.strip_suffix("/>") {
            let name: String = body[1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            out.push_str(body.trim_end());
            out.push_str("></");
            out.push_str(&name);
            out.push('>');
        } else {
            out.push_str(&cleaned);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.replace(['\n', '\r'], "")
}

/// Text between tags with every character that Markdown could read as markup replaced by a character reference,
/// so the formula survives the Markdown pass as inline HTML.
fn markdown_safe(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 32);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ => {}
        }
        let reference = match c {
            _ if in_tag || c == '>' => None,
            '*' => Some("&#42;"),
            '_' => Some("&#95;"),
            '\\' => Some("&#92;"),
            '`' => Some("&#96;"),
            '[' => Some("&#91;"),
            ']' => Some("&#93;"),
            '$' => Some("&#36;"),
            '|' => Some("&#124;"),
            '~' => Some("&#126;"),
            '!' => Some("&#33;"),
            _ => None,
        };
        match reference {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The mdBook preprocessor: converts the math of every chapter and records the failures for the build report.
pub struct MathPreprocessor {
    converter: MathConverter,
    failures: Arc<Mutex<Vec<MathFailure>>>,
}

impl MathPreprocessor {
    pub const NAME: &'static str = "rice-math";

    /// A preprocessor that appends every formula it cannot convert to `failures`.
    pub fn new(failures: Arc<Mutex<Vec<MathFailure>>>) -> Self {
        MathPreprocessor {
            converter: MathConverter::default(),
            failures,
        }
    }
}

impl Preprocessor for MathPreprocessor {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> anyhow::Result<Book> {
        let mut failures = Vec::new();
        book.for_each_mut(|item| {
            if let BookItem::Chapter(chapter) = item {
                let page = chapter
                    .path
                    .as_ref()
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_else(|| chapter.name.clone());
                let (content, failed) = self.converter.markdown(&chapter.content, &page);
                chapter.content = content;
                failures.extend(failed);
            }
        });
        self.failures
            .lock()
            .map_err(|_| anyhow::anyhow!("a previous build panicked"))?
            .extend(failures);
        Ok(book)
    }

    fn supports_renderer(&self, renderer: &str) -> anyhow::Result<bool> {
        Ok(renderer == "html")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_display_math_become_mathml_outside_code_only() {
        let c = MathConverter::default();
        let md = "Loss $\\log \\sigma(\\beta h)$ here.\n\n$$\n\\mathcal{L} = -\\mathbb{E}[x_i]\n$$\n\n`$x$` and\n\n```\n$y$\n```\n";
        let (out, failures) = c.markdown(md, "p.md");
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(out.matches("<math").count(), 2, "{out}");
        assert!(out.contains("display=\"block\""), "{out}");
        assert!(out.contains("`$x$`") && out.contains("$y$\n```"), "{out}");
        assert!(!out.contains("\\log"), "{out}");
    }

    #[test]
    fn the_constructs_the_chapters_use_convert() {
        let c = MathConverter::default();
        for latex in [
            r"\frac{a}{b}",
            r"x_{t+1} = x_t^2",
            r"\log \sigma(z)",
            r"\mathbb{E}[X]",
            r"\|\theta - \theta_0\|",
            r"\Theta(n \log n)",
            r"\left( \frac{1}{2} \right)",
            r"\mathrm{KL}(p \,\|\, q)",
            r"\mathcal{L}_{\mathrm{DPO}}",
            r"\pi_\theta(y \mid x) \propto \exp\big(r(x, y)/\beta\big)",
        ] {
            let mathml = c.mathml(latex, MathDisplay::Block);
            assert!(
                mathml.as_ref().is_ok_and(|m| m.starts_with("<math")),
                "{latex}: {mathml:?}"
            );
        }
    }

    #[test]
    fn mathml_is_safe_inside_markdown_and_html() {
        let c = MathConverter::default();
        // Underscores, stars, brackets and bars would otherwise be read as Markdown; \! makes a negative space
        // (a style attribute in math-core's output); \, an <mspace/>.
        let (out, _) = c.markdown("$a_* \\cdot [b] \\| x \\|, a\\!b\\,c$", "p.md");
        assert!(!out.contains("style="), "{out}");
        assert!(!out.contains("/>"), "{out}");
        let text: String = out
            .split('<')
            .map(|s| s.split_once('>').map_or(s, |(_, t)| t))
            .collect();
        for c in ['_', '*', '[', ']', '|', '\\'] {
            assert!(!text.contains(c), "`{c}` left in the text of {out}");
        }
    }

    #[test]
    fn a_broken_formula_is_reported_and_shown_as_source() {
        let c = MathConverter::default();
        let (out, failures) = c.markdown("one\n\nbad $\\nosuchcommand{<b>}$ math", "ch.md");
        assert_eq!(failures.len(), 1, "{out}");
        assert_eq!(failures[0].line, 3);
        assert!(out.contains("math-source"), "{out}");
        assert!(!out.contains("<b>"), "{out}");
    }

    #[test]
    fn self_closing_tags_are_expanded() {
        assert_eq!(
            tidy("<mspace width=\"1em\"/><mi style=\"x\">a</mi>\n"),
            "<mspace width=\"1em\"></mspace><mi>a</mi>"
        );
    }
}
