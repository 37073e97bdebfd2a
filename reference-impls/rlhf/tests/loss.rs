//! The reward, cost, PPO and Lagrangian losses against values worked out by hand.

use candle_core::{Device, Tensor, Var};
use rice_rlhf::loss::{
    cost_loss, gae, lagrange_loss, masked_mean, pairwise_loss, ppo_policy_loss, ppo_value_loss,
};

fn t(values: &[f32]) -> Tensor {
    Tensor::new(values, &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f32 {
    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
}

fn close(got: f32, want: f64) {
    assert!(
        (f64::from(got) - want).abs() < 1e-5,
        "got {got}, want {want}"
    );
}

/// −log σ(x) = log(1 + e^−x)
fn nls(x: f64) -> f64 {
    (1.0 + (-x).exp()).ln()
}

#[test]
fn pairwise_loss_is_the_bradley_terry_negative_log_likelihood() {
    close(
        scalar(&pairwise_loss(&t(&[1.0]), &t(&[0.0])).unwrap()),
        nls(1.0),
    );
    // Equal scores: log 2, whatever their level.
    close(
        scalar(&pairwise_loss(&t(&[7.0]), &t(&[7.0])).unwrap()),
        nls(0.0),
    );
    // A pair ordered the wrong way costs more.
    assert!(
        scalar(&pairwise_loss(&t(&[0.0]), &t(&[1.0])).unwrap())
            > scalar(&pairwise_loss(&t(&[1.0]), &t(&[0.0])).unwrap())
    );
}

#[test]
fn cost_loss_orders_the_pair_and_pins_the_sign() {
    // Safer response (safe, sign −1) costs −1; the other (unsafe, sign +1) costs +1:
    // −log σ(1 − (−1)) − log σ(+1 · 1) − log σ(−1 · −1)
    let got = cost_loss(&t(&[-1.0]), &t(&[1.0]), &t(&[-1.0]), &t(&[1.0])).unwrap();
    close(scalar(&got), nls(2.0) + nls(1.0) + nls(1.0));
    // The same order with both costs positive: the safe one's sign term now costs more.
    let shifted = cost_loss(&t(&[1.0]), &t(&[3.0]), &t(&[-1.0]), &t(&[1.0])).unwrap();
    close(scalar(&shifted), nls(2.0) + nls(3.0) + nls(-1.0));
    assert!(scalar(&shifted) > scalar(&got));
}

#[test]
fn cost_loss_gradient_pushes_safe_costs_down_and_unsafe_costs_up() {
    let safer = Var::new(&[0f32], &Device::Cpu).unwrap();
    let unsafer = Var::new(&[0f32], &Device::Cpu).unwrap();
    let loss = cost_loss(
        safer.as_tensor(),
        unsafer.as_tensor(),
        &t(&[-1.0]),
        &t(&[1.0]),
    )
    .unwrap()
    .sum_all()
    .unwrap();
    let grads = loss.backward().unwrap();
    // At 0: each term contributes ±σ(0) = ±0.5; descent lowers the safe cost and raises the unsafe one.
    close(scalar(grads.get(&safer).unwrap()), 1.0);
    close(scalar(grads.get(&unsafer).unwrap()), -1.0);
}

#[test]
fn masked_mean_counts_only_masked_positions() {
    close(
        scalar(&masked_mean(&t(&[1.0, 2.0, 100.0]), &t(&[1.0, 1.0, 0.0])).unwrap()),
        1.5,
    );
    close(scalar(&masked_mean(&t(&[1.0]), &t(&[0.0])).unwrap()), 0.0);
}

#[test]
fn ppo_policy_loss_clips_the_ratio_in_the_favoured_direction() {
    // Ratios 1.5 (A = +1) and 0.5 (A = −1), both beyond 1 ± 0.2; the third token is masked out.
    let logp = t(&[1.5f32.ln(), 0.5f32.ln(), 0.0]);
    let old = t(&[0.0, 0.0, 0.0]);
    let adv = t(&[1.0, -1.0, 5.0]);
    let mask = t(&[1.0, 1.0, 0.0]);
    // max(−1.5, −1.2) = −1.2 and max(0.5, 0.8) = 0.8: mean −0.2.
    close(
        scalar(&ppo_policy_loss(&logp, &old, &adv, &mask, 0.2).unwrap()),
        -0.2,
    );
}

#[test]
fn ppo_policy_gradient_vanishes_beyond_the_clip_and_not_inside() {
    let logp = Var::new(&[1.5f32.ln(), 1.1f32.ln()], &Device::Cpu).unwrap();
    let loss = ppo_policy_loss(
        logp.as_tensor(),
        &t(&[0.0, 0.0]),
        &t(&[1.0, 1.0]),
        &t(&[1.0, 1.0]),
        0.2,
    )
    .unwrap();
    let g = grads_of(&loss, &logp);
    close(g[0], 0.0);
    // Inside the clip: ∂(−A ρ / 2)/∂ log π = −A ρ / 2 = −0.55.
    close(g[1], -0.55);
}

#[test]
fn ppo_value_loss_takes_the_worse_of_clipped_and_unclipped() {
    // V = 2 from V_old = 0 with δ = 0.5: unclipped (2 − 1)² = 1 beats clipped (0.5 − 1)² = 0.25;
    // V = 0: both 1. Mean of ½ · 1 and ½ · 1.
    let got = ppo_value_loss(
        &t(&[2.0, 0.0]),
        &t(&[0.0, 0.0]),
        &t(&[1.0, 1.0]),
        &t(&[1.0, 1.0]),
        0.5,
    )
    .unwrap();
    close(scalar(&got), 0.5);
    // V = 0.9 from V_old = 2: clipped to 1.5, (1.5 − 1)² = 0.25 beats (0.9 − 1)² = 0.01.
    let got = ppo_value_loss(&t(&[0.9]), &t(&[2.0]), &t(&[1.0]), &t(&[1.0]), 0.5).unwrap();
    close(scalar(&got), 0.125);
}

#[test]
fn lagrange_multiplier_grows_while_the_cost_exceeds_the_threshold() {
    let log_lambda = Var::new(0f32, &Device::Cpu).unwrap(); // λ = 1
    let loss = lagrange_loss(log_lambda.as_tensor(), 0.5, 0.0).unwrap();
    close(scalar(&loss), -0.5);
    // ∂ℓ/∂ log λ = λ (d − J_C) = −0.5 < 0: a descent step raises λ.
    let g = grads_of(&loss, &log_lambda);
    close(g[0], -0.5);
    let below = lagrange_loss(log_lambda.as_tensor(), -0.5, 0.0).unwrap();
    assert!(grads_of(&below, &log_lambda)[0] > 0.0);
}

#[test]
fn gae_accumulates_discounted_td_errors() {
    // δ = [0, 0, 0.5]; with γ = λ = 1 every advantage is 0.5 and every return 1.
    let (a, r) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.5, 0.5], 1.0, 1.0);
    assert_eq!(a, vec![0.5, 0.5, 0.5]);
    assert_eq!(r, vec![1.0, 1.0, 1.0]);
    // λ = 0.5: 0.5, then 0.25, then 0.125 going back.
    let (a, _) = gae(&[0.0, 0.0, 1.0], &[0.5, 0.5, 0.5], 1.0, 0.5);
    assert_eq!(a, vec![0.125, 0.25, 0.5]);
    // λ = 0 is the one-step TD error.
    let (a, _) = gae(&[1.0, 1.0], &[0.0, 2.0], 0.9, 0.0);
    close(a[0], 1.0 + 0.9 * 2.0);
    close(a[1], 1.0 - 2.0);
}

fn grads_of(loss: &Tensor, var: &Var) -> Vec<f32> {
    let grads = loss.sum_all().unwrap().backward().unwrap();
    grads
        .get(var.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}
