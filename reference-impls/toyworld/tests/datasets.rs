//! The writers: valid JSON in every format, deterministic output, held-out prompts kept out of training files,
//! and a tokenizer that round-trips the corpus.

use std::collections::HashSet;
use std::fs;

use rice_toyworld::{Datasets, FILES, Size, Split, Tokenizer, World, generate};
use serde_json::Value;

const KEYS: [(&str, &[&str]); 8] = [
    ("pretrain.jsonl", &["text"]),
    ("sft.jsonl", &["prompt", "completion"]),
    ("preference.jsonl", &["prompt", "chosen", "rejected"]),
    (
        "safe_rlhf.jsonl",
        &[
            "prompt",
            "response_0",
            "response_1",
            "better_response_id",
            "safer_response_id",
            "is_response_0_safe",
            "is_response_1_safe",
        ],
    ),
    ("aligner.jsonl", &["question", "answer", "correction"]),
    (
        "stream_aligner.jsonl",
        &["question", "prefix", "last", "correction"],
    ),
    ("eval.jsonl", &["id", "family", "prompt"]),
    (
        "llf.jsonl",
        &["prompt", "response", "critique", "refinement"],
    ),
];

#[test]
fn writers_produce_valid_jsonl_in_every_format_and_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate(dir.path(), 5, Size::Small).unwrap();
    for (file, keys) in KEYS {
        let text = fs::read_to_string(dir.path().join(file)).unwrap();
        let mut n = 0;
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().unwrap();
            let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
            let mut want = keys.to_vec();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{file}");
            n += 1;
        }
        assert!(n >= 50, "{file} has only {n} rows");
        assert_eq!(manifest.files[file].count, n, "{file}");
        assert_eq!(manifest.files[file].families.values().sum::<usize>(), n);
    }
    let m: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["seed"], 5);
    assert_eq!(m["size"], "small");
    assert_eq!(FILES.len(), KEYS.len());
}

#[test]
fn generation_is_deterministic_for_a_seed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), 8, Size::Small).unwrap();
    generate(b.path(), 8, Size::Small).unwrap();
    for file in FILES.iter().chain(&["manifest.json", "tokenizer.json"]) {
        let x = fs::read(a.path().join(file)).unwrap();
        let y = fs::read(b.path().join(file)).unwrap();
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
}

#[test]
fn held_out_prompts_never_occur_in_training_files() {
    for seed in [1, 2, 3] {
        let world = World::generate(seed, Size::Medium);
        let data = Datasets::build(&world);
        let eval: Vec<&str> = world
            .items_in(Split::Eval)
            .map(|i| i.prompt.as_str())
            .collect();
        assert!(eval.len() > 300);
        let train: HashSet<&str> = world
            .items_in(Split::Train)
            .map(|i| i.prompt.as_str())
            .collect();
        let mut texts: Vec<String> = data.pretrain.iter().map(|r| r.row.text.clone()).collect();
        texts.extend(data.sft.iter().map(|r| r.row.prompt.clone()));
        texts.extend(data.preference.iter().map(|r| r.row.prompt.clone()));
        texts.extend(data.safe_rlhf.iter().map(|r| r.row.prompt.clone()));
        texts.extend(data.aligner.iter().map(|r| r.row.question.clone()));
        texts.extend(data.stream_aligner.iter().map(|r| r.row.question.clone()));
        texts.extend(data.llf.iter().map(|r| r.row.prompt.clone()));
        let corpus = texts.join("\n");
        for p in &eval {
            assert!(!train.contains(p));
            assert!(
                !corpus.contains(p),
                "seed {seed}: held-out prompt in training data: {p}"
            );
        }
    }
}

#[test]
fn the_tokenizer_round_trips_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = generate(dir.path(), 6, Size::Small).unwrap();
    let v = manifest.tokenizer.vocab_size;
    assert!((1000..=2000).contains(&v), "vocab {v}");
    let tok = Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    for special in rice_toyworld::SPECIAL_TOKENS {
        assert!(tok.token_to_id(special).is_some(), "{special}");
    }
    let data = Datasets::build(&World::generate(6, Size::Small));
    for text in data
        .tokenizer_corpus()
        .chain(["Ünïcode ✓ and  double  spaces\n".to_string()])
    {
        let enc = tok.encode(text.as_str(), false).unwrap();
        let back = tok.decode(enc.get_ids(), false).unwrap();
        assert_eq!(back, text);
    }
    // The chat markers are single tokens.
    let enc = tok.encode("<|im_start|>user\nhi<|im_end|>", false).unwrap();
    assert_eq!(enc.get_tokens()[0], "<|im_start|>");
}

#[test]
fn preference_pairs_are_ordered_by_the_oracle() {
    let world = World::generate(10, Size::Small);
    let data = Datasets::build(&world);
    for r in &data.preference {
        let p = &r.row;
        let (c, j) = (
            world.score(&p.prompt, &p.chosen),
            world.score(&p.prompt, &p.rejected),
        );
        assert!(c.preference(&j).is_gt(), "{p:?}");
    }
    for r in &data.safe_rlhf {
        let p = &r.row;
        let s0 = world.score(&p.prompt, &p.response_0);
        assert_eq!(p.is_response_0_safe, s0.is_safe());
    }
    for r in &data.stream_aligner {
        let t = &r.row;
        // The correction is a sentence of the ideal answer that follows the prefix.
        let item = world.find(&t.question).unwrap();
        let ideal = world.ideal_sentences(item);
        let at = ideal.iter().position(|s| *s == t.correction).unwrap();
        assert_eq!(t.prefix, ideal[..at].join(" "));
    }
}
