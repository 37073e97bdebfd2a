//! One test per validation rule: a small valid catalog, one planted problem, and the exact diagnostic expected
//! (message, line and column). A final test plants many problems at once and expects every one of them.

use rice_catalog::{Catalog, Diagnostic, SourceFile};

const TAXONOMY: &str = r#"[[node]]
path = "forward"
title = "Forward alignment"

[[node]]
path = "forward/policy-learning"
title = "Policy learning"
section = "§2.3"
"#;

const DPO: &str = r#"id = "dpo"
name = "Direct Preference Optimization"
aliases = ["DPO"]
kind = "method"
place = "forward/policy-learning"
summary = '''
Optimises a policy directly on preference pairs.
'''
body = '''
The loss is $-\log\sigma(\beta \Delta)$.
'''
related = ["rlhf"]
tags = ["offline"]

[rice]
primary = ["controllability"]
secondary = ["ethicality"]

[[papers]]
title = "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
authors = ["Rafael Rafailov", "others"]
year = 2023
venue = "NeurIPS 2023"
arxiv = "2305.18290"

[implementation]
crate = "rice-dpo"
command = "rice run dpo"
"#;

const RLHF: &str = r#"id = "rlhf"
name = "Reinforcement learning from human feedback"
kind = "method"
place = "forward/policy-learning"
summary = "Learn a reward model from comparisons, then optimise a policy against it."
related = ["dpo"]

[rice]
primary = ["controllability", "ethicality"]

[[papers]]
title = "Deep Reinforcement Learning from Human Preferences"
authors = ["Paul Christiano", "others"]
year = 2017
arxiv = "1706.03741"
"#;

const CRATES: &[&str] = &["rice", "rice-catalog", "rice-dpo"];

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        text: text.into(),
    }
}

fn check(taxonomy: &str, dpo: &str, rlhf: &str) -> Result<Catalog, Vec<Diagnostic>> {
    let entries = [
        file("entries/forward/dpo.toml", dpo),
        file("entries/forward/rlhf.toml", rlhf),
    ];
    Catalog::from_files(&file("taxonomy.toml", taxonomy), &entries, CRATES).map_err(|d| d.0)
}

/// Plants `from → to` in the DPO entry and expects exactly one diagnostic containing `message` at `line:column`.
fn expect_one(from: &str, to: &str, message: &str, line: usize, column: usize) -> Diagnostic {
    assert!(DPO.contains(from), "fixture does not contain {from:?}");
    let diagnostics = check(TAXONOMY, &DPO.replacen(from, to, 1), RLHF)
        .expect_err("the planted problem is found");
    assert_eq!(
        diagnostics.len(),
        1,
        "expected one diagnostic, got: {diagnostics:#?}"
    );
    let d = diagnostics.into_iter().next().unwrap();
    assert!(
        d.message.contains(message),
        "message {:?} lacks {message:?}",
        d.message
    );
    assert_eq!(
        (d.file.as_str(), d.line, d.column),
        ("entries/forward/dpo.toml", line, column),
        "{d}"
    );
    assert!(
        d.hint.is_some() || d.message.contains("twice"),
        "diagnostic without a hint: {d}"
    );
    d
}

#[test]
fn the_fixture_is_valid() {
    let catalog = check(TAXONOMY, DPO, RLHF).expect("valid");
    assert_eq!(catalog.entries.len(), 2);
    let dpo = catalog.entry("dpo").unwrap();
    assert_eq!(
        dpo.summary,
        "Optimises a policy directly on preference pairs."
    );
    assert_eq!(dpo.body, r"The loss is $-\log\sigma(\beta \Delta)$.");
    assert_eq!(dpo.implementation.as_ref().unwrap().crate_name, "rice-dpo");
    assert_eq!(dpo.source, "entries/forward/dpo.toml");
}

#[test]
fn unknown_field_is_an_error() {
    let d = expect_one(
        "summary = '''",
        "sumary = '''",
        "unknown field `sumary`",
        6,
        1,
    );
    assert!(d.hint.unwrap().contains("spelling"));
}

