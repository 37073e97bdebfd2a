//! The pipeline's stages, each with a plain input and output so that it runs on real data as well as on the toy
//! world: annotate (toy only), train the feedback model, critique, refine, make pairs; plus the binary baseline's
//! pairs, the refinements' oracle check and the report.

use std::path::Path;

use rice_lm::generate::{Sampling, generate_batch};
use rice_lm::text::{Encoded, PreferencePair, Template, Tokenizer};
use rice_lm::{CausalLm, checkpoint};
use rice_rlhf::sft::{Supervised, train_supervised};
use rice_rlhf::toy::Comparison;
use rice_toyworld::{LlfExample, World};

use crate::{LlfConfig, RefinementQuality, RunError};

/// What the feedback model reads to write a critique (its user turn).
pub fn critique_input(question: &str, answer: &str) -> String {
    format!("##Question: {question}\n##Answer: {answer}\n##Critique:")
}

/// What it reads to rewrite an answer by a critique.
pub fn refine_input(question: &str, answer: &str, critique: &str) -> String {
    format!("##Question: {question}\n##Answer: {answer}\n##Critique: {critique}\n##Refinement:")
}

/// The critique that asks for nothing: a response it is given for is not rewritten.
pub const NO_PROBLEM: &str = "The answer is correct and complete.";

/// Batched generation in one chat template.
pub struct Generator<'a> {
    pub tok: &'a Tokenizer,
    pub template: Template,
    pub max_new_tokens: usize,
}

impl Generator<'_> {
    /// `k` samples at temperature 1 for each of `user_turns`, about 64 sequences per batch.
    pub fn sample(
        &self,
        model: &CausalLm,
        user_turns: &[String],
        k: usize,
        seed: u64,
    ) -> Result<Vec<Vec<String>>, RunError> {
        self.generate(model, user_turns, k, 1.0, seed)
    }

    fn generate(
        &self,
        model: &CausalLm,
        user_turns: &[String],
        k: usize,
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Vec<String>>, RunError> {
        let mut out = Vec::with_capacity(user_turns.len());
        for (c, chunk) in user_turns.chunks((64 / k.max(1)).max(1)).enumerate() {
            let ids = chunk
                .iter()
                .map(|p| self.tok.encode(&self.template.prompt(p)))
                .collect::<Result<Vec<_>, _>>()?;
            let repeated: Vec<Vec<u32>> = ids
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.clone(), k))
                .collect();
            let sampling = Sampling {
                temperature,
                max_new_tokens: self.max_new_tokens,
                seed: seed.wrapping_add(c as u64),
                ..Sampling::default()
            };
            let generated = generate_batch(
                model,
                self.tok,
                &repeated,
                &sampling,
                &[self.template.end()],
            )?;
            for group in generated.chunks(k) {
                out.push(group.iter().map(|g| g.text.trim().to_owned()).collect());
            }
        }
        Ok(out)
    }

    fn greedy(&self, model: &CausalLm, user_turns: &[String]) -> Result<Vec<String>, RunError> {
        Ok(self
            .generate(model, user_turns, 1, 0.0, 0)?
            .into_iter()
            .map(|mut v| v.remove(0))
            .collect())
    }

    /// The feedback model's critique of each (question, answer), greedy.
    pub fn critique(
        &self,
        feedback: &CausalLm,
        questions: &[String],
        answers: &[String],
    ) -> Result<Vec<String>, RunError> {
        let inputs: Vec<String> = questions
            .iter()
            .zip(answers)
            .map(|(q, a)| critique_input(q, a))
            .collect();
        self.greedy(feedback, &inputs)
    }

    /// The feedback model's rewrite of each answer by its critique, greedy; an answer whose critique asks for
    /// nothing is kept as it is.
    pub fn refine(
        &self,
        feedback: &CausalLm,
        questions: &[String],
        answers: &[String],
        critiques: &[String],
    ) -> Result<Vec<String>, RunError> {
        let todo: Vec<usize> = (0..questions.len())
            .filter(|&i| critiques[i].trim() != NO_PROBLEM)
            .collect();
        let inputs: Vec<String> = todo
            .iter()
            .map(|&i| refine_input(&questions[i], &answers[i], &critiques[i]))
            .collect();
        let rewritten = self.greedy(feedback, &inputs)?;
        let mut out = answers.to_vec();
        for (i, text) in todo.into_iter().zip(rewritten) {
            out[i] = text;
        }
        Ok(out)
    }
}

