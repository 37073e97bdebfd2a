#![cfg(feature = "tch")]
//! The reward-model, cost-model, PPO and Lagrangian losses and their gradients against the same formulas written
//! independently with libtorch ops (as safe-rlhf writes them: `F.logsigmoid`, `torch.clamp`, `torch.maximum`, masked
//! sums), in f32: losses and the gradient with respect to every differentiable input must agree to a relative error
//! below 1e-5, measured as `max|candle − torch| / max(max|torch|, 1e-6)`; GAE is compared by value with the recursion
//! written with torch tensors. Run through `scripts/check-torch-parity` (needs libtorch).

use candle_core::{Device, Tensor, Var};
use rice_rlhf::loss::{
    cost_loss, gae, lagrange_loss, log_sigmoid, masked_mean, pairwise_loss, ppo_policy_loss,
    ppo_value_loss,
};
use tch::Kind;

mod parity;
use parity::check;

/// An input: its values and the shape both libraries see it in.
#[derive(Clone, Copy)]
struct Input<'a> {
    values: &'a [f32],
    shape: &'a [usize],
}

fn flat(values: &[f32]) -> Input<'_> {
    Input { values, shape: &[] }
}

impl Input<'_> {
    fn shape(&self) -> Vec<usize> {
        if self.shape.is_empty() {
            vec![self.values.len()]
        } else {
            self.shape.to_vec()
        }
    }

    fn var(&self) -> Var {
        let t = Tensor::from_slice(self.values, self.shape(), &Device::Cpu).unwrap();
        Var::from_tensor(&t).unwrap()
    }

    fn constant(&self) -> Tensor {
        Tensor::from_slice(self.values, self.shape(), &Device::Cpu).unwrap()
    }

    fn leaf(&self) -> tch::Tensor {
        self.torch().set_requires_grad(true)
    }

    fn torch(&self) -> tch::Tensor {
        let shape: Vec<i64> = self.shape().iter().map(|&d| d as i64).collect();
        tch::Tensor::from_slice(self.values).reshape(shape)
    }
}

fn candle_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn torch_vec(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).reshape([-1])).unwrap()
}

/// Computes a loss with candle on `Var`s and with libtorch on leaves (`consts` are the same constants in both), then
/// compares the losses and the gradients of their sum with respect to every input. Returns the largest relative
/// error.
fn compare(
    name: &str,
    inputs: &[Input],
    consts: &[Input],
    candle: impl Fn(&[Tensor], &[Tensor]) -> candle_core::Result<Tensor>,
    torch: impl Fn(&[tch::Tensor], &[tch::Tensor]) -> tch::Tensor,
) -> f32 {
    let vars: Vec<Var> = inputs.iter().map(Input::var).collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let candle_consts: Vec<Tensor> = consts.iter().map(Input::constant).collect();
    let losses = candle(&tensors, &candle_consts).unwrap();
    let grads = losses.sum_all().unwrap().backward().unwrap();

    let leaves: Vec<tch::Tensor> = inputs.iter().map(Input::leaf).collect();
    let torch_consts: Vec<tch::Tensor> = consts.iter().map(Input::torch).collect();
    let want = torch(&leaves, &torch_consts);
    assert_eq!(
        want.kind(),
        Kind::Float,
        "{name}: torch computed in {:?}",
        want.kind()
    );
    want.sum(Kind::Float).backward();

    let mut worst = check(
        &format!("{name} loss"),
        &candle_vec(&losses),
        &torch_vec(&want),
    );
    for (i, (v, l)) in vars.iter().zip(&leaves).enumerate() {
        let got = grads
            .get(v.as_tensor())
            .map(candle_vec)
            .unwrap_or_else(|| vec![0.0; inputs[i].values.len()]);
        worst = worst.max(check(
            &format!("{name} d/d input {i}"),
            &got,
            &torch_vec(&l.grad()),
        ));
    }
    worst
}

/// safe-rlhf's masked mean: Σ x·m / Σ m, with the count clamped to 1 so that an empty mask gives 0.
fn torch_masked_mean(x: &tch::Tensor, mask: &tch::Tensor) -> tch::Tensor {
    (x * mask).sum(Kind::Float) / mask.sum(Kind::Float).clamp_min(1.0)
}

#[test]
fn log_sigmoid_matches_torch() {
    let x: [f32; 12] = [
        -200.0, -80.0, -20.0, -5.5, -1.0, -1e-3, 1e-3, 0.75, 3.0, 17.0, 80.0, 200.0,
    ];
    compare(
        "log_sigmoid",
        &[flat(&x)],
        &[],
        |t, _| log_sigmoid(&t[0]),
        |t, _| t[0].log_sigmoid(),
    );
}

