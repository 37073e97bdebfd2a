//! Each preference loss against values worked out by hand.
//!
//! The shared pair: policy log-probabilities −10 (chosen) and −12 (rejected), reference −11 and −11, so the chosen
//! response gained one nat against the reference and the rejected one lost one: margin h = 1 − (−1) = 2.

use candle_core::{Device, Tensor, Var};
use rice_dpo::loss::{
    LossConfig, LossKind, PairLogps, cdpo, dpo, hinge, ipo, log_sigmoid, margin, simpo,
};

fn t(values: &[f32]) -> Tensor {
    Tensor::new(values, &Device::Cpu).unwrap()
}

fn value(x: &Tensor) -> f32 {
    x.to_vec1::<f32>().unwrap()[0]
}

fn close(got: f32, want: f64) {
    assert!(
        (f64::from(got) - want).abs() < 1e-5,
        "got {got}, want {want}"
    );
}

fn pair() -> (Tensor, Tensor, Tensor, Tensor) {
    (t(&[-10.0]), t(&[-12.0]), t(&[-11.0]), t(&[-11.0]))
}

#[test]
fn margin_is_the_difference_of_log_ratios() {
    let (c, r, rc, rr) = pair();
    close(value(&margin(&c, &r, &rc, &rr).unwrap()), 2.0);
}

#[test]
fn dpo_is_the_logistic_loss_of_beta_times_the_margin() {
    let (c, r, rc, rr) = pair();
    // −log σ(0.2) = log(1 + e^−0.2)
    close(value(&dpo(&c, &r, &rc, &rr, 0.1).unwrap()), 0.598_138_869);
    // A pair the policy has not moved on sits at log 2.
    close(
        value(&dpo(&rc, &rr, &rc, &rr, 0.1).unwrap()),
        std::f64::consts::LN_2,
    );
}

#[test]
fn cdpo_mixes_in_the_flipped_label() {
    let (c, r, rc, rr) = pair();
    // 0.9 · log(1 + e^−0.2) + 0.1 · log(1 + e^0.2)
    close(
        value(&cdpo(&c, &r, &rc, &rr, 0.1, 0.1).unwrap()),
        0.9 * 0.598_138_869 + 0.1 * 0.798_138_869,
    );
    // ε = 0 is DPO.
    close(
        value(&cdpo(&c, &r, &rc, &rr, 0.1, 0.0).unwrap()),
        0.598_138_869,
    );
}

#[test]
fn cdpo_has_its_minimum_at_a_finite_margin() {
    // d/dz [−(1−ε) log σ(z) − ε log σ(−z)] = σ(z) − (1 − ε): zero at z = log((1−ε)/ε).
    let eps = 0.1f64;
    let best = ((1.0 - eps) / eps).ln() / 0.1; // h at the minimum for β = 0.1
    let zero = t(&[0.0]);
    let loss_at = |h: f64| value(&cdpo(&t(&[h as f32]), &zero, &zero, &zero, 0.1, eps).unwrap());
    assert!(loss_at(best) < loss_at(best - 5.0));
    assert!(loss_at(best) < loss_at(best + 5.0));
}

#[test]
fn ipo_regresses_the_margin_to_one_over_two_beta() {
    let (c, r, rc, rr) = pair();
    // (2 − 1/0.2)² = 9
    close(value(&ipo(&c, &r, &rc, &rr, 0.1).unwrap()), 9.0);
    let zero = t(&[0.0]);
    close(
        value(&ipo(&t(&[5.0]), &zero, &zero, &zero, 0.1).unwrap()),
        0.0,
    );
}

#[test]
fn hinge_is_zero_once_the_margin_reaches_one_over_beta() {
    let (c, r, rc, rr) = pair();
    close(value(&hinge(&c, &r, &rc, &rr, 0.1).unwrap()), 0.8);
    let zero = t(&[0.0]);
    close(
        value(&hinge(&t(&[20.0]), &zero, &zero, &zero, 0.1).unwrap()),
        0.0,
    );
}

