//! The real book (embedded chapters and labs, embedded catalog): it builds, every formula renders, the content
//! meets the course's bar, and the site learns what it needs (search sections, backlinks).

use std::path::Path;

use rice_book::{Book, BookError, PageKind};
use rice_catalog::Catalog;

fn catalog() -> Catalog {
    Catalog::embedded().expect("the embedded catalog is valid")
}

#[test]
fn the_book_builds_with_every_formula_as_mathml() {
    let catalog = catalog();
    let book = Book::embedded(&catalog).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("html");
    let report = book.build(&dir.path().join("src"), &html).unwrap();
    let failures: Vec<String> = report.math_failures.iter().map(|f| f.to_string()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Introduction, chapters, labs, one page per taxonomy node and per entry, the reference index.
    let expected = 1
        + book.chapters.len()
        + book.labs.len()
        + catalog.taxonomy.nodes.len()
        + catalog.entries.len()
        + 1;
    assert_eq!(report.pages, expected);
    for page in book.pages() {
        let file = html.join(page.path().replace(".md", ".html"));
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&page.title),
            "{} lacks its title",
            file.display()
        );
    }
    for e in &catalog.entries {
        assert!(
            html.join(format!("entries/{}.html", e.id)).is_file(),
            "{}",
            e.id
        );
    }
    let summary = std::fs::read_to_string(dir.path().join("src/src/SUMMARY.md")).unwrap();
    assert!(
        summary.contains("- [4. Learning from Feedback](chapters/04-learning-from-feedback.md)")
    );
    assert!(summary.contains("(entries/dpo.md)"));
    // The theme's assets are there and the book's own search is off.
    assert!(html.join("rice/head.js").is_file() && html.join("rice/book.css").is_file());
    assert!(!html.join("searchindex.js").exists());
}

#[test]
fn chapters_and_labs_meet_the_course_bar() {
    let catalog = catalog();
    let book = Book::embedded(&catalog).unwrap();
    assert!(
        book.chapters.len() >= 13,
        "{} chapters",
        book.chapters.len()
    );
    for chapter in &book.chapters {
        let words = chapter.markdown.split_whitespace().count();
        assert!(words >= 800, "{} has {words} words", chapter.stem);
    }
    let labs: Vec<&str> = book.labs.iter().map(|l| l.stem.as_str()).collect();
    assert_eq!(labs, rice_book::LAB_ORDER, "labs in teaching order");
    for lab in &book.labs {
        assert_eq!(lab.kind, PageKind::Lab);
        let md = &lab.markdown;
        assert!(md.contains("**Goal.**"), "{}: no goal", lab.stem);
        assert!(md.contains("```sh\nrice "), "{}: no commands", lab.stem);
        assert!(
            md.contains("## What you should see"),
            "{}: no expected output",
            lab.stem
        );
        assert!(
            md.contains("## Questions") && md.contains("## Exercises"),
            "{}",
            lab.stem
        );
        let answers = md.matches("<details>").count();
        assert!(answers >= 3, "{}: {answers} folded answers", lab.stem);
        assert_eq!(answers, md.matches("</details>").count(), "{}", lab.stem);
    }
}

#[test]
fn the_site_learns_sections_and_backlinks() {
    let catalog = catalog();
    let book = Book::embedded(&catalog).unwrap();
    let sections = book.search_documents();
    assert!(sections.len() > 100, "{} sections", sections.len());
    let preference = sections
        .iter()
        .find(|s| s.url == "/book/chapters/04-learning-from-feedback.html#preference-modelling")
        .expect("a section per heading, at its anchor");
    assert!(
        preference.title.ends_with("› Preference modelling"),
        "{}",
        preference.title
    );
    assert!(preference.body.contains("Bradley"), "{}", preference.body);
    assert!(
        !preference.body.contains("](../"),
        "link targets are not text"
    );

    let backlinks = book.backlinks();
    let dpo = &backlinks["dpo"];
    assert!(
        dpo.iter().any(|b| b
            .url
            .starts_with("/book/chapters/04-learning-from-feedback.html#")),
        "{dpo:?}"
    );
    assert!(
        dpo.iter().any(|b| b.url == "/book/labs/dpo.html"),
        "{dpo:?}"
    );
    // Every entry a chapter links to exists (the build refuses dangling links; this names the ids).
    for id in backlinks.keys() {
        assert!(
            catalog.entry(id).is_some(),
            "a page links to unknown entry {id}"
        );
    }
}

#[test]
fn a_link_to_nowhere_stops_the_build_with_its_file_and_line() {
    let catalog = catalog();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("chapters")).unwrap();
    std::fs::create_dir_all(src.join("labs")).unwrap();
    std::fs::write(src.join("intro.md"), "# Intro\n").unwrap();
    std::fs::write(
        src.join("chapters/01-a.md"),
        "# A\n\nSee [DPO](../entries/dpo.md#the-loss), [x](../entries/no-such-entry.md),\n[lab](../labs/missing.md) \
         and [here](#nowhere).\n",
    )
    .unwrap();
    let book = Book::from_dir(&catalog, src).unwrap();
    let err = book
        .write_source(&src.join("out"), Path::new("/tmp/unused"))
        .unwrap_err();
    let BookError::BrokenLinks(broken) = err else {
        panic!("{err}")
    };
    assert_eq!(broken.len(), 3, "{broken:?}");
    assert!(
        broken[0].starts_with("book/chapters/01-a.md:3:"),
        "{}",
        broken[0]
    );
    assert!(broken[0].contains("no-such-entry"), "{}", broken[0]);
    assert!(broken[1].contains("labs/missing.md"), "{}", broken[1]);
    assert!(broken[2].contains("#nowhere"), "{}", broken[2]);
}

#[test]
fn the_embedded_book_is_the_one_in_the_repository() {
    let catalog = catalog();
    let embedded = Book::embedded(&catalog).unwrap();
    let on_disk = Book::from_dir(&catalog, Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let texts = |b: &Book| b.pages().map(|p| p.markdown.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&embedded), texts(&on_disk));
    assert_eq!(embedded.intro, on_disk.intro);
}
