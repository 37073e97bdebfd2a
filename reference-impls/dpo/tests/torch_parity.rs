#![cfg(feature = "tch")]
//! The preference losses and their gradients against the same formulas written independently with libtorch ops
//! (`torch.nn.functional.logsigmoid`, `relu`, …), in f32: every per-pair loss and the gradient of the mean loss with
//! respect to each of the four inputs must agree to a relative error below 1e-5, measured as
//! `max|candle − torch| / max(max|torch|, 1e-6)`. Run through `scripts/check-torch-parity` (needs libtorch).

use candle_core::{Device, Tensor, Var};
use rice_dpo::loss::{cdpo, dpo, hinge, ipo, log_sigmoid, margin, simpo};
use tch::Kind;

#[path = "../../rlhf/tests/parity/mod.rs"]
mod parity;
use parity::check;

/// Policy and reference log-probabilities (sums) of eight pairs: positive and negative margins, a pair whose margin
/// is large enough (β·h > 1 at β = 0.1) to sit in the hinge's zero region, and large magnitudes.
const CHOSEN: [f32; 8] = [-10.0, -12.5, -3.25, -40.0, -7.75, -25.0, -1.5, -80.0];
const REJECTED: [f32; 8] = [-12.0, -11.0, -30.5, -9.0, -8.25, -24.0, -2.75, -95.5];
const REF_CHOSEN: [f32; 8] = [-11.0, -12.0, -15.0, -35.5, -7.0, -26.5, -1.75, -60.0];
const REF_REJECTED: [f32; 8] = [-11.0, -11.5, -20.0, -10.0, -9.0, -23.0, -2.5, -70.25];

/// Per-token mean log-probabilities, for IPO and SimPO.
const CHOSEN_MEAN: [f32; 8] = [-1.25, -0.5, -2.75, -0.125, -3.5, -1.0, -0.75, -4.25];
const REJECTED_MEAN: [f32; 8] = [-1.5, -0.25, -0.5, -2.0, -3.25, -1.875, -0.625, -1.0];
const REF_CHOSEN_MEAN: [f32; 8] = [-1.0, -0.75, -2.5, -0.5, -3.0, -1.25, -1.0, -4.0];
const REF_REJECTED_MEAN: [f32; 8] = [-1.25, -0.5, -1.0, -1.5, -3.75, -1.5, -0.5, -1.5];

fn var(values: &[f32]) -> Var {
    Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
}

fn leaf(values: &[f32]) -> tch::Tensor {
    tch::Tensor::from_slice(values).set_requires_grad(true)
}

fn to_vec(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).reshape([-1])).unwrap()
}

/// Computes a loss with candle on `Var`s and with libtorch on leaves, then compares the per-element losses and the
/// gradients of their mean with respect to every input. Returns the largest relative error.
fn compare(
    name: &str,
    inputs: &[&[f32]],
    candle: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    torch: impl Fn(&[tch::Tensor]) -> tch::Tensor,
) -> f32 {
    let vars: Vec<Var> = inputs.iter().map(|v| var(v)).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let losses = candle(&tensors).unwrap();
    let grads = losses.mean_all().unwrap().backward().unwrap();

    let leaves: Vec<tch::Tensor> = inputs.iter().map(|v| leaf(v)).collect();
    let want = torch(&leaves);
    assert_eq!(
        want.kind(),
        Kind::Float,
        "{name}: torch computed in {:?}",
        want.kind()
    );
    want.mean(Kind::Float).backward();

    let mut worst = check(
        &format!("{name} loss"),
        &losses.to_vec1::<f32>().unwrap(),
        &to_vec(&want),
    );
    for (i, (v, l)) in vars.iter().zip(&leaves).enumerate() {
        let got = grads
            .get(v.as_tensor())
            .map(|g| g.to_vec1::<f32>().unwrap())
            .unwrap_or_else(|| vec![0.0; inputs[i].len()]);
        worst = worst.max(check(
            &format!("{name} d/d input {i}"),
            &got,
            &to_vec(&l.grad()),
        ));
    }
    worst
}

/// The DPO margin in torch: (π_w − ref_w) − (π_l − ref_l).
fn torch_margin(x: &[tch::Tensor]) -> tch::Tensor {
    (&x[0] - &x[2]) - (&x[1] - &x[3])
}

fn sums() -> [&'static [f32]; 4] {
    [&CHOSEN, &REJECTED, &REF_CHOSEN, &REF_REJECTED]
}

fn means() -> [&'static [f32]; 4] {
    [
        &CHOSEN_MEAN,
        &REJECTED_MEAN,
        &REF_CHOSEN_MEAN,
        &REF_REJECTED_MEAN,
    ]
}

#[test]
fn log_sigmoid_matches_torch() {
    let x: [f32; 12] = [
        -200.0, -80.0, -20.0, -5.5, -1.0, -1e-3, 1e-3, 0.75, 3.0, 17.0, 80.0, 200.0,
    ];
    compare(
        "log_sigmoid",
        &[&x],
        |t| log_sigmoid(&t[0]),
        |t| t[0].log_sigmoid(),
    );
}