#[test]
fn unknown_field_in_a_paper_is_an_error() {
    expect_one(
        "venue = \"NeurIPS 2023\"",
        "venu = \"NeurIPS 2023\"",
        "unknown field `venu`",
        23,
        1,
    );
}

#[test]
fn syntax_error_is_reported_with_position() {
    // The parser notices the missing `]` where the next table starts.
    expect_one(
        "tags = [\"offline\"]",
        "tags = [\"offline\"",
        "expected `,`",
        15,
        1,
    );
}

#[test]
fn missing_required_field_is_an_error() {
    let diagnostics =
        check(TAXONOMY, &DPO.replacen("kind = \"method\"\n", "", 1), RLHF).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0].message.contains("missing field `kind`"),
        "{}",
        diagnostics[0]
    );
}

#[test]
fn wrong_type_is_an_error() {
    expect_one("year = 2023", "year = \"2023\"", "invalid type", 22, 8);
}

#[test]
fn duplicate_id_names_both_places() {
    let entries = [
        file("a/dpo.toml", DPO),
        file("b/dpo.toml", DPO),
        file("entries/forward/rlhf.toml", RLHF),
    ];
    let diagnostics = Catalog::from_files(&file("taxonomy.toml", TAXONOMY), &entries, CRATES)
        .unwrap_err()
        .0;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!((d.file.as_str(), d.line, d.column), ("b/dpo.toml", 1, 6));
    assert!(d.message.contains("duplicate id `dpo`"));
    assert!(d.hint.as_ref().unwrap().contains("a/dpo.toml:1:1"), "{d}");
}

#[test]
fn id_must_match_file_name() {
    let diagnostics = check(
        TAXONOMY,
        &DPO.replacen("id = \"dpo\"", "id = \"dpo-loss\"", 1),
        &RLHF.replace("\"dpo\"]", "\"dpo-loss\"]"),
    )
    .unwrap_err();
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert!(
        diagnostics[0]
            .message
            .contains("does not match the file name `dpo.toml`")
    );
}

#[test]
fn malformed_id_is_an_error() {
    let diagnostics = check(
        TAXONOMY,
        &DPO.replacen("id = \"dpo\"", "id = \"DPO_loss\"", 1),
        RLHF,
    )
    .unwrap_err();
    // The malformed id, and rlhf's `related = ["dpo"]` now dangling.
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message.contains("malformed id `DPO_loss`") && (d.line, d.column) == (1, 6))
    );
}

#[test]
fn dangling_related_id_is_an_error() {
    let d = expect_one(
        "related = [\"rlhf\"]",
        "related = [\"rlfh\"]",
        "related id `rlfh` does not exist",
        12,
        12,
    );
    assert!(d.hint.unwrap().contains("did you mean `rlhf`"));
}

#[test]
fn related_to_itself_is_an_error() {
    expect_one(
        "related = [\"rlhf\"]",
        "related = [\"rlhf\", \"dpo\"]",
        "lists itself",
        12,
        20,
    );
}

#[test]
fn unknown_place_is_an_error_with_a_suggestion() {
    let d = expect_one(
        "place = \"forward/policy-learning\"",
        "place = \"forward/policy-learnin\"",
        "unknown place",
        5,
        9,
    );
    assert!(d.hint.unwrap().contains("forward/policy-learning"));
}

#[test]
fn unknown_kind_is_an_error() {
    let d = expect_one(
        "kind = \"method\"",
        "kind = \"methd\"",
        "unknown kind `methd`",
        4,
        8,
    );
    assert!(d.hint.unwrap().contains("did you mean `method`"));
}

#[test]
fn unknown_rice_principle_is_an_error() {
    let d = expect_one(
        "secondary = [\"ethicality\"]",
        "secondary = [\"ethics\"]",
        "unknown RICE principle `ethics`",
        17,
        14,
    );
    assert!(
        d.hint
            .unwrap()
            .contains("robustness, interpretability, controllability, ethicality")
    );
}