#[test]
fn masked_mean_matches_torch() {
    let x = [1.5, -2.0, 7.25, 0.5, -3.0, 4.0, 100.0, -0.125];
    for mask in [
        [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0],
        [1.0; 8],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0; 8],
    ] {
        compare(
            &format!("masked_mean mask={mask:?}"),
            &[flat(&x)],
            &[flat(&mask)],
            |t, c| masked_mean(&t[0], &c[0]),
            |t, c| torch_masked_mean(&t[0], &c[0]),
        );
    }
}

#[test]
fn pairwise_loss_matches_torch() {
    let better = [1.25, -0.5, 3.0, -2.0, 0.125, 12.0, -30.0, 0.75];
    let worse = [0.5, 0.25, -4.0, -1.5, 0.0625, -9.0, -2.0, 0.7];
    compare(
        "pairwise_loss",
        &[flat(&better), flat(&worse)],
        &[],
        |t, _| pairwise_loss(&t[0], &t[1]),
        |t, _| -(&t[0] - &t[1]).log_sigmoid(),
    );
}

#[test]
fn cost_loss_matches_torch() {
    let safer_cost = [-1.5, 0.5, -0.25, 2.0, -3.0, 0.75, -0.125, 1.0];
    let unsafer_cost = [2.0, 1.25, -0.5, 3.5, -1.0, -0.25, 4.0, 0.875];
    // +1: labelled unsafe, −1: safe; both kinds on both sides.
    let safer_sign = [-1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0];
    let unsafer_sign = [1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 1.0, 1.0];
    compare(
        "cost_loss",
        &[flat(&safer_cost), flat(&unsafer_cost)],
        &[flat(&safer_sign), flat(&unsafer_sign)],
        |t, c| cost_loss(&t[0], &t[1], &c[0], &c[1]),
        |t, c| {
            -(&t[1] - &t[0]).log_sigmoid()
                - (&c[1] * &t[1]).log_sigmoid()
                - (&c[0] * &t[0]).log_sigmoid()
        },
    );
}

/// Two sequences of six tokens: log-ratios that push the ratio above 1 + ε, below 1 − ε and leave it inside, with
/// advantages of both signs, so that every branch of the clipped surrogate is taken; masked-out positions carry
/// large values that must not count.
const SHAPE: [usize; 2] = [2, 6];
const LOGP: [f32; 12] = [
    -1.0, -2.5, -0.75, -3.0, -0.5, -9.0, //
    -1.25, -0.25, -4.0, -2.0, -1.5, -0.125,
];
const OLD_LOGP: [f32; 12] = [
    -1.5, -2.0, -0.8, -2.25, -0.45, -1.0, //
    -1.0, -0.75, -3.5, -2.125, -1.5, -6.0,
];
const ADVANTAGES: [f32; 12] = [
    1.5, 2.0, -0.5, -1.25, 0.75, 50.0, //
    -2.0, -1.0, 0.5, 1.0, -0.25, -40.0,
];
const MASK: [f32; 12] = [
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
    1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
];

fn tokens(values: &[f32]) -> Input<'_> {
    Input {
        values,
        shape: &SHAPE,
    }
}

#[test]
fn ppo_policy_loss_matches_torch() {
    for clip in [0.2, 0.1, 0.5] {
        // Which tokens hit which clip, to be sure the inputs exercise all of them.
        let (mut above, mut below, mut inside) = (0, 0, 0);
        for i in 0..LOGP.len() {
            let ratio = f64::from(LOGP[i] - OLD_LOGP[i]).exp();
            if MASK[i] == 0.0 {
                continue;
            } else if ratio > 1.0 + clip {
                above += 1;
            } else if ratio < 1.0 - clip {
                below += 1;
            } else {
                inside += 1;
            }
        }
        assert!(
            above > 0 && below > 0 && inside > 0,
            "clip {clip}: {above} above, {below} below, {inside} inside"
        );
        compare(
            &format!("ppo_policy_loss ε={clip} ({above} above, {below} below, {inside} inside)"),
            &[tokens(&LOGP), tokens(&OLD_LOGP), tokens(&ADVANTAGES)],
            &[tokens(&MASK)],
            |t, c| ppo_policy_loss(&t[0], &t[1], &t[2], &c[0], clip),
            |t, c| {
                let ratio = (&t[0] - &t[1]).exp();
                let surrogate = -(&t[2] * &ratio);
                let clipped = -(&t[2] * ratio.clamp(1.0 - clip, 1.0 + clip));
                torch_masked_mean(&surrogate.maximum(&clipped), &c[0])
            },
        );
    }
}

