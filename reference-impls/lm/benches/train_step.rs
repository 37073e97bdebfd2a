//! CPU training throughput: tokens per second of one SFT-style step (forward, next-token loss, backward, AdamW)
//! for the toy-m preset and a ~20M-parameter Qwen2-shaped config, on a fixed random batch.
//!
//! Run: `cargo bench -p rice-lm --bench train_step`; `scripts/bench-train` also runs the identical PyTorch eager
//! step (`benches/train_step_torch.py`) and prints the ratio. Prints one JSON line per config.

use std::time::Instant;

use candle_core::{DType, Device, IndexOp, Tensor};
use rice_lm::Config;
use rice_lm::optim::{AdamW, AdamWParams};
use rice_lm::rng::Rng;

fn main() {
    let quick = std::env::var_os("RICE_BENCH_QUICK").is_some();
    let (batch, seq) = (8usize, 128usize);
    let configs = [
        (
            "toy-m",
            Config::qwen2(1024, 256, 6, 8, 4, 672),
            if quick { 2 } else { 6 },
        ),
        (
            "20M",
            Config::qwen2(1024, 512, 6, 8, 4, 1376),
            if quick { 1 } else { 3 },
        ),
    ];
    let device = Device::Cpu;
    for (name, cfg, steps) in configs {
        let loaded = rice_lm::checkpoint::init(&cfg, DType::F32, &device, 1).expect("init");
        let params: usize = loaded.vars.all_vars().iter().map(|v| v.elem_count()).sum();
        let mut rng = Rng::new(3);
        let ids: Vec<u32> = (0..batch * seq)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        let ids = Tensor::from_vec(ids, (batch, seq), &device).expect("ids");
        let mut opt = AdamW::new(&loaded.vars, AdamWParams::default()).expect("optimizer");
        let step = |opt: &mut AdamW| {
            let logits = loaded.model.forward(&ids, None).expect("forward");
            let inputs = logits
                .i((.., ..seq - 1, ..))
                .unwrap()
                .reshape((batch * (seq - 1), cfg.vocab_size))
                .unwrap();
            let targets = ids
                .i((.., 1..))
                .unwrap()
                .reshape(batch * (seq - 1))
                .unwrap();
            let loss = candle_nn::loss::cross_entropy(&inputs, &targets).expect("loss");
            let grads = loss.backward().expect("backward");
            opt.update(&grads, 1e-4, 1.0).expect("update");
        };
        step(&mut opt); // warm-up
        let mut times = Vec::new();
        for _ in 0..steps {
            let started = Instant::now();
            step(&mut opt);
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{{\"engine\": \"candle\", \"config\": \"{name}\", \"parameters\": {params}, \"batch\": {batch}, \"seq\": {seq}, \"step_seconds\": {median:.4}, \"tokens_per_second\": {:.0}}}",
            (batch * seq) as f64 / median
        );
    }
}
