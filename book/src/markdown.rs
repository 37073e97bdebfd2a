//! What the book needs to know about a Markdown page: its headings (with the anchors the HTML will have), its
//! links, its text section by section (for search), and a way to show catalog text's raw HTML as text.
//!
//! Everything here parses with pulldown-cmark under the options mdBook's renderer uses (plus math, so that `$…$`
//! is recognised the way the math preprocessor will see it), and works on byte ranges of the source.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// mdBook 0.5's Markdown options, plus math.
pub(crate) fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_MATH
}

/// A heading of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heading {
    /// 1 for `#`, 2 for `##`, …
    pub level: u8,
    /// The heading's text (Markdown markers removed, math as its LaTeX source).
    pub title: String,
    /// The HTML `id` the heading gets: given with `{#id}`, or made from the text like mdBook does.
    pub id: String,
    /// Byte offset of the heading in the source.
    pub start: usize,
}

/// The `id` mdBook makes from a heading's text: lowercase, letters, digits, `_` and `-` kept, whitespace turned
/// into `-`, everything else dropped.
pub fn id_from_text(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// Every heading, in order, with unique ids (`-1`, `-2`, … appended to repeats, as mdBook does).
pub fn headings(markdown: &str) -> Vec<Heading> {
    let mut out: Vec<Heading> = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut current: Option<(u8, Option<String>, usize, String)> = None;
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, id, .. }) => {
                current = Some((
                    heading_level(level),
                    id.map(|s| s.to_string()),
                    range.start,
                    String::new(),
                ));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, id, start, title)) = current.take() {
                    let title = title.trim().to_owned();
                    let id = match id {
                        Some(id) => {
                            used.insert(id.clone());
                            id
                        }
                        None => unique(id_from_text(&title), &mut used),
                    };
                    out.push(Heading {
                        level,
                        title,
                        id,
                        start,
                    });
                }
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if let Some((.., title)) = current.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((.., title)) = current.as_mut() {
                    title.push(' ');
                }
            }
            _ => {}
        }
    }
    out
}

fn heading_level(level: HeadingLevel) -> u8 {
    level as u8
}

fn unique(id: String, used: &mut std::collections::HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    (1..)
        .map(|n| format!("{id}-{n}"))
        .find(|candidate| used.insert(candidate.clone()))
        .expect("some suffix is free")
}

/// The page with an explicit `{#id}` on every ATX heading that has none, so that the anchors in the HTML are the
/// ones [`headings`] computed (search results and backlinks point at them) whatever mdBook's own rule becomes.
pub fn with_heading_ids(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 256);
    let mut copied = 0;
    let explicit: Vec<usize> = Parser::new_ext(markdown, options())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Heading { id: Some(_), .. }) => Some(range.start),
            _ => None,
        })
        .collect();
    for h in headings(markdown) {
        if explicit.contains(&h.start) || !markdown[h.start..].starts_with('#') {
            continue; // has an id already, or is a setext heading
        }
        let line_end = markdown[h.start..]
            .find('\n')
            .map_or(markdown.len(), |i| h.start + i);
        let line = markdown[h.start..line_end].trim_end();
        // An ATX heading may close with `#`s: they are dropped, since an attribute block must end the line.
        let content_end = h.start + line.trim_end_matches('#').trim_end().len();
        out.push_str(&markdown[copied..content_end]);
        out.push_str(&format!(" {{#{}}}", h.id));
        copied = h.start + line.len();
    }
    out.push_str(&markdown[copied..]);
    out
}

/// A link (or image) of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub dest: String,
    /// 1-based line of the link in the source.
    pub line: usize,
    /// The heading the link is under (its id), if any.
    pub section: Option<String>,
}

/// Every link and image destination, in order.
pub fn links(markdown: &str) -> Vec<Link> {
    let heads = headings(markdown);
    Parser::new_ext(markdown, options())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => Some(Link {
                dest: dest_url.to_string(),
                line: line_of(markdown, range.start),
                section: heads
                    .iter()
                    .rev()
                    .find(|h| h.start <= range.start)
                    .map(|h| h.id.clone()),
            }),
            _ => None,
        })
        .collect()
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A page's text between two headings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionText {
    /// The heading that opens the section (`None` for text before the first heading).
    pub heading: Option<Heading>,
    /// The words of the section: Markdown markers, link targets, HTML and code fences' markers removed.
    pub text: String,
}