/// The oracle as annotator: its critique of the first sample for each prompt, and the ideal answer as refinement.
pub fn annotate(world: &World, prompts: &[String], samples: &[Vec<String>]) -> Vec<LlfExample> {
    prompts
        .iter()
        .zip(samples)
        .filter_map(|(prompt, s)| {
            let response = s.first()?.clone();
            let c = world.critique(prompt, &response);
            Some(LlfExample {
                prompt: prompt.clone(),
                critique: c.text,
                refinement: c.refinement.unwrap_or_else(|| response.clone()),
                response,
            })
        })
        .collect()
}

/// Trains the feedback model from `cfg.model` on both tasks of every annotation (critique, then rewrite) into
/// `dir` (checkpoint in `dir/checkpoint`; with `resume`, continues from it).
pub fn train_feedback(
    cfg: &LlfConfig,
    tok: &Tokenizer,
    template: Template,
    annotations: &[LlfExample],
    dir: &Path,
    resume: bool,
) -> Result<(), RunError> {
    let mut examples = Vec::with_capacity(2 * annotations.len());
    for a in annotations {
        examples.push(Encoded::new(
            tok,
            template,
            &critique_input(&a.prompt, &a.response),
            &a.critique,
        )?);
        if a.critique.trim() != NO_PROBLEM {
            examples.push(Encoded::new(
                tok,
                template,
                &refine_input(&a.prompt, &a.response, &a.critique),
                &a.refinement,
            )?);
        }
    }
    let train = &cfg.feedback_train;
    let device = train
        .open_device()
        .map_err(rice_lm::trainer::TrainError::from)?;
    let loaded = checkpoint::load(&cfg.model, candle_core::DType::F32, &device)?
        .with_precision(train.precision);
    let mut train_cfg = train.clone();
    train_cfg.seed = cfg.seed;
    train_supervised(
        dir,
        &loaded,
        &cfg.model.join("tokenizer.json"),
        examples,
        &train_cfg,
        resume,
        &Supervised {
            tag: "feedback",
            salt: 0xfeed,
            batch_size: cfg.feedback_batch_size,
            max_len: cfg.feedback_max_len,
            pad: tok.pad_id,
            title: "Feedback model: critique and rewrite loss",
            y_label: "loss (response tokens)",
        },
    )?;
    Ok(())
}

/// Refined ≻ original, for every response the critique found fault with and the rewrite changed.
pub fn pairs(rows: &[LlfExample]) -> Vec<PreferencePair> {
    rows.iter()
        .filter(|r| {
            r.critique.trim() != NO_PROBLEM
                && !r.refinement.trim().is_empty()
                && r.refinement.trim() != r.response.trim()
        })
        .map(|r| PreferencePair {
            prompt: r.prompt.clone(),
            chosen: r.refinement.clone(),
            rejected: r.response.clone(),
        })
        .collect()
}

/// The binary baseline's labels: for each annotated prompt, the oracle's preference between its two samples
/// (one label per prompt; ties give no pair).
pub fn binary_pairs(
    world: &World,
    prompts: &[String],
    samples: &[Vec<String>],
) -> Vec<PreferencePair> {
    prompts
        .iter()
        .zip(samples)
        .filter_map(|(prompt, s)| {
            let [a, b] = s.as_slice() else { return None };
            let (sa, sb) = (world.score(prompt, a), world.score(prompt, b));
            let (chosen, rejected) = match sa.preference(&sb) {
                std::cmp::Ordering::Greater => (a, b),
                std::cmp::Ordering::Less => (b, a),
                std::cmp::Ordering::Equal => return None,
            };
            Some(PreferencePair {
                prompt: prompt.clone(),
                chosen: chosen.clone(),
                rejected: rejected.clone(),
            })
        })
        .collect()
}