#[test]
fn no_primary_principle_is_an_error() {
    expect_one(
        "primary = [\"controllability\"]",
        "primary = []",
        "no primary RICE principle",
        15,
        1,
    );
}

#[test]
fn principle_both_primary_and_secondary_is_an_error() {
    expect_one(
        "secondary = [\"ethicality\"]",
        "secondary = [\"controllability\"]",
        "both primary and secondary",
        17,
        14,
    );
}

#[test]
fn malformed_arxiv_ids_are_errors() {
    for (bad, hint) in [
        ("arXiv:2305.18290", "drop the prefix"),
        ("2305.1829", "5-digit"),
        ("2313.18290", "month"),
        ("1406.037410", "4-digit"),
        ("1706.0374", "5-digit"),
        ("cs/01120", "old-style"),
        ("attention", "bare identifier"),
    ] {
        let d = expect_one(
            "arxiv = \"2305.18290\"",
            &format!("arxiv = \"{bad}\""),
            "malformed arXiv id",
            24,
            9,
        );
        assert!(d.hint.as_ref().unwrap().contains(hint), "{bad}: {d}");
    }
    for good in [
        "2305.18290v3",
        "1706.03741",
        "cs/0112017",
        "math.GT/0309136v2",
        "hep-th/9711200",
    ] {
        assert_eq!(rice_catalog::check_arxiv(good), Ok(()), "{good}");
    }
}

#[test]
fn year_out_of_range_is_an_error() {
    expect_one(
        "year = 2023",
        "year = 1871",
        "year 1871 is out of range",
        22,
        8,
    );
    expect_one(
        "year = 2023",
        "year = 20230",
        "year 20230 is out of range",
        22,
        8,
    );
    expect_one("year = 2023", "year = -5", "out of range", 22, 8);
}

#[test]
fn empty_summary_is_an_error() {
    let text = DPO.replacen(
        "Optimises a policy directly on preference pairs.\n",
        "   \n",
        1,
    );
    let diagnostics = check(TAXONOMY, &text, RLHF).unwrap_err();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(
        (diagnostics[0].message.as_str(), diagnostics[0].line),
        ("empty summary", 6)
    );
}

#[test]
fn empty_name_and_title_are_errors() {
    expect_one(
        "name = \"Direct Preference Optimization\"",
        "name = \" \"",
        "empty name",
        2,
        8,
    );
    expect_one(
        "title = \"Direct Preference Optimization: Your",
        "title = \"\" # Your",
        "empty paper title",
        20,
        9,
    );
}

#[test]
fn paper_without_authors_is_an_error() {
    expect_one(
        "authors = [\"Rafael Rafailov\", \"others\"]",
        "authors = []",
        "without authors",
        21,
        11,
    );
    expect_one(
        "authors = [\"Rafael Rafailov\", \"others\"]",
        "authors = [\"others\", \"Rafael Rafailov\"]",
        "must be the last author",
        21,
        12,
    );
}

#[test]
fn implementation_naming_a_missing_crate_is_an_error() {
    let d = expect_one(
        "crate = \"rice-dpo\"",
        "crate = \"rice-ppo\"",
        "crate `rice-ppo`, which is not in this workspace",
        27,
        9,
    );
    assert!(d.hint.unwrap().contains("rice-dpo"));
}

#[test]
fn implementation_command_must_be_a_rice_command() {
    expect_one(
        "command = \"rice run dpo\"",
        "command = \"python train.py\"",
        "must be a `rice …` command",
        28,
        11,
    );
}

#[test]
fn malformed_url_and_tag_are_errors() {
    expect_one(
        "arxiv = \"2305.18290\"",
        "url = \"arxiv.org/abs/2305.18290\"",
        "malformed URL",
        24,
        7,
    );
    expect_one(
        "tags = [\"offline\"]",
        "tags = [\"Offline Data\"]",
        "malformed tag",
        13,
        9,
    );
}

#[test]
fn duplicate_alias_is_an_error() {
    expect_one(
        "aliases = [\"DPO\"]",
        "aliases = [\"DPO\", \"DPO\"]",
        "listed twice",
        3,
        19,
    );
}