#[test]
fn ppo_value_loss_matches_torch() {
    let values = [
        0.5, 2.0, -1.0, 0.25, 3.0, 40.0, //
        -0.75, 1.5, 0.125, -2.5, 0.9, -30.0,
    ];
    let old_values = [
        0.75, 1.0, -0.25, 0.3, 1.5, 0.0, //
        -0.5, 1.25, 1.0, -1.0, 0.85, 0.0,
    ];
    let returns = [
        1.0, 0.5, -2.0, 0.5, 1.75, 1.0, //
        -1.0, 3.0, 0.5, -3.0, 0.0, 2.0,
    ];
    for clip in [0.2, 0.5, 2.0] {
        compare(
            &format!("ppo_value_loss δ={clip}"),
            &[tokens(&values), tokens(&old_values), tokens(&returns)],
            &[tokens(&MASK)],
            |t, c| ppo_value_loss(&t[0], &t[1], &t[2], &c[0], clip),
            |t, c| {
                let clipped = t[0].clamp_tensor(Some(&t[1] - clip), Some(&t[1] + clip));
                let a = (&t[0] - &t[2]).square();
                let b = (clipped - &t[2]).square();
                torch_masked_mean(&(a.maximum(&b) * 0.5), &c[0])
            },
        );
    }
}

#[test]
fn lagrange_loss_matches_torch() {
    let log_lambda = [-2.0f32];
    // Constraint violated (cost above the threshold), satisfied, and tight.
    for (episode_cost, threshold) in [(1.5, 0.0), (-0.5, 0.25), (0.75, 0.75)] {
        compare(
            &format!("lagrange_loss J_C={episode_cost} d={threshold}"),
            &[flat(&log_lambda)],
            &[],
            |t, _| lagrange_loss(&t[0], episode_cost, threshold),
            |t, _| (-(t[0].exp() * (episode_cost - threshold))).sum(Kind::Float),
        );
    }
}

/// GAE's backward recursion written with torch tensors: δ_t = r_t + γ V_{t+1} − V_t (V_T = 0),
/// A_t = δ_t + γλ A_{t+1}, R_t = A_t + V_t.
fn torch_gae(
    rewards: &[f32],
    values: &[f32],
    gamma: f32,
    lambda: f32,
) -> (tch::Tensor, tch::Tensor) {
    let r = tch::Tensor::from_slice(rewards);
    let v = tch::Tensor::from_slice(values);
    let n = values.len() as i64;
    let next = tch::Tensor::cat(
        &[
            v.narrow(0, 1, n - 1),
            tch::Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)),
        ],
        0,
    );
    let deltas = r + next * f64::from(gamma) - &v;
    let mut running = tch::Tensor::from(0f32);
    let mut reversed = Vec::new();
    for t in (0..n).rev() {
        running = deltas.get(t) + running * f64::from(gamma * lambda);
        reversed.push(running.shallow_clone());
    }
    reversed.reverse();
    let advantages = tch::Tensor::stack(&reversed, 0);
    let returns = &advantages + &v;
    (advantages, returns)
}

#[test]
fn gae_matches_torch() {
    let cases: [(&[f32], &[f32], f32, f32); 4] = [
        (&[0.0, 0.0, 0.0, 1.0], &[0.5, 0.25, -0.125, 0.75], 1.0, 0.95),
        (
            &[0.1, -0.2, 0.0, 0.5, -1.0, 0.3, 0.0, 0.0, 2.5, -0.75],
            &[0.2, 0.4, -0.1, 0.9, 0.0, -0.6, 1.2, 0.3, 0.8, 0.1],
            0.99,
            0.95,
        ),
        (&[1.0, -1.0, 1.0], &[0.0, 0.5, -0.5], 0.5, 0.0),
        (&[3.0], &[-2.0], 0.99, 0.95),
    ];
    for (i, (rewards, values, gamma, lambda)) in cases.into_iter().enumerate() {
        let (advantages, returns) = gae(rewards, values, gamma, lambda);
        let (want_advantages, want_returns) = torch_gae(rewards, values, gamma, lambda);
        check(
            &format!("gae case {i} (γ={gamma} λ={lambda}) advantages"),
            &advantages,
            &torch_vec(&want_advantages),
        );
        check(
            &format!("gae case {i} returns"),
            &returns,
            &torch_vec(&want_returns),
        );
    }
}

/// At a tie (equal scores, as for identical responses or a freshly initialised score head), $\log\sigma$ has slope ½
/// at 0; a form of `log_sigmoid` built on candle's `minimum` and `abs` had slope 1 there (both kinks' subgradients).
#[test]
fn pairwise_loss_at_a_tie_matches_torch() {
    let scores = [0.5, -1.25, 3.0];
    compare(
        "pairwise_loss at a tie",
        &[flat(&scores), flat(&scores)],
        &[],
        |t, _| pairwise_loss(&t[0], &t[1]),
        |t, _| -(&t[0] - &t[1]).log_sigmoid(),
    );
}
