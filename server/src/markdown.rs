//! Entry bodies from Markdown to HTML, with LaTeX math rendered to MathML on the server (no CDN, no script).
//!
//! Raw HTML in the Markdown is shown as text, never passed through: catalog text is data, not markup.

use math_core::{LatexToMathML, MathCoreConfig, MathDisplay};
use pulldown_cmark::{Event, Options, Parser, html};

/// Renders catalog Markdown. One converter is built at start-up and shared; conversion takes `&self`.
pub struct MarkdownRenderer {
    math: LatexToMathML,
}

impl Default for MarkdownRenderer {
    fn default() -> Self {
        MarkdownRenderer {
            math: LatexToMathML::new(MathCoreConfig::default())
                .expect("the default config has no macros"),
        }
    }
}

impl MarkdownRenderer {
    /// Markdown (with `$…$` and `$$…$$` math) to HTML.
    pub fn render(&self, markdown: &str) -> String {
        let options = Options::ENABLE_MATH | Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
        let events = Parser::new_ext(markdown, options).map(|event| match event {
            Event::InlineMath(latex) => {
                Event::InlineHtml(self.math(&latex, MathDisplay::Inline).into())
            }
            Event::DisplayMath(latex) => Event::Html(self.math(&latex, MathDisplay::Block).into()),
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            other => other,
        });
        let mut out = String::with_capacity(markdown.len() * 2);
        html::push_html(&mut out, events);
        out
    }

    /// One formula as MathML; a formula that does not convert is shown as its (escaped) source, marked so.
    pub fn math(&self, latex: &str, display: MathDisplay) -> String {
        match self.math.convert_with_local_state(latex, display) {
            Ok(result) => without_style_attributes(&result.mathml),
            Err(_) => format!(
                "<code class=\"math-source\" title=\"formula shown as LaTeX\">{}</code>",
                rice_search::escape_html(latex)
            ),
        }
    }
}

/// Drops `style="…"` attributes (math-core uses them for negative thin spaces), so that pages satisfy a
/// Content-Security-Policy without `'unsafe-inline'` styles. The cost is a hair of spacing in a few formulas.
fn without_style_attributes(mathml: &str) -> String {
    let mut out = String::with_capacity(mathml.len());
    let mut rest = mathml;
    while let Some(i) = rest.find(" style=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 8..];
        rest = after.find('"').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn math_becomes_mathml_and_html_stays_text() {
        let r = MarkdownRenderer::default();
        let html = r.render("The loss $\\log\\sigma(\\beta h)$ and\n\n$$\n\\mathcal{L} = -\\mathbb{E}[x]\n$$\n\n<script>alert(1)</script>");
        assert!(html.contains("<math"), "{html}");
        assert!(html.contains("display=\"block\""), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn inline_styles_are_removed_from_mathml() {
        assert_eq!(
            without_style_attributes("<mspace style=\"margin-left:-1em;\"/><mi>x</mi>"),
            "<mspace/><mi>x</mi>"
        );
        let html = MarkdownRenderer::default().render("$a\\!b$");
        assert!(!html.contains("style="), "{html}");
    }

    #[test]
    fn broken_math_is_shown_as_escaped_source() {
        let r = MarkdownRenderer::default();
        let html = r.render("bad $\\frac{<b>$ math");
        assert!(!html.contains("<b>"), "{html}");
    }
}
