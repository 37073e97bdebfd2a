//! The preference losses, each a small pure function of sequence log-probabilities, returning one loss per pair.
//!
//! Notation for a pair $(x, y_w, y_l)$ — prompt, chosen (winner) and rejected (loser) response:
//! $\Delta_w = \log\pi_\theta(y_w \mid x) - \log\pi_{\mathrm{ref}}(y_w \mid x)$, likewise $\Delta_l$, and the margin
//! $h = \Delta_w - \Delta_l$. Log-probabilities are sums over response tokens unless a loss says otherwise (IPO and
//! SimPO take per-token means; [`crate::dpo`] passes the right kind). Every function is differentiable in its
//! policy inputs; the reference inputs are constants.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Which preference loss to optimise, with its hyper-parameters' defaults in [`LossKind::default_beta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// DPO's logistic loss ([`dpo`]).
    Sigmoid,
    /// Identity preference optimisation ([`ipo`]).
    Ipo,
    /// Conservative DPO: DPO with label smoothing ([`cdpo`]).
    Cdpo,
    /// SLiC's hinge loss on the DPO margin ([`hinge`]).
    Hinge,
    /// Reference-free, length-normalised, with a target margin ([`simpo`]).
    Simpo,
}

impl LossKind {
    pub const ALL: [(&'static str, LossKind); 5] = [
        ("sigmoid", LossKind::Sigmoid),
        ("ipo", LossKind::Ipo),
        ("cdpo", LossKind::Cdpo),
        ("hinge", LossKind::Hinge),
        ("simpo", LossKind::Simpo),
    ];

    /// Accepts the names of [`LossKind::ALL`] and `dpo` for `sigmoid`.
    pub fn by_name(name: &str) -> Option<LossKind> {
        if name == "dpo" {
            return Some(LossKind::Sigmoid);
        }
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is listed")
    }

    /// β by default: 0.1 for the reference-based losses (align-anything's `scale_coeff`, TRL's and OpenRLHF's
    /// `beta`), 2.0 for SimPO (whose β scales per-token log-probabilities, so it is larger; the paper tunes it per
    /// model).
    pub fn default_beta(self) -> f64 {
        match self {
            LossKind::Simpo => 2.0,
            _ => 0.1,
        }
    }

    /// Whether the loss compares against a frozen reference model (all but SimPO).
    pub fn uses_reference(self) -> bool {
        self != LossKind::Simpo
    }

    /// Whether the loss takes per-token mean log-probabilities instead of sums (IPO, SimPO).
    pub fn length_normalised(self) -> bool {
        matches!(self, LossKind::Ipo | LossKind::Simpo)
    }
}

pub use rice_rlhf::loss::log_sigmoid;

/// The DPO margin $h = (\log\pi_\theta(y_w) - \log\pi_{\mathrm{ref}}(y_w)) - (\log\pi_\theta(y_l) -
/// \log\pi_{\mathrm{ref}}(y_l))$, per pair.
pub fn margin(
    chosen: &Tensor,
    rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
) -> Result<Tensor> {
    (chosen - ref_chosen)? - (rejected - ref_rejected)?
}

/// DPO (Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
/// arXiv 2305.18290): $\ell = -\log\sigma(\beta h)$. The Bradley–Terry likelihood of the preference when the
/// reward is the policy's log-ratio to the reference, $r = \beta\log\frac{\pi_\theta}{\pi_{\mathrm{ref}}}$.
pub fn dpo(
    chosen: &Tensor,
    rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    log_sigmoid(&(margin(chosen, rejected, ref_chosen, ref_rejected)? * beta)?)?.neg()
}

/// Conservative DPO (Mitchell, "A note on DPO with noisy preferences & relationship to IPO", 2023, a note without
/// an arXiv id): each label is taken to be flipped with probability $\varepsilon$, so
/// $\ell = -(1-\varepsilon)\log\sigma(\beta h) - \varepsilon\log\sigma(-\beta h)$. With $\varepsilon = 0$ it is DPO;
/// with $\varepsilon > 0$ the loss has a finite minimum at $\beta h = \log\frac{1-\varepsilon}{\varepsilon}$ instead
/// of pushing the margin to infinity.
pub fn cdpo(
    chosen: &Tensor,
    rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
    epsilon: f64,
) -> Result<Tensor> {
    let z = (margin(chosen, rejected, ref_chosen, ref_rejected)? * beta)?;
    let agree = (log_sigmoid(&z)? * (1.0 - epsilon))?;
    let flip = (log_sigmoid(&z.neg()?)? * epsilon)?;
    (agree + flip)?.neg()
}

/// IPO (Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
/// arXiv 2310.12036): $\ell = \left(h - \frac{1}{2\beta}\right)^2$, a squared loss that regresses the margin to a
/// fixed target instead of growing it without bound, so it does not overfit deterministic preferences. Takes
/// per-token mean log-probabilities, as TRL does.
pub fn ipo(
    chosen: &Tensor,
    rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    (margin(chosen, rejected, ref_chosen, ref_rejected)? - 1.0 / (2.0 * beta))?.sqr()
}

/// Hinge loss on the DPO margin, after SLiC-HF (Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human
/// Feedback", arXiv 2305.10425): $\ell = \max(0, 1 - \beta h)$. As in TRL's `hinge`, the margin is measured against
/// the reference, and $1/\beta$ plays the role of SLiC's calibration margin $\delta$: pairs already separated by it
/// contribute nothing.
pub fn hinge(
    chosen: &Tensor,
    rejected: &Tensor,
    ref_chosen: &Tensor,
    ref_rejected: &Tensor,
    beta: f64,
) -> Result<Tensor> {
    (1.0 - (margin(chosen, rejected, ref_chosen, ref_rejected)? * beta)?)?.relu()
}

/// SimPO (Meng, Xia and Chen, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
/// arXiv 2405.14734): $\ell = -\log\sigma\left(\frac{\beta}{|y_w|}\log\pi_\theta(y_w) - \frac{\beta}{|y_l|}
/// \log\pi_\theta(y_l) - \gamma\right)$. No reference model: the reward is the length-normalised log-probability,
/// and $\gamma$ asks for a margin. Takes per-token mean log-probabilities.
pub fn simpo(
    chosen_mean: &Tensor,
    rejected_mean: &Tensor,
    beta: f64,
    gamma: f64,
) -> Result<Tensor> {
    let z = (((chosen_mean - rejected_mean)? * beta)? - gamma)?;
    log_sigmoid(&z)?.neg()
}

/// Settings of a preference loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    pub kind: LossKind,
    pub beta: f64,
    /// cDPO's assumed label-flip probability ε (only `cdpo`).
    pub label_smoothing: f64,
    /// SimPO's target margin γ (only `simpo`).
    pub simpo_gamma: f64,
}

