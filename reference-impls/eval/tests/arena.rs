//! The arena's statistics on a five-prompt example worked out by hand, and its CSV.

use rice_eval::arena::{ArenaRow, Outcomes, Transitions, arena_stats, is_safe};
use rice_eval::report::arena_csv;

fn row(red_reward: f64, red_cost: f64, blue_reward: f64, blue_cost: f64) -> ArenaRow {
    ArenaRow {
        prompt: format!("p{red_reward}{blue_reward}"),
        red_answer: "red, with a comma".into(),
        blue_answer: "blue \"quoted\"".into(),
        red_reward,
        blue_reward,
        red_cost,
        blue_cost,
    }
}

/// | # | red r | red c | blue r | blue c | blue vs red   | red → blue      |
/// |---|-------|-------|--------|--------|---------------|-----------------|
/// | 1 | 0.2   | −1    | 0.8    | −1     | better, safe  | safe → safe     |
/// | 2 | 0.5   | −0.5  | 0.9    | 0.5    | better, unsafe| safe → unsafe   |
/// | 3 | 0.6   | 0.25  | 0.1    | 0      | worse, safe   | unsafe → safe   |
/// | 4 | 0.4   | 1     | 0.4    | 0.75   | tie, unsafe   | unsafe → unsafe |
/// | 5 | 0.3   | −1    | 0.0    | 1      | worse, unsafe | safe → unsafe   |
fn five() -> Vec<ArenaRow> {
    vec![
        row(0.2, -1.0, 0.8, -1.0),
        row(0.5, -0.5, 0.9, 0.5),
        row(0.6, 0.25, 0.1, 0.0),
        row(0.4, 1.0, 0.4, 0.75),
        row(0.3, -1.0, 0.0, 1.0),
    ]
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} ≠ {b}");
}

#[test]
fn a_cost_of_zero_is_safe() {
    assert!(is_safe(0.0));
    assert!(is_safe(-1.0));
    assert!(!is_safe(1e-9));
}

#[test]
fn five_rows_by_hand() {
    let s = arena_stats(&five());
    assert_eq!(s.prompts, 5);
    // red: rewards 0.2+0.5+0.6+0.4+0.3 = 2.0, costs −1−0.5+0.25+1−1 = −1.25, safe in rows 1, 2, 5.
    close(s.red.reward, 0.4);
    close(s.red.cost, -0.25);
    close(s.red.safe_rate, 0.6);
    // blue: rewards 0.8+0.9+0.1+0.4+0 = 2.2, costs −1+0.5+0+0.75+1 = 1.25, safe in rows 1, 3.
    close(s.blue.reward, 0.44);
    close(s.blue.cost, 0.25);
    close(s.blue.safe_rate, 0.4);
    assert_eq!(
        s.outcomes,
        Outcomes {
            better_safe: 1,
            better_unsafe: 1,
            worse_safe: 1,
            worse_unsafe: 1,
            tie_safe: 0,
            tie_unsafe: 1,
        }
    );
    assert_eq!(
        s.transitions,
        Transitions {
            red_safe_blue_safe: 1,
            red_safe_blue_unsafe: 2,
            red_unsafe_blue_safe: 1,
            red_unsafe_blue_unsafe: 1,
        }
    );
}

#[test]
fn counts_add_up_to_the_prompts() {
    let mut rows = five();
    rows.extend(five().into_iter().map(|mut r| {
        std::mem::swap(&mut r.red_reward, &mut r.blue_reward);
        std::mem::swap(&mut r.red_cost, &mut r.blue_cost);
        r
    }));
    let s = arena_stats(&rows);
    let t = &s.transitions;
    assert_eq!(s.outcomes.total(), rows.len());
    assert_eq!(
        t.red_safe_blue_safe
            + t.red_safe_blue_unsafe
            + t.red_unsafe_blue_safe
            + t.red_unsafe_blue_unsafe,
        rows.len()
    );
    // Swapping sides turns better into worse and mirrors the transition matrix.
    assert_eq!(s.outcomes.better_safe + s.outcomes.better_unsafe, 4);
    assert_eq!(s.outcomes.worse_safe + s.outcomes.worse_unsafe, 4);
    assert_eq!(t.red_safe_blue_unsafe, t.red_unsafe_blue_safe);
}

#[test]
fn an_empty_arena_is_all_zeros() {
    let s = arena_stats(&[]);
    assert_eq!(s.prompts, 0);
    assert_eq!(s.outcomes.total(), 0);
    assert_eq!(s.red.reward, 0.0);
}

#[test]
fn the_csv_has_a_header_and_one_row_per_prompt() {
    let rows = five();
    let bytes = arena_csv(&rows).unwrap();
    let mut reader = csv::Reader::from_reader(bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "prompt",
            "red_answer",
            "blue_answer",
            "red_reward",
            "blue_reward",
            "red_cost",
            "blue_cost"
        ]
    );
    let back: Vec<ArenaRow> = reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(back, rows);
}
