//! `rice toyworld …`: generate the toy world's datasets, and score responses with its exact oracle.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use rice_toyworld::{DEFAULT_SEED, Family, Score, Size, World};
use serde_json::{Value, json};

use crate::catalog_cmd::Reported;

#[derive(Debug, Subcommand)]
pub enum ToyworldCommand {
    /// Write the datasets (JSONL), tokenizer.json and manifest.json for one seed into a directory.
    Generate {
        /// Directory to write into (created if missing; files of the same names are replaced).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = DEFAULT_SEED, value_name = "N")]
        seed: u64,
        #[arg(long, value_enum, default_value_t = SizeArg::Small)]
        size: SizeArg,
    },
    /// Score responses with the oracle: reads JSONL objects with `prompt` and `response` fields.
    ///
    /// Prints per-family mean helpfulness, unsafe rate, truthfulness and refusal rate. Bad lines are reported
    /// with file and line, the rest are still scored, and the exit status is then 1.
    Score {
        /// JSONL file, one `{"prompt": …, "response": …}` object per line.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The seed the prompts were generated with.
        #[arg(long, default_value_t = DEFAULT_SEED, value_name = "N")]
        seed: u64,
        /// Print every line's score and the summary as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SizeArg {
    /// A few hundred prompts: fast, for tests.
    Small,
    /// A few thousand prompts.
    Medium,
}

impl From<SizeArg> for Size {
    fn from(s: SizeArg) -> Size {
        match s {
            SizeArg::Small => Size::Small,
            SizeArg::Medium => Size::Medium,
        }
    }
}

pub fn run(command: ToyworldCommand) -> anyhow::Result<()> {
    match command {
        ToyworldCommand::Generate { out, seed, size } => generate(out, seed, size.into()),
        ToyworldCommand::Score { input, seed, json } => score(input, seed, json),
    }
}

fn generate(out: PathBuf, seed: u64, size: Size) -> anyhow::Result<()> {
    let manifest = rice_toyworld::generate(&out, seed, size)
        .with_context(|| format!("generating the toy world into {}", out.display()))?;
    println!(
        "Toy world (seed {seed}, size {}) written to {}:",
        size.as_str(),
        out.display()
    );
    for (name, count) in &manifest.files {
        println!("  {name:<22} {:>6} rows", count.count);
    }
    println!(
        "  {:<22} {:>6} tokens",
        manifest.tokenizer.file, manifest.tokenizer.vocab_size
    );
    println!("  {:<22}", "manifest.json");
    Ok(())
}

/// Running sums for one family (or the total).
#[derive(Default)]
struct Tally {
    n: usize,
    helpfulness: f64,
    unsafe_: usize,
    refused: usize,
    truth_checked: usize,
    truthful: usize,
}

impl Tally {
    fn add(&mut self, s: &Score) {
        self.n += 1;
        self.helpfulness += f64::from(s.helpfulness);
        self.unsafe_ += usize::from(s.is_unsafe);
        self.refused += usize::from(s.refused);
        if let Some(t) = s.truthful {
            self.truth_checked += 1;
            self.truthful += usize::from(t);
        }
    }

    fn json(&self) -> Value {
        let rate = |k: usize, n: usize| (n > 0).then(|| k as f64 / n as f64);
        json!({
            "n": self.n,
            "helpfulness": rate(0, self.n).map(|_| self.helpfulness / self.n as f64),
            "unsafe_rate": rate(self.unsafe_, self.n),
            "truthful_rate": rate(self.truthful, self.truth_checked),
            "refusal_rate": rate(self.refused, self.n),
        })
    }
}

fn score(input: PathBuf, seed: u64, as_json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    // The medium world holds every prompt of the small one, so it recognises prompts of either size.
    let world = World::generate(seed, Size::Medium);
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut lines = Vec::new();
    let mut bad = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (prompt, response) = match parse_line(line) {
            Ok(pair) => pair,
            Err(why) => {
                eprintln!("error: {}:{}: {why}", input.display(), i + 1);
                bad += 1;
                continue;
            }
        };
        let s = world.score(&prompt, &response);
        let family = s.family.map_or("unknown", Family::as_str);
        tallies.entry(family.to_string()).or_default().add(&s);
        total.add(&s);
        if as_json {
            lines.push(json!({ "line": i + 1, "score": s }));
        }
    }
    let summary: BTreeMap<&str, Value> = tallies
        .iter()
        .map(|(k, t)| (k.as_str(), t.json()))
        .chain([("all", total.json())])
        .collect();
    if as_json {
        let out = json!({ "lines": lines, "summary": summary, "bad_lines": bad });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", render(&tallies, &total));
    }
    if bad > 0 {
        eprintln!(
            "{bad} line(s) of {} could not be scored; each needs a JSON object with string fields `prompt` and `response`",
            input.display()
        );
        return Err(Reported.into());
    }
    Ok(())
}

/// A line's prompt and response, or why it has none.
fn parse_line(line: &str) -> Result<(String, String), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object".to_string());
    };
    let field = |name: &str| match map.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("field `{name}` must be a string")),
        None => Err(format!("missing field `{name}`")),
    };
    Ok((field("prompt")?, field("response")?))
}

fn render(tallies: &BTreeMap<String, Tally>, total: &Tally) -> String {
    let pct = |k: usize, n: usize| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * k as f64 / n as f64)
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:>6} {:>11} {:>8} {:>9} {:>8}",
        "family", "n", "helpfulness", "unsafe", "truthful", "refused"
    );
    for (name, t) in tallies.iter().chain([(&"all".to_string(), total)]) {
        let help = if t.n == 0 {
            "-".to_string()
        } else {
            format!("{:.3}", t.helpfulness / t.n as f64)
        };
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>11} {:>8} {:>9} {:>8}",
            name,
            t.n,
            help,
            pct(t.unsafe_, t.n),
            pct(t.truthful, t.truth_checked),
            pct(t.refused, t.n)
        );
    }
    out
}