#[test]
fn margin_matches_torch() {
    compare(
        "margin",
        &sums(),
        |t| margin(&t[0], &t[1], &t[2], &t[3]),
        torch_margin,
    );
}

#[test]
fn dpo_matches_torch() {
    for beta in [0.1, 0.5, 2.0] {
        compare(
            &format!("dpo β={beta}"),
            &sums(),
            |t| dpo(&t[0], &t[1], &t[2], &t[3], beta),
            |t| -(torch_margin(t) * beta).log_sigmoid(),
        );
    }
}

#[test]
fn cdpo_matches_torch() {
    for (beta, epsilon) in [(0.1, 0.1), (0.5, 0.25), (1.0, 0.0)] {
        compare(
            &format!("cdpo β={beta} ε={epsilon}"),
            &sums(),
            |t| cdpo(&t[0], &t[1], &t[2], &t[3], beta, epsilon),
            |t| {
                let z = torch_margin(t) * beta;
                -(z.log_sigmoid() * (1.0 - epsilon)) - (-z).log_sigmoid() * epsilon
            },
        );
    }
}

#[test]
fn ipo_matches_torch() {
    for beta in [0.1, 0.5, 2.0] {
        compare(
            &format!("ipo β={beta}"),
            &means(),
            |t| ipo(&t[0], &t[1], &t[2], &t[3], beta),
            |t| (torch_margin(t) - 1.0 / (2.0 * beta)).square(),
        );
    }
}

#[test]
fn hinge_matches_torch() {
    for beta in [0.1, 0.25, 1.0] {
        let beta_f32 = beta as f32;
        let zero_region = (0..CHOSEN.len())
            .filter(|&i| {
                let h = (CHOSEN[i] - REF_CHOSEN[i]) - (REJECTED[i] - REF_REJECTED[i]);
                1.0 - beta_f32 * h < 0.0
            })
            .count();
        assert!(
            zero_region > 0 && zero_region < CHOSEN.len(),
            "β={beta}: want pairs on both sides of the hinge, {zero_region} in its zero region"
        );
        compare(
            &format!("hinge β={beta} ({zero_region} pairs in the zero region)"),
            &sums(),
            |t| hinge(&t[0], &t[1], &t[2], &t[3], beta),
            |t| (1f64 - torch_margin(t) * beta).relu(),
        );
    }
}

#[test]
fn simpo_matches_torch() {
    for (beta, gamma) in [(2.0, 1.0), (2.5, 0.5), (10.0, 0.0)] {
        compare(
            &format!("simpo β={beta} γ={gamma}"),
            &[&CHOSEN_MEAN, &REJECTED_MEAN],
            |t| simpo(&t[0], &t[1], beta, gamma),
            |t| -((&t[0] - &t[1]) * beta - gamma).log_sigmoid(),
        );
    }
}

/// At exactly β·h = 0 — every pair on the first step, when the policy starts as the reference and the reference
/// log-probabilities are bit-identical. $\log\sigma$ is smooth there with slope ½, but a form built on `minimum` and
/// `abs` picks up both kinks' subgradients: written as $\min(x, 0) - \log(1 + e^{-|x|})$ with candle's `minimum`
/// (½ at a tie) and `abs` (slope +1 at 0), its gradient at 0 was 1, twice libtorch's.
#[test]
fn dpo_at_zero_margin_matches_torch() {
    let policy = [-10.0, -12.5, -3.25, -40.0];
    let reference = [-11.0, -12.0, -15.0, -35.5];
    compare(
        "log_sigmoid at 0",
        &[&[0.0, -0.0]],
        |t| log_sigmoid(&t[0]),
        |t| t[0].log_sigmoid(),
    );
    compare(
        "dpo, policy = reference",
        &[&policy, &reference, &policy, &reference],
        |t| dpo(&t[0], &t[1], &t[2], &t[3], 0.1),
        |t| -(torch_margin(t) * 0.1).log_sigmoid(),
    );
    compare(
        "cdpo, policy = reference",
        &[&policy, &reference, &policy, &reference],
        |t| cdpo(&t[0], &t[1], &t[2], &t[3], 0.1, 0.1),
        |t| {
            let z = torch_margin(t) * 0.1;
            -(z.log_sigmoid() * 0.9) - (-z).log_sigmoid() * 0.1
        },
    );
    // β(π_w − π_l) − γ = 2·0.5 − 1 = 0 exactly.
    compare(
        "simpo at the target margin",
        &[&[-1.0, -2.25], &[-1.5, -2.75]],
        |t| simpo(&t[0], &t[1], 2.0, 1.0),
        |t| -((&t[0] - &t[1]) * 2.0 - 1.0).log_sigmoid(),
    );
}
