//! The datasets the world writes, in the standard formats (TRL, PKU-SafeRLHF, Aligner, Stream Aligner), and
//! the writer that puts them, a tokenizer and a manifest in a directory.
//!
//! Only training prompts feed the training files; held-out prompts appear in `eval.jsonl` alone.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ToyworldError;
use crate::behaviour::Behaviour;
use crate::tokenizer::train_tokenizer;
use crate::world::{Family, Item, Size, Split, World};

/// `{"text"}`: pre-training documents (encyclopedia paragraphs and base-behaviour chats in ChatML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainDoc {
    pub text: String,
}

/// `{"prompt","completion"}`: TRL's prompt-completion format, completions from the aligned behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftExample {
    pub prompt: String,
    pub completion: String,
}

/// `{"prompt","chosen","rejected"}`: TRL's explicit-prompt preference format; the oracle prefers `chosen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// PKU-SafeRLHF: separate helpfulness (`better`) and harmlessness (`safer`) labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafeRlhfPair {
    pub prompt: String,
    pub response_0: String,
    pub response_1: String,
    pub better_response_id: u8,
    pub safer_response_id: u8,
    pub is_response_0_safe: bool,
    pub is_response_1_safe: bool,
}

/// Aligner: `answer` from the base behaviour, `correction` from the aligned one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignerTriple {
    pub question: String,
    pub answer: String,
    pub correction: String,
}

/// Stream Aligner: `prefix` = accepted (ideal) sentences so far, `last` = the base model's next sentence,
/// `correction` = the ideal sentence in its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamAlignerTuple {
    pub question: String,
    pub prefix: String,
    pub last: String,
    pub correction: String,
}

/// Learning from language feedback: a base-behaviour `response`, the oracle's `critique` of it, and the
/// `refinement` the critique asks for (the ideal answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlfExample {
    pub prompt: String,
    pub response: String,
    pub critique: String,
    pub refinement: String,
}

/// `{"id","family","prompt"}`: a held-out prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalPrompt {
    pub id: String,
    pub family: Family,
    pub prompt: String,
}

/// A row and the family it came from (`None` for encyclopedia text).
#[derive(Debug, Clone, PartialEq)]
pub struct Row<T> {
    pub family: Option<Family>,
    pub row: T,
}

/// Every dataset of a world, in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Datasets {
    pub pretrain: Vec<Row<PretrainDoc>>,
    pub sft: Vec<Row<SftExample>>,
    pub preference: Vec<Row<PreferencePair>>,
    pub safe_rlhf: Vec<Row<SafeRlhfPair>>,
    pub aligner: Vec<Row<AlignerTriple>>,
    pub stream_aligner: Vec<Row<StreamAlignerTuple>>,
    pub eval: Vec<Row<EvalPrompt>>,
    /// Critiques of the Aligner triples' answers (no draws of their own: every other dataset is unchanged by it).
    pub llf: Vec<Row<LlfExample>>,
}

/// The file names, in the order they are written.
pub const FILES: [&str; 8] = [
    "pretrain.jsonl",
    "sft.jsonl",
    "preference.jsonl",
    "safe_rlhf.jsonl",
    "aligner.jsonl",
    "stream_aligner.jsonl",
    "eval.jsonl",
    "llf.jsonl",
];

/// Base-behaviour samples per training prompt in the pre-training corpus.
const PRETRAIN_SAMPLES: usize = 2;

/// A prompt and response in ChatML, the template the special tokens are for.
pub fn chatml(prompt: &str, response: &str) -> String {
    format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>")
}

fn row<T>(item: &Item, row: T) -> Row<T> {
    Row {
        family: Some(item.family),
        row,
    }
}

