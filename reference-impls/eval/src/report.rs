//! What an evaluation found, for people (a terminal table, Markdown) and for programs (JSON, CSV). Files are written
//! atomically: a reader never sees half of one.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::arena::{ArenaReport, ArenaRow};
use crate::judge::Judgment;
use crate::winrate::WinRate;

/// A win-rate evaluation: who was compared, by whom, the counts, the rate, and every judgment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinRateReport {
    pub candidate: String,
    pub baseline: String,
    pub judge: String,
    pub prompts: usize,
    pub win_rate: WinRate,
    pub judgments: Vec<Judgment>,
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn share(count: usize, total: usize) -> String {
    pct(count as f64 / total.max(1) as f64)
}

impl ArenaReport {
    /// A plain-text table for a terminal.
    pub fn table(&self) -> String {
        let s = &self.stats;
        let o = &s.outcomes;
        let t = &s.transitions;
        let n = s.prompts;
        let mut out = format!(
            "arena: {n} prompts; red (baseline) {}, blue (candidate) {}\n\
             reward: {}; cost: {} (cost > 0 unsafe)\n\n",
            self.red, self.blue, self.reward_source, self.cost_source
        );
        out += &format!(
            "{:<6} {:>12} {:>12} {:>10}\n",
            "model", "mean reward", "mean cost", "safe"
        );
        for (name, m) in [("red", &s.red), ("blue", &s.blue)] {
            out += &format!(
                "{name:<6} {:>12.4} {:>12.4} {:>10}\n",
                m.reward,
                m.cost,
                pct(m.safe_rate)
            );
        }
        out += &format!(
            "\nblue against red  {:>16} {:>16}\n",
            "blue safe", "blue unsafe"
        );
        for (name, safe, unsafe_) in [
            ("better reward", o.better_safe, o.better_unsafe),
            ("equal reward", o.tie_safe, o.tie_unsafe),
            ("worse reward", o.worse_safe, o.worse_unsafe),
        ] {
            out += &format!(
                "{name:<17} {:>16} {:>16}\n",
                format!("{safe} ({})", share(safe, n)),
                format!("{unsafe_} ({})", share(unsafe_, n))
            );
        }
        out += &format!(
            "\nsafety red → blue {:>16} {:>16}\n",
            "blue safe", "blue unsafe"
        );
        for (name, safe, unsafe_) in [
            ("red safe", t.red_safe_blue_safe, t.red_safe_blue_unsafe),
            (
                "red unsafe",
                t.red_unsafe_blue_safe,
                t.red_unsafe_blue_unsafe,
            ),
        ] {
            out += &format!(
                "{name:<17} {:>16} {:>16}\n",
                format!("{safe} ({})", share(safe, n)),
                format!("{unsafe_} ({})", share(unsafe_, n))
            );
        }
        out
    }

    /// The same as Markdown.
    pub fn markdown(&self) -> String {
        let s = &self.stats;
        let o = &s.outcomes;
        let t = &s.transitions;
        let n = s.prompts;
        let cell = |c: usize| format!("{c} ({})", share(c, n));
        format!(
            "# Reward/cost arena\n\n\
             {n} prompts. Red (baseline): `{}`. Blue (candidate): `{}`.\n\
             Reward: {}. Cost: {} (Safe RLHF's sign: cost > 0 is unsafe, cost ≤ 0 safe).\n\n\
             | model | mean reward | mean cost | safe |\n|---|---:|---:|---:|\n\
             | red | {:.4} | {:.4} | {} |\n| blue | {:.4} | {:.4} | {} |\n\n\
             ## Blue against red\n\n\
             Better means a higher reward than red's answer to the same prompt; equal rewards are counted on their \
             own. Safe is blue's answer's safety.\n\n\
             | | blue safe | blue unsafe |\n|---|---:|---:|\n\
             | better reward | {} | {} |\n| equal reward | {} | {} |\n| worse reward | {} | {} |\n\n\
             ## Safety transitions (red → blue)\n\n\
             | | blue safe | blue unsafe |\n|---|---:|---:|\n\
             | red safe | {} | {} |\n| red unsafe | {} | {} |\n",
            self.red,
            self.blue,
            self.reward_source,
            self.cost_source,
            s.red.reward,
            s.red.cost,
            pct(s.red.safe_rate),
            s.blue.reward,
            s.blue.cost,
            pct(s.blue.safe_rate),
            cell(o.better_safe),
            cell(o.better_unsafe),
            cell(o.tie_safe),
            cell(o.tie_unsafe),
            cell(o.worse_safe),
            cell(o.worse_unsafe),
            cell(t.red_safe_blue_safe),
            cell(t.red_safe_blue_unsafe),
            cell(t.red_unsafe_blue_safe),
            cell(t.red_unsafe_blue_unsafe),
        )
    }
}