/// The oracle's view of the rewrites: mean helpfulness and unsafe rate before and after, and how the pairs order.
pub fn refinement_quality(world: &World, rows: &[LlfExample]) -> RefinementQuality {
    let mut q = RefinementQuality::default();
    let rewritten: Vec<&LlfExample> = rows
        .iter()
        .filter(|r| r.refinement.trim() != r.response.trim())
        .collect();
    q.rewritten = rewritten.len();
    let n = rewritten.len().max(1) as f64;
    for r in &rewritten {
        let (o, f) = (
            world.score(&r.prompt, &r.response),
            world.score(&r.prompt, &r.refinement),
        );
        q.helpfulness_original += f64::from(o.helpfulness) / n;
        q.helpfulness_refined += f64::from(f.helpfulness) / n;
        q.unsafe_rate_original += f64::from(u8::from(o.is_unsafe)) / n;
        q.unsafe_rate_refined += f64::from(u8::from(f.is_unsafe)) / n;
        match f.preference(&o) {
            std::cmp::Ordering::Greater => q.refined_better += 1,
            std::cmp::Ordering::Equal => q.ties += 1,
            std::cmp::Ordering::Less => q.refined_worse += 1,
        }
    }
    q
}

/// Which method did better, in one honest sentence: by the win rate over the start among decided prompts
/// (sampled), then helpfulness and the hazard unsafe rate.
pub fn verdict(llf: &Comparison, binary: &Comparison) -> String {
    let line = |c: &Comparison| {
        format!(
            "win rate over the start {:.3} (sampled, ties ½), helpfulness {:.3}, hazard unsafe rate {:.3} (sampled)",
            c.win_rate.rate, c.sampled_after.helpfulness, c.sampled_after.hazard_unsafe_rate
        )
    };
    let better = if llf.win_rate.rate > binary.win_rate.rate + 1e-9 {
        "LLF beat binary DPO"
    } else if binary.win_rate.rate > llf.win_rate.rate + 1e-9 {
        "binary DPO beat LLF"
    } else {
        "LLF and binary DPO tied"
    };
    format!(
        "{better} at the same annotation budget. LLF: {}. Binary: {}.",
        line(llf),
        line(binary)
    )
}

/// Grouped bars: helpfulness, hazard unsafe rate (sampled) and win rate over the start, for the start, binary DPO
/// and LLF.
pub fn bar_chart(llf: &Comparison, binary: &Comparison) -> String {
    let groups = [
        (
            "helpfulness (sampled)",
            [
                llf.sampled_before.helpfulness,
                binary.sampled_after.helpfulness,
                llf.sampled_after.helpfulness,
            ],
        ),
        (
            "hazard unsafe rate (sampled)",
            [
                llf.sampled_before.hazard_unsafe_rate,
                binary.sampled_after.hazard_unsafe_rate,
                llf.sampled_after.hazard_unsafe_rate,
            ],
        ),
        (
            "win rate over the start",
            [0.5, binary.win_rate.rate, llf.win_rate.rate],
        ),
    ];
    let names = ["SFT start", "binary DPO", "LLF"];
    let colors = ["#8a8a8a", "#2f6db5", "#d9822b"];
    let (w, h, top, bottom, left) = (720.0, 360.0, 70.0, 300.0, 60.0);
    let group_w = (w - left - 20.0) / groups.len() as f64;
    let bar_w = group_w / 4.5;
    let y = |v: f64| bottom - (bottom - top) * v.clamp(0.0, 1.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<title>LLF vs binary DPO at equal annotation budget</title>\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" \
         font-size=\"15\" font-weight=\"bold\">LLF vs binary DPO at equal annotation budget</text>\n",
        w / 2.0
    );
    for (i, (name, color)) in names.iter().zip(colors).enumerate() {
        let x = left + i as f64 * 150.0;
        svg += &format!(
            "<rect x=\"{x}\" y=\"34\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"44\">{name}</text>\n",
            x + 16.0
        );
    }
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        svg += &format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e3e3e3\"/><text x=\"{}\" y=\"{:.1}\" \
             text-anchor=\"end\">{t}</text>\n",
            w - 20.0,
            y(t),
            y(t),
            left - 6.0,
            y(t) + 4.0
        );
    }
    for (g, (label, values)) in groups.iter().enumerate() {
        let x0 = left + g as f64 * group_w + bar_w * 0.75;
        for (i, v) in values.iter().enumerate() {
            let x = x0 + i as f64 * bar_w;
            svg += &format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v:.3}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.2}</text>\n",
                y(*v),
                bar_w * 0.9,
                bottom - y(*v),
                colors[i],
                names[i],
                x + bar_w * 0.45,
                y(*v) - 3.0
            );
        }
        svg += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            x0 + 1.5 * bar_w,
            bottom + 20.0
        );
    }
    svg += "</svg>\n";
    svg
}