/// The page cut at every heading, each part as plain text.
pub fn sections(markdown: &str) -> Vec<SectionText> {
    let heads = headings(markdown);
    let mut out: Vec<SectionText> = vec![SectionText {
        heading: None,
        text: String::new(),
    }];
    let mut next_heading = heads.iter().peekable();
    let mut in_heading = false;
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        let text = &mut out.last_mut().expect("never empty").text;
        match event {
            Event::Start(Tag::Heading { .. }) => {
                in_heading = true;
                if next_heading.peek().is_some_and(|h| h.start == range.start) {
                    out.push(SectionText {
                        heading: next_heading.next().cloned(),
                        text: String::new(),
                    });
                }
            }
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            _ if in_heading => {}
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                text.push_str(&t)
            }
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Item
                | TagEnd::TableCell
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_),
            ) => text.push('\n'),
            _ => {}
        }
    }
    if out[0].text.trim().is_empty() {
        out.remove(0);
    }
    for s in &mut out {
        s.text = s.text.trim().to_owned();
    }
    out
}

/// Catalog text is data, not markup: raw HTML in it is shown as text (as the site does), by escaping the `<` of
/// every HTML span pulldown-cmark finds. Math and code are left alone.
pub fn escape_raw_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut copied = 0;
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        if let Event::Html(_) | Event::InlineHtml(_) = event {
            if range.start < copied {
                continue;
            }
            out.push_str(&markdown[copied..range.start]);
            out.push_str(&markdown[range.clone()].replace('<', "&lt;"));
            copied = range.end;
        }
    }
    out.push_str(&markdown[copied..]);
    out
}

/// Text that will sit inside Markdown link text or a table cell: the characters that would start markup are
/// backslash-escaped.
pub fn escape_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>|$#".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_mdbooks_rule_and_are_unique() {
        assert_eq!(id_from_text("RLHF: the objective"), "rlhf-the-objective");
        assert_eq!(id_from_text("  Über `--steps` N "), "über---steps-n");
        let md = "# Title\n\n## Setup\n\ntext\n\n## Setup\n\n### A $\\beta$ term {#beta}\n";
        let ids: Vec<String> = headings(md).into_iter().map(|h| h.id).collect();
        assert_eq!(ids, ["title", "setup", "setup-1", "beta"]);
    }

    #[test]
    fn explicit_ids_are_added_to_atx_headings_only_where_missing() {
        let md = "# Title\n\ntext # not a heading\n\n## Two ##\n\n## Three {#three-x}\n\n```sh\n# comment\n```\n";
        let out = with_heading_ids(md);
        assert_eq!(
            out,
            "# Title {#title}\n\ntext # not a heading\n\n## Two {#two}\n\n## Three {#three-x}\n\n```sh\n# comment\n```\n"
        );
        // Idempotent: the ids are now explicit.
        assert_eq!(with_heading_ids(&out), out);
    }

    #[test]
    fn links_know_their_line_and_section() {
        let md = "# T\n\nSee [DPO](../entries/dpo.md).\n\n## More\n\n![plot](a.svg) and [x](https://e.org)\n";
        let l = links(md);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].dest, "../entries/dpo.md");
        assert_eq!(l[0].line, 3);
        assert_eq!(l[0].section.as_deref(), Some("t"));
        assert_eq!(l[1].section.as_deref(), Some("more"));
    }

    #[test]
    fn sections_are_plain_text_cut_at_headings() {
        let md = "intro words\n\n# Title\n\nSome **bold** [link](x.md) and `code`.\n\n## Sub\n\n- one\n- two\n\n<!-- hidden -->\n";
        let s = sections(md);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].heading, None);
        assert_eq!(s[0].text, "intro words");
        assert_eq!(s[1].heading.as_ref().unwrap().id, "title");
        assert_eq!(s[1].text, "Some bold link and code.");
        assert_eq!(s[2].text, "one\ntwo");
    }

    #[test]
    fn raw_html_in_catalog_text_becomes_text() {
        let md = "A <b>bold</b> claim, $s_{<t}$ math and `<code>`.\n\n<script>x</script>\n";
        let out = escape_raw_html(md);
        assert!(out.contains("&lt;b>bold&lt;/b>"), "{out}");
        assert!(out.contains("&lt;script>"), "{out}");
        assert!(out.contains("$s_{<t}$"), "{out}");
        assert!(out.contains("`<code>`"), "{out}");
    }
}
