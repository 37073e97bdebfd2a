//! Problems found in catalog sources, each pinned to `file:line:column`, printed the way compilers print them.

use std::fmt;
use std::ops::Range;

/// One problem in one source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user knows it, e.g. `catalog/entries/forward/dpo.toml`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The text of the offending line, for the excerpt.
    pub excerpt: String,
    /// How many characters of the excerpt to underline (at least 1).
    pub width: usize,
}

impl Diagnostic {
    /// A diagnostic at byte range `span` of `text`.
    pub fn at(
        file: &str,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let excerpt = text[line_start..line_end].trim_end_matches('\r').to_owned();
        let end = floor_char_boundary(text, span.end.clamp(start, line_end));
        let width = text[start..end].chars().count().max(1);
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            message: message.into(),
            hint,
            excerpt,
            width,
        }
    }

    /// `file:line:column`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    /// ```text
    /// catalog/entries/forward/dpo.toml:5:9: error: unknown place `forward/feedback`
    ///     5 | place = "forward/feedback"
    ///       |         ^^^^^^^^^^^^^^^^^^
    ///       = hint: did you mean `forward/learning-from-feedback`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: error: {}", self.location(), self.message)?;
        if !self.excerpt.is_empty() {
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            writeln!(f, "  {number} | {}", self.excerpt)?;
            let lead: String = self
                .excerpt
                .chars()
                .take(self.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "  {pad} | {lead}{}", "^".repeat(self.width))?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a catalog, sorted by file and position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many distinct files have problems.
    pub fn file_count(&self) -> usize {
        let mut files: Vec<&str> = self.0.iter().map(|d| d.file.as_str()).collect();
        files.sort_unstable();
        files.dedup();
        files.len()
    }

    pub(crate) fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.len();
        let files = self.file_count();
        write!(
            f,
            "{n} problem{} in {files} file{}",
            if n == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}