impl LossConfig {
    /// The defaults of a loss: β from [`LossKind::default_beta`], ε = 0.1 for cDPO, γ = 1.0 for SimPO.
    pub fn new(kind: LossKind) -> LossConfig {
        LossConfig {
            kind,
            beta: kind.default_beta(),
            label_smoothing: if kind == LossKind::Cdpo { 0.1 } else { 0.0 },
            simpo_gamma: 1.0,
        }
    }

    /// Rejects settings the loss cannot use, naming the setting.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(format!("`beta` must be positive, got {}", self.beta));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(format!(
                "`label_smoothing` must be in [0, 0.5), got {}",
                self.label_smoothing
            ));
        }
        if !self.simpo_gamma.is_finite() || self.simpo_gamma < 0.0 {
            return Err(format!(
                "`simpo_gamma` must be ≥ 0, got {}",
                self.simpo_gamma
            ));
        }
        Ok(())
    }

    /// Per-pair losses and implicit rewards. Inputs are (pairs,) log-probabilities — sums, or per-token means
    /// when [`LossKind::length_normalised`] — and the reference ones are ignored by SimPO.
    pub fn compute(&self, logps: &PairLogps) -> Result<LossOutput> {
        let PairLogps {
            chosen,
            rejected,
            ref_chosen,
            ref_rejected,
        } = logps;
        let beta = self.beta;
        let losses = match self.kind {
            LossKind::Sigmoid => dpo(chosen, rejected, ref_chosen, ref_rejected, beta)?,
            LossKind::Cdpo => cdpo(
                chosen,
                rejected,
                ref_chosen,
                ref_rejected,
                beta,
                self.label_smoothing,
            )?,
            LossKind::Ipo => ipo(chosen, rejected, ref_chosen, ref_rejected, beta)?,
            LossKind::Hinge => hinge(chosen, rejected, ref_chosen, ref_rejected, beta)?,
            LossKind::Simpo => simpo(chosen, rejected, beta, self.simpo_gamma)?,
        };
        // Implicit rewards, for logging only: β·log-ratio, or β·mean log-prob for SimPO.
        let (rc, rr) = if self.kind.uses_reference() {
            (
                (chosen - ref_chosen)? * beta,
                (rejected - ref_rejected)? * beta,
            )
        } else {
            (chosen * beta, rejected * beta)
        };
        Ok(LossOutput {
            losses,
            chosen_rewards: rc?.detach(),
            rejected_rewards: rr?.detach(),
        })
    }
}

/// Log-probabilities of a batch of pairs under the policy and the frozen reference, each (pairs,).
pub struct PairLogps {
    pub chosen: Tensor,
    pub rejected: Tensor,
    pub ref_chosen: Tensor,
    pub ref_rejected: Tensor,
}

pub struct LossOutput {
    /// (pairs,): the loss of each pair; train on the mean.
    pub losses: Tensor,
    pub chosen_rewards: Tensor,
    pub rejected_rewards: Tensor,
}