impl WinRateReport {
    /// A plain-text summary for a terminal.
    pub fn table(&self) -> String {
        let w = &self.win_rate;
        let i = &w.interval;
        let mut out = format!(
            "win rate of {} over {} ({} prompts, judge: {})\n",
            self.candidate, self.baseline, self.prompts, self.judge
        );
        out += &format!(
            "  wins {}, ties {}, losses {}{}\n",
            w.wins,
            w.ties,
            w.losses,
            if w.unparsed > 0 {
                format!(", unparsed {}", w.unparsed)
            } else {
                String::new()
            }
        );
        out += &format!(
            "  rate {:.3} (ties count ½), {:.0}% CI [{:.3}, {:.3}] ({} bootstrap resamples, seed {})\n",
            w.rate,
            100.0 * i.level,
            i.lower,
            i.upper,
            i.resamples,
            i.seed
        );
        if let Some(d) = w.decisive_rate {
            out += &format!("  decisive rate {d:.3} (wins among prompts that were not ties)\n");
        }
        out
    }

    /// The same as Markdown.
    pub fn markdown(&self) -> String {
        let w = &self.win_rate;
        let i = &w.interval;
        format!(
            "# Win rate\n\n\
             Candidate `{}` against baseline `{}` on {} prompts, judged by {}.\n\n\
             | wins | ties | losses | unparsed | win rate | {:.0}% CI | decisive rate |\n\
             |---:|---:|---:|---:|---:|---|---:|\n\
             | {} | {} | {} | {} | {:.3} | [{:.3}, {:.3}] | {} |\n\n\
             Win rate = (wins + ties/2) / (wins + ties + losses); the decisive rate is wins / (wins + losses); \
             unparsed judgments are left out of both. The interval is a percentile bootstrap over prompts ({} \
             resamples, seed {}).\n",
            self.candidate,
            self.baseline,
            self.prompts,
            self.judge,
            100.0 * i.level,
            w.wins,
            w.ties,
            w.losses,
            w.unparsed,
            w.rate,
            i.lower,
            i.upper,
            w.decisive_rate
                .map_or("–".to_owned(), |d| format!("{d:.3}")),
            i.resamples,
            i.seed
        )
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), EvalError> {
    rice_lm::checkpoint::write_atomic(path, bytes).map_err(|e| EvalError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn json<T: Serialize>(path: &Path, value: &T) -> Result<(), EvalError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| EvalError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    write(path, text.as_bytes())
}

/// The arena's rows as CSV, one per prompt (a header, then the [`ArenaRow`] fields).
pub fn arena_csv(rows: &[ArenaRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Writes `arena.json`, `arena.md` and `arena.csv` into `dir` (created if needed).
pub fn write_arena(dir: &Path, report: &ArenaReport, rows: &[ArenaRow]) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    json(&dir.join("arena.json"), report)?;
    write(&dir.join("arena.md"), report.markdown().as_bytes())?;
    let path = dir.join("arena.csv");
    let bytes = arena_csv(rows).map_err(|e| EvalError::Write {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write(&path, &bytes)
}

/// Writes `winrate.json` and `winrate.md` into `dir` (created if needed).
pub fn write_win_rate(dir: &Path, report: &WinRateReport) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(EvalError::io(dir))?;
    json(&dir.join("winrate.json"), report)?;
    write(&dir.join("winrate.md"), report.markdown().as_bytes())
}
