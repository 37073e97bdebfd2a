//! The distance the rebound probe tracks: how far a tuned model's next-token distributions are from the base
//! model's, on the tuned model's own answers.

use candle_core::{D, DType, Result, Tensor};

/// Mean per-token KL divergence from `base` to `tuned`, over the positions `mask` counts:
/// $\mathrm{KL}(p_\theta \,\|\, p_{\mathrm{base}}) = \frac{1}{\sum m}\sum_{i,t} m_{i,t} \sum_v p_\theta(v \mid x_{i,\le t})
/// \left(\log p_\theta(v \mid x_{i,\le t}) - \log p_{\mathrm{base}}(v \mid x_{i,\le t})\right)$
/// (the quantity of Ji et al., "Language Models Resist Alignment", arXiv 2406.06144, Table 3).
///
/// `tuned` and `base` are logits (batch, seq, vocab) over the same ids; `mask` is (batch, seq − 1) with 1 where
/// position t predicts a counted token (a [`rice_lm::text::Batch`]'s `response_mask`).
pub fn mean_token_kl(tuned: &Tensor, base: &Tensor, mask: &Tensor) -> Result<f64> {
    let (_, t, _) = tuned.dims3()?;
    let log_softmax = |logits: &Tensor| -> Result<Tensor> {
        let logits = logits.narrow(1, 0, t - 1)?.to_dtype(DType::F32)?;
        logits.broadcast_sub(&logits.log_sum_exp(D::Minus1)?.unsqueeze(D::Minus1)?)
    };
    let (log_p, log_q) = (log_softmax(tuned)?, log_softmax(base)?);
    let per_position = (log_p.exp()? * (&log_p - &log_q)?)?.sum(D::Minus1)?;
    let counted = mask.sum_all()?.to_scalar::<f32>()?;
    let total = (per_position * mask)?.sum_all()?.to_scalar::<f32>()?;
    Ok(f64::from(total) / f64::from(counted).max(1.0))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn kl_matches_a_hand_computed_value() {
        // One sequence of 3 positions over 2 tokens; the last position predicts nothing and is dropped.
        // Position 0: p = (1/2, 1/2), q = (1/2, 1/2): KL 0. Position 1: logits (ln 3, 0) → p = (3/4, 1/4),
        // base logits (0, 0) → q = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812.
        let dev = Device::Cpu;
        let l3 = 3f32.ln();
        let tuned = Tensor::new(&[[[0f32, 0.], [l3, 0.], [5., 0.]]], &dev).unwrap();
        let base = Tensor::new(&[[[0f32, 0.], [0., 0.], [0., 5.]]], &dev).unwrap();
        let both = Tensor::new(&[[1f32, 1.]], &dev).unwrap();
        let kl = super::mean_token_kl(&tuned, &base, &both).unwrap();
        assert!((kl - 0.130812 / 2.0).abs() < 1e-5, "{kl}");
        let second = Tensor::new(&[[0f32, 1.]], &dev).unwrap();
        let kl = super::mean_token_kl(&tuned, &base, &second).unwrap();
        assert!((kl - 0.130812).abs() < 1e-5, "{kl}");
        let same = super::mean_token_kl(&tuned, &tuned, &both).unwrap();
        assert!(same.abs() < 1e-6);
    }
}
