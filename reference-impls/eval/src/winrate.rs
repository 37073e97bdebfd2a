//! Pairwise win rates with a percentile-bootstrap confidence interval.
//!
//! Each prompt gets one verdict from the candidate's side: a win scores 1, a tie ½, a loss 0, and the win rate is
//! the mean score,
//! $$\text{rate} = \frac{W + T/2}{W + T + L},$$
//! so 0.5 means "no better, no worse". The decisive rate $W / (W + L)$ leaves the ties out. Verdicts a judge gave
//! in a form we could not read are counted as *unparsed* and left out of both.
//!
//! The interval is the percentile bootstrap (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13):
//! resample the prompts with replacement $B$ times, compute the rate of each resample, and take the
//! $\alpha/2$ and $1 - \alpha/2$ quantiles of those $B$ rates. Prompts are the unit resampled, because they are
//! what varies between one evaluation and the next.

use std::cmp::Ordering;

use rice_lm::rng::Rng;
use serde::{Deserialize, Serialize};

/// One pairwise judgment, from the candidate's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Win,
    Tie,
    Loss,
}

impl Verdict {
    /// 1 for a win, ½ for a tie, 0 for a loss.
    pub fn score(self) -> f64 {
        match self {
            Verdict::Win => 1.0,
            Verdict::Tie => 0.5,
            Verdict::Loss => 0.0,
        }
    }

    /// The verdict for a candidate that compares to the baseline as `ordering`.
    pub fn from_ordering(ordering: Ordering) -> Verdict {
        match ordering {
            Ordering::Greater => Verdict::Win,
            Ordering::Equal => Verdict::Tie,
            Ordering::Less => Verdict::Loss,
        }
    }

    /// Higher score wins; equal scores (or a NaN) tie.
    pub fn from_scores(candidate: f64, baseline: f64) -> Verdict {
        Verdict::from_ordering(candidate.partial_cmp(&baseline).unwrap_or(Ordering::Equal))
    }
}

/// A confidence interval for the win rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
    /// Coverage asked for, e.g. 0.95.
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
}

/// Wins, ties and losses of a candidate over a baseline, the rate and its interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    pub wins: usize,
    pub ties: usize,
    pub losses: usize,
    /// Judgments that could not be read (an LLM judge's answer without a verdict); not in the rate.
    pub unparsed: usize,
    /// (wins + ties / 2) / (wins + ties + losses); 0.5 when nothing was judged.
    pub rate: f64,
    /// wins / (wins + losses): the rate among prompts where the judge saw a difference.
    pub decisive_rate: Option<f64>,
    pub interval: Interval,
}

impl WinRate {
    /// Counts `verdicts` (`None`: unparsed) and bootstraps a `level` interval from `resamples` resamples drawn
    /// with `seed`.
    pub fn new(verdicts: &[Option<Verdict>], resamples: usize, level: f64, seed: u64) -> WinRate {
        let judged: Vec<Verdict> = verdicts.iter().flatten().copied().collect();
        let count = |v: Verdict| judged.iter().filter(|&&j| j == v).count();
        let (wins, ties, losses) = (
            count(Verdict::Win),
            count(Verdict::Tie),
            count(Verdict::Loss),
        );
        let scores: Vec<f64> = judged.iter().map(|v| v.score()).collect();
        WinRate {
            wins,
            ties,
            losses,
            unparsed: verdicts.len() - judged.len(),
            rate: mean(&scores).unwrap_or(0.5),
            decisive_rate: (wins + losses > 0).then(|| wins as f64 / (wins + losses) as f64),
            interval: bootstrap_interval(&scores, resamples, level, seed),
        }
    }

    /// Prompts with a verdict.
    pub fn judged(&self) -> usize {
        self.wins + self.ties + self.losses
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The percentile-bootstrap `level` interval of the mean of `scores`: `resamples` resamples of the same size, drawn
/// with replacement from a SplitMix64 stream seeded with `seed`. No scores: the whole range [0, 1].
pub fn bootstrap_interval(scores: &[f64], resamples: usize, level: f64, seed: u64) -> Interval {
    let n = scores.len();
    let (lower, upper) = if n == 0 || resamples == 0 {
        (0.0, 1.0)
    } else {
        let mut rng = Rng::new(seed);
        let mut means: Vec<f64> = (0..resamples)
            .map(|_| (0..n).map(|_| scores[rng.below(n)]).sum::<f64>() / n as f64)
            .collect();
        means.sort_by(f64::total_cmp);
        let alpha = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
        (quantile(&means, alpha), quantile(&means, 1.0 - alpha))
    };
    Interval {
        lower,
        upper,
        level,
        resamples,
        seed,
    }
}

/// The `q` quantile of sorted, non-empty `xs`, interpolating linearly between neighbours (Hyndman & Fan type 7, as
/// numpy's default).
fn quantile(xs: &[f64], q: f64) -> f64 {
    let h = (xs.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    xs[lo] + (h - lo as f64) * (xs[hi] - xs[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_count_half_and_unparsed_count_nothing() {
        let v = [
            Some(Verdict::Win),
            Some(Verdict::Win),
            Some(Verdict::Tie),
            Some(Verdict::Loss),
            None,
        ];
        let w = WinRate::new(&v, 100, 0.95, 0);
        assert_eq!((w.wins, w.ties, w.losses, w.unparsed), (2, 1, 1, 1));
        // (2 + 0.5) / 4
        assert!((w.rate - 0.625).abs() < 1e-12);
        assert_eq!(w.decisive_rate, Some(2.0 / 3.0));
        assert!(w.interval.lower <= w.rate && w.rate <= w.interval.upper);
    }

    #[test]
    fn quantile_interpolates() {
        let xs = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.0), 0.0);
        assert_eq!(quantile(&xs, 1.0), 4.0);
        assert!((quantile(&xs, 0.125) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn constant_scores_give_a_point_interval() {
        let i = bootstrap_interval(&[1.0; 10], 50, 0.95, 3);
        assert_eq!((i.lower, i.upper), (1.0, 1.0));
    }
}
