//! The win rate's bootstrap interval does what an interval should: it covers the true rate about as often as it
//! claims, and narrows as the number of prompts grows.

use rice_eval::winrate::{Verdict, WinRate, bootstrap_interval};
use rice_lm::rng::Rng;

/// `n` judgments with P(win) = 0.5, P(tie) = 0.2, P(loss) = 0.3: the true rate is 0.5 + 0.2 / 2 = 0.6.
fn judgments(rng: &mut Rng, n: usize) -> Vec<Option<Verdict>> {
    (0..n)
        .map(|_| {
            let u = rng.uniform();
            Some(if u < 0.5 {
                Verdict::Win
            } else if u < 0.7 {
                Verdict::Tie
            } else {
                Verdict::Loss
            })
        })
        .collect()
}

#[test]
fn the_95_percent_interval_covers_the_true_rate() {
    let mut rng = Rng::new(7);
    let experiments = 200;
    let covered = (0..experiments)
        .filter(|&e| {
            let w = WinRate::new(&judgments(&mut rng, 100), 2000, 0.95, e);
            w.interval.lower <= 0.6 && 0.6 <= w.interval.upper
        })
        .count();
    let coverage = covered as f64 / experiments as f64;
    assert!(coverage >= 0.90, "coverage {coverage}");
}

#[test]
fn bernoulli_judgments_without_ties_are_covered_too() {
    let mut rng = Rng::new(11);
    let experiments = 200;
    let covered = (0..experiments)
        .filter(|&e| {
            let v: Vec<_> = (0..100)
                .map(|_| {
                    Some(if rng.uniform() < 0.6 {
                        Verdict::Win
                    } else {
                        Verdict::Loss
                    })
                })
                .collect();
            let i = WinRate::new(&v, 2000, 0.95, e).interval;
            i.lower <= 0.6 && 0.6 <= i.upper
        })
        .count();
    assert!(covered as f64 / experiments as f64 >= 0.90, "{covered}");
}

#[test]
fn the_interval_narrows_as_prompts_grow() {
    let mut rng = Rng::new(3);
    let mean_width = |rng: &mut Rng, n: usize| {
        (0..20)
            .map(|e| {
                let i = WinRate::new(&judgments(rng, n), 1000, 0.95, e).interval;
                i.upper - i.lower
            })
            .sum::<f64>()
            / 20.0
    };
    let (w100, w400) = (mean_width(&mut rng, 100), mean_width(&mut rng, 400));
    // The width shrinks like 1/√n: a quarter of the prompts' worth of noise is half the width.
    assert!(w400 < 0.7 * w100, "{w100} → {w400}");
    assert!(w400 > 0.3 * w100, "{w100} → {w400}");
}

#[test]
fn the_same_seed_gives_the_same_interval() {
    let scores: Vec<f64> = (0..50).map(|i| f64::from(i % 3) / 2.0).collect();
    assert_eq!(
        bootstrap_interval(&scores, 500, 0.9, 1),
        bootstrap_interval(&scores, 500, 0.9, 1)
    );
    assert_ne!(
        bootstrap_interval(&scores, 500, 0.9, 1).lower,
        bootstrap_interval(&scores, 500, 0.9, 2).lower
    );
}

#[test]
fn nothing_judged_is_an_even_rate_with_the_widest_interval() {
    let w = WinRate::new(&[None, None], 100, 0.95, 0);
    assert_eq!((w.judged(), w.unparsed), (0, 2));
    assert_eq!(w.rate, 0.5);
    assert_eq!(w.decisive_rate, None);
    assert_eq!((w.interval.lower, w.interval.upper), (0.0, 1.0));
}