#[test]
fn simpo_compares_length_normalised_log_probs_with_a_margin() {
    // β = 2, γ = 0.5, means −1.0 and −1.5: z = 2 · 0.5 − 0.5 = 0.5, loss = log(1 + e^−0.5)
    close(
        value(&simpo(&t(&[-1.0]), &t(&[-1.5]), 2.0, 0.5).unwrap()),
        0.474_076_984,
    );
}

#[test]
fn log_sigmoid_is_finite_far_from_zero() {
    let got = log_sigmoid(&t(&[-100.0, 0.0, 100.0]))
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    close(got[0], -100.0);
    close(got[1], -std::f64::consts::LN_2);
    assert!(got[2] <= 0.0 && got[2] > -1e-6, "{}", got[2]);
}

#[test]
fn dpo_gradient_pushes_chosen_up_and_rejected_down() {
    // ∂ℓ/∂ log π(y_w) = −β σ(−βh) = −0.1 · σ(−0.2); the rejected gradient is its negative.
    let chosen = Var::new(&[-10f32], &Device::Cpu).unwrap();
    let rejected = Var::new(&[-12f32], &Device::Cpu).unwrap();
    let (_, _, rc, rr) = pair();
    let loss = dpo(chosen.as_tensor(), rejected.as_tensor(), &rc, &rr, 0.1)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let sigma = 1.0 / (1.0 + 0.2f64.exp());
    close(value(grads.get(&chosen).unwrap()), -0.1 * sigma);
    close(value(grads.get(&rejected).unwrap()), 0.1 * sigma);
}

#[test]
fn config_dispatches_every_kind_and_reports_implicit_rewards() {
    let (c, r, rc, rr) = pair();
    let logps = PairLogps {
        chosen: c,
        rejected: r,
        ref_chosen: rc,
        ref_rejected: rr,
    };
    let want = [
        (LossKind::Sigmoid, 0.598_138_869),
        (LossKind::Cdpo, 0.9 * 0.598_138_869 + 0.1 * 0.798_138_869),
        (LossKind::Ipo, 9.0),
        (LossKind::Hinge, 0.8),
    ];
    for (kind, loss) in want {
        let out = LossConfig::new(kind).compute(&logps).unwrap();
        close(value(&out.losses), loss);
        close(value(&out.chosen_rewards), 0.1);
        close(value(&out.rejected_rewards), -0.1);
    }
    // SimPO ignores the reference: β = 2, γ = 1 on "means" −10 and −12: z = 2 · 2 − 1 = 3.
    let out = LossConfig::new(LossKind::Simpo).compute(&logps).unwrap();
    close(value(&out.losses), (1.0 + (-3f64).exp()).ln());
    close(value(&out.chosen_rewards), -20.0);
}

#[test]
fn names_round_trip_and_bad_settings_are_named() {
    for (name, kind) in LossKind::ALL {
        assert_eq!(LossKind::by_name(name), Some(kind));
        assert_eq!(kind.name(), name);
    }
    assert_eq!(LossKind::by_name("dpo"), Some(LossKind::Sigmoid));
    assert_eq!(LossKind::by_name("kto"), None);
    let mut cfg = LossConfig::new(LossKind::Cdpo);
    cfg.label_smoothing = 0.7;
    assert!(cfg.validate().unwrap_err().contains("label_smoothing"));
    cfg = LossConfig::new(LossKind::Sigmoid);
    cfg.beta = 0.0;
    assert!(cfg.validate().unwrap_err().contains("beta"));
}

#[test]
fn gradient_is_right_where_every_run_starts() {
    // At the first step the policy is its reference, so h = 0 exactly for every pair:
    // ∂ℓ/∂ log π(y_w) = −β σ(0) = −0.05.
    let chosen = Var::new(&[-11f32], &Device::Cpu).unwrap();
    let (_, _, rc, rr) = pair();
    let loss = dpo(chosen.as_tensor(), &rr, &rc, &rr, 0.1)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    close(value(grads.get(&chosen).unwrap()), -0.05);
}