#[test]
fn taxonomy_problems_are_reported() {
    let broken = TAXONOMY.replacen(
        "path = \"forward/policy-learning\"",
        "path = \"backward/policy-learning\"",
        1,
    );
    let diagnostics = check(&broken, DPO, RLHF).unwrap_err();
    let orphan = diagnostics
        .iter()
        .find(|d| d.file == "taxonomy.toml")
        .expect("a taxonomy diagnostic");
    assert!(orphan.message.contains("parent `backward`"), "{orphan}");
    assert_eq!((orphan.line, orphan.column), (6, 8));
    // Both entries now point at a place that no longer exists.
    assert_eq!(
        diagnostics
            .iter()
            .filter(|d| d.message.contains("unknown place"))
            .count(),
        2
    );

    let bad_slug = TAXONOMY.replacen("path = \"forward\"", "path = \"Forward Alignment\"", 1);
    assert!(
        check(&bad_slug, DPO, RLHF)
            .unwrap_err()
            .iter()
            .any(|d| d.message.contains("malformed taxonomy path"))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let dpo = DPO
        .replacen("kind = \"method\"", "kind = \"algorithm\"", 1)
        .replacen("related = [\"rlhf\"]", "related = [\"nope\"]", 1)
        .replacen("arxiv = \"2305.18290\"", "arxiv = \"23-05\"", 1)
        .replacen("year = 2023", "year = 3023", 1);
    let rlhf = RLHF.replacen(
        "place = \"forward/policy-learning\"",
        "place = \"nowhere\"",
        1,
    );
    let diagnostics = check(TAXONOMY, &dpo, &rlhf).unwrap_err();
    let messages: Vec<String> = diagnostics
        .iter()
        .map(|d| format!("{}:{}:{} {}", d.file, d.line, d.column, d.message))
        .collect();
    assert_eq!(diagnostics.len(), 5, "{messages:#?}");
    for expected in [
        "dpo.toml:4:8 unknown kind",
        "dpo.toml:12:12 related id",
        "dpo.toml:22:8 year 3023",
        "dpo.toml:24:9 malformed arXiv",
        "rlhf.toml:4:9 unknown place",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "missing {expected}: {messages:#?}"
        );
    }
}

#[test]
fn diagnostics_render_with_excerpt_and_caret() {
    let d = expect_one(
        "kind = \"method\"",
        "kind = \"methd\"",
        "unknown kind",
        4,
        8,
    );
    let shown = d.to_string();
    assert!(
        shown.starts_with("entries/forward/dpo.toml:4:8: error: unknown kind `methd`"),
        "{shown}"
    );
    assert!(
        shown.contains("  4 | kind = \"methd\"\n    |        ^^^^^^^\n"),
        "{shown}"
    );
    assert!(shown.contains("= hint: did you mean `method`?"), "{shown}");
}

#[test]
fn latex_in_a_basic_string_gets_a_literal_string_hint() {
    let literal = "body = '''\nThe loss is $-\\log\\sigma(\\beta \\Delta)$.\n'''";
    let basic = "body = \"\"\"\nThe loss is $-\\log\\sigma(\\beta \\Delta)$.\n\"\"\"";
    let d = expect_one(literal, basic, "escape", 10, 16);
    assert!(d.hint.unwrap().contains("literal strings"));
}