impl Datasets {
    /// Builds every dataset from the world's training prompts (and `eval` from its held-out ones).
    pub fn build(world: &World) -> Datasets {
        let base = Behaviour::base();
        let aligned = Behaviour::aligned();
        let mut rng = ChaCha8Rng::seed_from_u64(world.seed);
        rng.set_stream(50);
        let train: Vec<&Item> = world.items_in(Split::Train).collect();

        let mut pretrain: Vec<Row<PretrainDoc>> = world
            .facts
            .encyclopedia()
            .into_iter()
            .map(|text| Row {
                family: None,
                row: PretrainDoc { text },
            })
            .collect();
        for item in &train {
            for _ in 0..PRETRAIN_SAMPLES {
                let r = base.respond(world, item, &mut rng).text();
                pretrain.push(row(
                    item,
                    PretrainDoc {
                        text: chatml(&item.prompt, &r),
                    },
                ));
            }
        }

        let sft = train
            .iter()
            .map(|item| {
                row(
                    item,
                    SftExample {
                        prompt: item.prompt.clone(),
                        completion: world.ideal(item),
                    },
                )
            })
            .collect();

        // Graded difficulty: the rejected side comes from base, or from a mixture closer to aligned.
        let mut preference = Vec::new();
        for item in &train {
            let chosen = world.ideal(item);
            let chosen_score = world.score(&item.prompt, &chosen);
            let t = [0.0, 0.4, 0.7][rng.random_range(0..3u32) as usize];
            let rejecter = Behaviour::mixture(&base, &aligned, t);
            for _ in 0..8 {
                let rejected = rejecter.respond(world, item, &mut rng).text();
                let s = world.score(&item.prompt, &rejected);
                if chosen_score.preference(&s).is_gt() {
                    preference.push(row(
                        item,
                        PreferencePair {
                            prompt: item.prompt.clone(),
                            chosen: chosen.clone(),
                            rejected,
                        },
                    ));
                    break;
                }
            }
        }

        let mut safe_rlhf = Vec::new();
        let pool = [
            base,
            Behaviour::mixture(&base, &aligned, 0.5),
            aligned,
            Behaviour::over_cautious(),
        ];
        for item in &train {
            for _ in 0..8 {
                let a = pool[rng.random_range(0..4u32) as usize].respond(world, item, &mut rng);
                let b = pool[rng.random_range(0..4u32) as usize].respond(world, item, &mut rng);
                let (r0, r1) = (a.text(), b.text());
                if r0 == r1 {
                    continue;
                }
                let (s0, s1) = (
                    world.score(&item.prompt, &r0),
                    world.score(&item.prompt, &r1),
                );
                // `better` is helpfulness alone (ties to the safer one); `safer` is the lower cost (ties to
                // the more helpful one): PKU-SafeRLHF's two separate axes.
                let better = if s1.helpfulness > s0.helpfulness
                    || (s1.helpfulness == s0.helpfulness && s1.cost < s0.cost)
                {
                    1
                } else {
                    0
                };
                let safer = if s1.cost < s0.cost
                    || (s1.cost == s0.cost && s1.helpfulness > s0.helpfulness)
                {
                    1
                } else {
                    0
                };
                safe_rlhf.push(row(
                    item,
                    SafeRlhfPair {
                        prompt: item.prompt.clone(),
                        response_0: r0,
                        response_1: r1,
                        better_response_id: better,
                        safer_response_id: safer,
                        is_response_0_safe: s0.is_safe(),
                        is_response_1_safe: s1.is_safe(),
                    },
                ));
                break;
            }
        }

        let mut aligner = Vec::new();
        let mut stream_aligner = Vec::new();
        for item in &train {
            let ideal = world.ideal_sentences(item);
            let answer = base.respond(world, item, &mut rng);
            aligner.push(row(
                item,
                AlignerTriple {
                    question: item.prompt.clone(),
                    answer: answer.text(),
                    correction: ideal.join(" "),
                },
            ));
            // Walk the base answer: a sentence standing in for ideal sentence j is corrected to it after the
            // ideal prefix 0..j; an added sentence is corrected to the next ideal sentence still due.
            let mut accepted = 0;
            for s in &answer.sentences {
                let at = s.ideal_index.unwrap_or(accepted);
                if at >= ideal.len() {
                    continue;
                }
                stream_aligner.push(row(
                    item,
                    StreamAlignerTuple {
                        question: item.prompt.clone(),
                        prefix: ideal[..at].join(" "),
                        last: s.text.clone(),
                        correction: ideal[at].clone(),
                    },
                ));
                if s.ideal_index.is_some() {
                    accepted = at + 1;
                }
            }
        }

        let eval = world
            .items_in(Split::Eval)
            .map(|item| {
                row(
                    item,
                    EvalPrompt {
                        id: item.id.clone(),
                        family: item.family,
                        prompt: item.prompt.clone(),
                    },
                )
            })
            .collect();

        let llf = aligner
            .iter()
            .map(|r: &Row<AlignerTriple>| Row {
                family: r.family,
                row: LlfExample {
                    prompt: r.row.question.clone(),
                    response: r.row.answer.clone(),
                    critique: world.critique(&r.row.question, &r.row.answer).text,
                    refinement: r.row.correction.clone(),
                },
            })
            .collect();

        Datasets {
            pretrain,
            sft,
            preference,
            safe_rlhf,
            aligner,
            stream_aligner,
            eval,
            llf,
        }
    }

