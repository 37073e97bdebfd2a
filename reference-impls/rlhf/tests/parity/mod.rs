//! What both crates' libtorch parity tests share: the tolerance and the comparison.

#![allow(dead_code)]

/// The largest relative error allowed between candle and libtorch, in f32.
pub const TOLERANCE: f32 = 1e-5;

/// `max|got − want| / max(max|want|, 1e-6)`.
pub fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = want.iter().map(|b| b.abs()).fold(0f32, f32::max).max(1e-6);
    diff / scale
}

/// Asserts that `got` (candle) matches `want` (libtorch) within [`TOLERANCE`]; prints and returns the error.
pub fn check(what: &str, got: &[f32], want: &[f32]) -> f32 {
    let err = rel_err(got, want);
    println!("{what}: relative error {err:.3e}");
    assert!(
        err < TOLERANCE,
        "{what}: relative error {err:.3e} ≥ {TOLERANCE:e}\n candle {got:?}\n torch  {want:?}"
    );
    err
}
