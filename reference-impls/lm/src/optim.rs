//! AdamW with its state exposed (so that checkpoints can save and resume it), a warmup + cosine learning-rate
//! schedule, and global gradient-norm clipping.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv 1711.05101).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay, applied to matrices only (not to norms, biases or other 1-D parameters).
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW over every variable of a [`VarMap`], in name order.
///
/// $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t$, $v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$,
/// $\theta_t = \theta_{t-1} - \eta\,(\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda\,\theta_{t-1})$ with bias-corrected
/// $\hat m_t = m_t / (1-\beta_1^t)$, $\hat v_t = v_t / (1-\beta_2^t)$.
pub struct AdamW {
    names: Vec<String>,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Updates taken so far.
    pub step: u64,
    pub params: AdamWParams,
}

impl AdamW {
    pub fn new(vars: &VarMap, params: AdamWParams) -> Result<AdamW> {
        let data = vars
            .data()
            .lock()
            .expect("the var map lock is not poisoned");
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let m = named
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<Result<_>>()?;
        let v = named
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<Result<_>>()?;
        let (names, vars) = named.into_iter().unzip();
        Ok(AdamW {
            names,
            vars,
            m,
            v,
            step: 0,
            params,
        })
    }

    /// One update with learning rate `lr`; every gradient is multiplied by `scale` first (for clipping and for
    /// averaging accumulated micro-batches). Variables without a gradient are left as they are.
    pub fn update(&mut self, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        self.step += 1;
        let p = &self.params;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - p.beta1.powi(t), 1.0 - p.beta2.powi(t));
        for i in 0..self.vars.len() {
            let var = &self.vars[i];
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = (g * scale)?;
            let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let step = ((&m / c1)? / ((&v / c2)?.sqrt()? + p.eps)?)?;
            let theta = var.as_tensor();
            let decay = if theta.rank() >= 2 {
                p.weight_decay
            } else {
                0.0
            };
            let next = if decay > 0.0 {
                ((theta * (1.0 - lr * decay))? - (step * lr)?)?
            } else {
                (theta - (step * lr)?)?
            };
            var.set(&next)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moment estimates as named tensors (`m.<name>`, `v.<name>`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, name) in self.names.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments saved by [`AdamW::state`] and the step count.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (i, name) in self.names.iter().enumerate() {
            let (Some(m), Some(v)) = (
                state.get(&format!("m.{name}")),
                state.get(&format!("v.{name}")),
            ) else {
                candle_core::bail!("the optimizer state has no moments for `{name}`");
            };
            self.m[i] = m.to_dtype(self.m[i].dtype())?;
            self.v[i] = v.to_dtype(self.v[i].dtype())?;
        }
        self.step = step;
        Ok(())
    }

    /// The global L2 norm of the gradients of all variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut total = 0.0f64;
        for var in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                total += g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        Ok(total.sqrt())
    }
}

/// Linear warmup to `lr`, then cosine decay to `lr · min_ratio` at `total` steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub lr: f64,
    pub warmup: u64,
    pub total: u64,
    pub min_ratio: f64,
}

impl Schedule {
    /// The learning rate for update number `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let s = Schedule {
            lr: 1e-3,
            warmup: 10,
            total: 110,
            min_ratio: 0.1,
        };
        assert!((s.at(0) - 1e-4).abs() < 1e-12);
        assert!((s.at(9) - 1e-3).abs() < 1e-12);
        assert!((s.at(10) - 1e-3).abs() < 1e-12);
        assert!((s.at(60) - 0.55e-3).abs() < 1e-9, "{}", s.at(60));
        assert!((s.at(110) - 1e-4).abs() < 1e-12);
        assert!((s.at(500) - 1e-4).abs() < 1e-12);
    }

    /// One AdamW step on f(x) = ½‖x‖² from x = (1, −2): the first update is lr · sign(g) (bias correction makes
    /// m̂/√v̂ = g/|g|), minus decoupled decay for matrices only.
    #[test]
    fn first_adamw_step_matches_the_hand_computation() {
        let vars = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F64, &Device::Cpu);
        let x = vb
            .get_with_hints(2, "x", candle_nn::Init::Const(0.0))
            .unwrap();
        let var = vars.data().lock().unwrap()["x"].clone();
        var.set(&Tensor::new(&[1.0f64, -2.0], &Device::Cpu).unwrap())
            .unwrap();
        drop(x);
        let loss = (var.as_tensor().sqr().unwrap().sum_all().unwrap() * 0.5).unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(
            &vars,
            AdamWParams {
                weight_decay: 0.5,
                eps: 0.0,
                ..AdamWParams::default()
            },
        )
        .unwrap();
        assert!((opt.grad_norm(&grads).unwrap() - 5f64.sqrt()).abs() < 1e-12);
        opt.update(&grads, 0.1, 1.0).unwrap();
        let x: Vec<f64> = var.as_tensor().to_vec1().unwrap();
        // 1-D parameter: no decay.
        assert!(
            (x[0] - 0.9).abs() < 1e-12 && (x[1] + 1.9).abs() < 1e-12,
            "{x:?}"
        );
        let state = opt.state();
        assert_eq!(state.len(), 2);
    }
}
