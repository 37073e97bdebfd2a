//! The losses of the RLHF pipeline's later stages, each a small pure function with its formula:
//! reward and cost models (stage 2) and PPO with its Lagrangian (stage 3). Tensors are per pair, per sequence or per
//! token as each function says; `mask` tensors are 1 for counted positions and 0 elsewhere.

use candle_core::{Result, Tensor};

/// $\log\sigma(x)$ without overflow: $\min(x, 0) - \log(1 + e^{-|x|})$, with $\min(x, 0)$ written as
/// $(x - |x|)/2$. That form matters at $x = 0$ — where every pair starts when the policy equals its reference or a
/// score head starts at zero: whatever (sub)gradient autodiff picks for $|x|$ there, the two terms' choices cancel
/// and the derivative is the true $\sigma(-x) = 1/2$ (with `minimum` it came out as 1).
pub fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let abs = x.abs()?;
    let soft = (abs.neg()?.exp()? + 1.0)?.log()?;
    ((x - &abs)? * 0.5)? - soft
}

/// $\sum x m / \sum m$: the mean over the counted positions (0 when none is counted).
pub fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let count = mask
        .sum_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_scalar::<f32>()?;
    (x * mask)?.sum_all()? / f64::from(count.max(1.0))
}

/// Reward model, Bradley–Terry pairwise loss (Ouyang et al., "Training language models to follow instructions with
/// human feedback", arXiv 2203.02155; Stiennon et al., arXiv 2009.01325): $\ell = -\log\sigma(r(x, y_w) - r(x,
/// y_l))$ per pair, where $r$ is the score at the last token of each response. Its mean is the negative
/// log-likelihood of the preferences when $P(y_w \succ y_l) = \sigma(r_w - r_l)$.
pub fn pairwise_loss(better: &Tensor, worse: &Tensor) -> Result<Tensor> {
    log_sigmoid(&(better - worse)?)?.neg()
}

/// Cost model of Safe RLHF (Dai et al., "Safe RLHF: Safe Reinforcement Learning from Human Feedback",
/// arXiv 2310.12773): per pair,
/// $\ell = -\log\sigma(c(y_u) - c(y_s)) - \log\sigma(s_u\, c(y_u)) - \log\sigma(s_s\, c(y_s))$, with $y_s$ the safer
/// and $y_u$ the less safe response, and $s = +1$ for a response labelled unsafe, $-1$ for a safe one.
///
/// The first term orders the pair like a reward model (higher cost = less safe); the sign terms pin the scale, so
/// that **cost > 0 means unsafe and cost ≤ 0 safe** — the sign convention of Safe RLHF, of the toy oracle's cost
/// and of everything in RICE Atlas. `safer_sign` and `unsafer_sign` are ±1 tensors (pairs,).
pub fn cost_loss(
    safer_cost: &Tensor,
    unsafer_cost: &Tensor,
    safer_sign: &Tensor,
    unsafer_sign: &Tensor,
) -> Result<Tensor> {
    let order = log_sigmoid(&(unsafer_cost - safer_cost)?)?;
    let unsafer = log_sigmoid(&(unsafer_sign * unsafer_cost)?)?;
    let safer = log_sigmoid(&(safer_sign * safer_cost)?)?;
    ((order + unsafer)? + safer)?.neg()
}

/// PPO's clipped surrogate policy loss (Schulman et al., "Proximal Policy Optimization Algorithms",
/// arXiv 1707.06347), per token: with ratio $\rho = \exp(\log\pi_\theta - \log\pi_{\mathrm{old}})$,
/// $\ell = \max(-A\rho,\; -A\,\mathrm{clip}(\rho, 1-\epsilon, 1+\epsilon))$, averaged over the `mask`ed tokens.
/// The clip removes the incentive to move the ratio beyond $1 \pm \epsilon$ in the direction the advantage favours.
pub fn ppo_policy_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip: f64,
) -> Result<Tensor> {
    let ratio = (logp - old_logp)?.exp()?;
    let unclipped = (advantages * &ratio)?.neg()?;
    let clipped = (advantages * ratio.clamp(1.0 - clip, 1.0 + clip)?)?.neg()?;
    masked_mean(&unclipped.maximum(&clipped)?, mask)
}

/// PPO's clipped value loss, per token: $\ell = \frac12\max\left((V - R)^2,\;
/// (\mathrm{clip}(V, V_{\mathrm{old}} - \delta, V_{\mathrm{old}} + \delta) - R)^2\right)$, averaged over the
/// `mask`ed tokens; $R$ are the returns and $\delta$ the value clip range (safe-rlhf's `clip_range_value`).
pub fn ppo_value_loss(
    values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    mask: &Tensor,
    clip: f64,
) -> Result<Tensor> {
    let low = (old_values - clip)?;
    let high = (old_values + clip)?;
    let clipped = values.maximum(&low)?.minimum(&high)?;
    let a = (values - returns)?.sqr()?;
    let b = (clipped - returns)?.sqr()?;
    masked_mean(&(a.maximum(&b)? * 0.5)?, mask)
}

/// The Lagrange multiplier's loss in PPO-Lagrangian (Safe RLHF): with $\lambda = e^{\log\lambda}$,
/// $\ell(\log\lambda) = -\lambda\,(J_C - d)$, where $J_C$ is the mean episode cost and $d$ the threshold. A descent
/// step on it raises $\lambda$ while the constraint $J_C \le d$ is violated and lowers it otherwise; learning
/// $\log\lambda$ keeps $\lambda$ positive.
pub fn lagrange_loss(log_lambda: &Tensor, episode_cost: f64, threshold: f64) -> Result<Tensor> {
    (log_lambda.exp()? * (threshold - episode_cost))?.sum_all()
}

/// Generalised advantage estimation (Schulman et al., arXiv 1506.02438) over one response of $T$ tokens:
/// $\delta_t = r_t + \gamma V_{t+1} - V_t$ (with $V_T = 0$), $A_t = \sum_k (\gamma\lambda)^k \delta_{t+k}$, and the
/// returns $R_t = A_t + V_t$ that the value function regresses to.
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lambda: f32) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len().min(values.len());
    let mut advantages = vec![0.0; n];
    let mut running = 0.0;
    for t in (0..n).rev() {
        let next = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * next - values[t];
        running = delta + gamma * lambda * running;
        advantages[t] = running;
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}