/// Problems that do not interact, each planted by one replacement: (file, from, to, expected `file:line` and
/// message). Any subset planted at once must be reported exactly — one diagnostic each, none missing, none extra.
#[rustfmt::skip]
const PLANTS: &[(&str, &str, &str, &str)] = &[
    ("dpo", "name = \"Direct Preference Optimization\"", "name = \" \"", "dpo.toml:2:8 empty name"),
    ("dpo", "aliases = [\"DPO\"]", "aliases = [\"DPO\", \"DPO\"]", "dpo.toml:3:19 listed twice"),
    ("dpo", "kind = \"method\"", "kind = \"algorithm\"", "dpo.toml:4:8 unknown kind"),
    ("dpo", "place = \"forward/policy-learning\"", "place = \"nowhere\"", "dpo.toml:5:9 unknown place"),
    ("dpo", "Optimises a policy directly on preference pairs.\n", "   \n", "dpo.toml:6:"),
    ("dpo", "related = [\"rlhf\"]", "related = [\"nope\"]", "dpo.toml:12:12 related id"),
    ("dpo", "tags = [\"offline\"]", "tags = [\"Offline Data\"]", "dpo.toml:13:9 malformed tag"),
    ("dpo", "secondary = [\"ethicality\"]", "secondary = [\"ethics\"]", "dpo.toml:17:14 unknown RICE principle"),
    ("dpo", "title = \"Direct Preference Optimization: Your", "title = \"\" # Your", "dpo.toml:20:9 empty paper title"),
    ("dpo", "[\"Rafael Rafailov\", \"others\"]", "[\"others\", \"Rafael Rafailov\"]", "dpo.toml:21:12 must be the last author"),
    ("dpo", "year = 2023", "year = 3023", "dpo.toml:22:8 year 3023"),
    ("dpo", "arxiv = \"2305.18290\"", "arxiv = \"23-05\"", "dpo.toml:24:9 malformed arXiv"),
    ("dpo", "crate = \"rice-dpo\"", "crate = \"rice-ppo\"", "dpo.toml:27:9 crate `rice-ppo`"),
    ("dpo", "command = \"rice run dpo\"", "command = \"python train.py\"", "dpo.toml:28:11 must be a `rice …` command"),
    ("rlhf", "kind = \"method\"", "kind = \"methd\"", "rlhf.toml:3:8 unknown kind"),
    ("rlhf", "place = \"forward/policy-learning\"", "place = \"nowhere\"", "rlhf.toml:4:9 unknown place"),
    ("rlhf", "year = 2017", "year = 3017", "rlhf.toml:14:8 year 3017"),
    ("rlhf", "arxiv = \"1706.03741\"", "arxiv = \"1706\"", "rlhf.toml:15:9 malformed arXiv"),
    // A third file that does not parse: its error is reported and does not stop the checks of the others.
    ("ipo", "kind = \"method\"", "kin = \"method\"", "ipo.toml:3:1 unknown field `kin`"),
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    #[test]
    fn every_planted_problem_is_reported(
        chosen in proptest::sample::subsequence((0..PLANTS.len()).collect::<Vec<_>>(), 1..=PLANTS.len())
    ) {
        let mut dpo = DPO.to_owned();
        let mut rlhf = RLHF.to_owned();
        let mut ipo = None;
        for &i in &chosen {
            let (file, from, to, _) = PLANTS[i];
            let text = match file {
                "dpo" => &mut dpo,
                "rlhf" => &mut rlhf,
                _ => ipo.insert(RLHF.replacen("id = \"rlhf\"", "id = \"ipo\"", 1)),
            };
            proptest::prop_assert!(text.contains(from), "{from:?}");
            *text = text.replacen(from, to, 1);
        }
        let mut entries = vec![file("entries/forward/dpo.toml", &dpo), file("entries/forward/rlhf.toml", &rlhf)];
        entries.extend(ipo.map(|text| file("entries/forward/ipo.toml", &text)));
        let diagnostics = Catalog::from_files(&file("taxonomy.toml", TAXONOMY), &entries, CRATES)
            .expect_err("planted problems are found")
            .0;
        let reported: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{}:{}:{} {}", d.file, d.line, d.column, d.message))
            .collect();
        proptest::prop_assert_eq!(reported.len(), chosen.len(), "{:#?}", reported);
        for &i in &chosen {
            let (place, message) = PLANTS[i].3.split_once(' ').unwrap_or((PLANTS[i].3, ""));
            proptest::prop_assert!(
                reported.iter().any(|r| r.contains(place) && r.contains(message)),
                "missing {:?} in {reported:#?}", PLANTS[i].3
            );
        }
    }
}