    /// The texts the tokenizer learns from: pre-training documents and SFT prompts and completions.
    pub fn tokenizer_corpus(&self) -> impl Iterator<Item = String> + Send + '_ {
        self.pretrain.iter().map(|r| r.row.text.clone()).chain(
            self.sft
                .iter()
                .map(|r| chatml(&r.row.prompt, &r.row.completion)),
        )
    }
}

/// Rows written to one file, in total and per family (`encyclopedia` for text without a family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileCount {
    pub count: usize,
    pub families: BTreeMap<String, usize>,
}

/// `manifest.json`: what was generated, from which seed, and how much of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub size: Size,
    /// Prompts per family and split.
    pub prompts: BTreeMap<String, BTreeMap<String, usize>>,
    /// The base behaviour's defect rates, which the pre-training corpus and Aligner answers follow.
    pub base_behaviour: Behaviour,
    pub files: BTreeMap<String, FileCount>,
    pub tokenizer: TokenizerInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    pub file: String,
    pub vocab_size: usize,
    pub special_tokens: Vec<String>,
}

/// Vocabulary budget of the tokenizer for each size.
fn vocab_size(size: Size) -> usize {
    match size {
        Size::Small => 1500,
        Size::Medium => 2048,
    }
}

/// Generates the world for `seed` and `size` and writes every dataset, `tokenizer.json` and `manifest.json`
/// into `out` (created if missing; existing files of the same names are replaced).
pub fn generate(out: &Path, seed: u64, size: Size) -> Result<Manifest, ToyworldError> {
    let world = World::generate(seed, size);
    let data = Datasets::build(&world);
    fs::create_dir_all(out).map_err(|e| io_error(out, e))?;

    let mut files = BTreeMap::new();
    let counts = [
        write_jsonl(&out.join(FILES[0]), &data.pretrain)?,
        write_jsonl(&out.join(FILES[1]), &data.sft)?,
        write_jsonl(&out.join(FILES[2]), &data.preference)?,
        write_jsonl(&out.join(FILES[3]), &data.safe_rlhf)?,
        write_jsonl(&out.join(FILES[4]), &data.aligner)?,
        write_jsonl(&out.join(FILES[5]), &data.stream_aligner)?,
        write_jsonl(&out.join(FILES[6]), &data.eval)?,
        write_jsonl(&out.join(FILES[7]), &data.llf)?,
    ];
    for (name, count) in FILES.iter().zip(counts) {
        files.insert(name.to_string(), count);
    }

    let tokenizer = train_tokenizer(data.tokenizer_corpus(), vocab_size(size))?;
    let tok_path = out.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| ToyworldError::Tokenizer(format!("saving {}: {e}", tok_path.display())))?;

    let mut prompts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for item in &world.items {
        let split = match item.split {
            Split::Train => "train",
            Split::Eval => "eval",
        };
        *prompts
            .entry(item.family.to_string())
            .or_default()
            .entry(split.to_string())
            .or_default() += 1;
    }
    let manifest = Manifest {
        seed,
        size,
        prompts,
        base_behaviour: Behaviour::base(),
        files,
        tokenizer: TokenizerInfo {
            file: "tokenizer.json".to_string(),
            vocab_size: tokenizer.get_vocab_size(true),
            special_tokens: crate::tokenizer::SPECIAL_TOKENS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    let path = out.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).map_err(ToyworldError::Json)?;
    fs::write(&path, json + "\n").map_err(|e| io_error(&path, e))?;
    Ok(manifest)
}

/// Writes one JSON object per line and counts the rows per family.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[Row<T>]) -> Result<FileCount, ToyworldError> {
    let file = File::create(path).map_err(|e| io_error(path, e))?;
    let mut w = BufWriter::new(file);
    let mut families = BTreeMap::new();
    for r in rows {
        serde_json::to_writer(&mut w, &r.row).map_err(ToyworldError::Json)?;
        w.write_all(b"\n").map_err(|e| io_error(path, e))?;
        let family = r.family.map_or("encyclopedia", Family::as_str);
        *families.entry(family.to_string()).or_default() += 1;
    }
    w.flush().map_err(|e| io_error(path, e))?;
    Ok(FileCount {
        count: rows.len(),
        families,
    })
}

fn io_error(path: &Path, source: std::io::Error) -> ToyworldError {
    ToyworldError::Io {
        path: PathBuf::from(path),
        source,
    }
}
