//! Stage 3: reinforcement learning from a reward with PPO, and Safe RLHF's PPO-Lagrangian.
//!
//! **PPO for language models** (Ouyang et al., arXiv 2203.02155; Schulman et al., arXiv 1707.06347). Each step:
//! 1. *Rollout*: sample responses to a batch of prompts from the policy (the actor).
//! 2. *Score*: a reward for each whole response — from a reward model ([`crate::reward`]) or, on the toy world,
//!    from the oracle (its helpfulness) — clipped to ±`clip_range_score` and optionally normalised.
//! 3. *Shape*: a per-token reward $r_t = -\beta_{\mathrm{KL}}(\log\pi_{\mathrm{old}}(y_t) -
//!    \log\pi_{\mathrm{ref}}(y_t))$, with the response's score added at its last token: the KL penalty keeps the
//!    policy near the frozen reference (the starting model), so it cannot drift into text the reward model was
//!    never trained on.
//! 4. *Advantages*: a value head (the critic) estimates $V_t$; GAE ([`crate::loss::gae`]) turns rewards and values
//!    into advantages $A_t$ and returns $R_t$; advantages are whitened over the batch.
//! 5. *Update*: for `ppo_epochs` passes over mini-batches, the clipped policy loss
//!    ([`crate::loss::ppo_policy_loss`]) for the actor and the clipped value loss ([`crate::loss::ppo_value_loss`])
//!    for the critic, each with its own AdamW.
//!
//! **PPO-Lagrangian** (Dai et al., "Safe RLHF", arXiv 2310.12773) adds a cost — from a cost model or the oracle,
//! cost > 0 unsafe — and the constraint $J_C = \mathbb{E}[C] \le d$. A second critic learns the cost's values; the
//! KL penalty is split evenly between reward and cost; the actor climbs $(A^R - \lambda A^C)/(1+\lambda)$; and before
//! each actor update, $\log\lambda$ takes a gradient step on [`crate::loss::lagrange_loss`], so $\lambda$ grows
//! while the episode cost is above the threshold and shrinks once it is below.
//!
//! Defaults follow safe-rlhf and align-anything (`kl_coeff` 0.02, `clip_range_ratio` 0.2, `clip_range_score` 50,
//! `clip_range_value` 5, γ 1.0, λ_GAE 0.95, actor lr 1e-5 and critic lr 5e-6 for real models); the `toy` preset
//! raises the learning rates for its tiny models. Not implemented: the PTX (pre-training mix) loss and entropy
//! bonus.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use rice_lm::checkpoint::{self, Loaded, LoadedScore};
use rice_lm::generate::{Sampling, StopReason, generate_batch};
use rice_lm::optim::{AdamW, AdamWParams, Schedule};
use rice_lm::rng::Rng;
use rice_lm::run::{RunDir, line_chart, moving_average};
use rice_lm::text::{Batch, Encoded, Tokenizer, batch, read_jsonl, token_logprobs};
use rice_lm::trainer::{self, Progress, TrainError};
use rice_lm::{CausalLm, DeviceSpec, Precision, ScoreModel};
use rice_toyworld::World;
use serde::{Deserialize, Serialize};

use crate::RunError;
use crate::loss::{gae, lagrange_loss, ppo_policy_loss, ppo_value_loss};
use crate::toy::{Comparison, answers_if, load_world};

/// Safe RLHF's constraint: keep the mean episode cost at or below `threshold`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagrangianConfig {
    /// $d$: the largest acceptable mean cost per response (cost > 0 is unsafe; the oracle's is −1 when safe).
    pub threshold: f64,
    pub lambda_init: f64,
    /// Step size of the gradient step on $\log\lambda$.
    pub lambda_lr: f64,
    /// Upper bound on λ (none if absent).
    pub lambda_max: Option<f64>,
}

impl Default for LagrangianConfig {
    fn default() -> Self {
        LagrangianConfig {
            threshold: 0.0,
            lambda_init: 1.0,
            lambda_lr: 0.1,
            lambda_max: None,
        }
    }
}

/// Every setting of a PPO run; written to the run's `config.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpoConfig {
    /// The starting policy (usually the SFT checkpoint); also the frozen reference of the KL penalty.
    pub model: PathBuf,
    /// JSONL with a `prompt` field; empty means the toy world's training prompts.
    pub prompts: Option<PathBuf>,
    /// Chat template name: plain, llama2, llama3, chatml, gemma, pku.
    pub template: String,
    /// A reward model directory; empty means the toy oracle's helpfulness (toy prompts only). The critic starts from
    /// the reward model when there is one, else from the policy with a zero head.
    pub reward_model: Option<PathBuf>,
    /// A cost model directory for PPO-Lagrangian; empty means the toy oracle's cost.
    pub cost_model: Option<PathBuf>,
    /// Present for PPO-Lagrangian (Safe RLHF).
    pub lagrangian: Option<LagrangianConfig>,
    pub world_seed: u64,
    pub world_size: String,
    pub steps: u64,
    /// Prompts per rollout.
    pub rollout_batch: usize,
    /// Rows per optimizer step within a rollout.
    pub mini_batch: usize,
    pub ppo_epochs: usize,
    pub max_new_tokens: usize,
    pub temperature: f64,
    pub kl_coeff: f64,
    pub clip_range_ratio: f64,
    pub clip_range_score: f64,
    pub clip_range_value: f64,
    pub gamma: f64,
    pub gae_lambda: f64,
    /// Standardise scores with running statistics before shaping.
    pub normalize_reward: bool,
    pub actor_lr: f64,
    pub critic_lr: f64,
    pub warmup_steps: u64,
    pub max_grad_norm: f64,
    pub optimizer: AdamWParams,
    pub log_every: u64,
    /// Checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    pub seed: u64,
    /// Where the actor, critics, reference and judges run: `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceSpec,
    /// `f32`, or `bf16` compute over f32 trained weights (the frozen reference and judges are stored in bf16).
    #[serde(default)]
    pub precision: Precision,
    pub eval_prompts_per_family: usize,
}

impl PpoConfig {
    /// The defaults of safe-rlhf / align-anything for real models, starting from `model`.
    pub fn new(model: PathBuf) -> PpoConfig {
        PpoConfig {
            model,
            prompts: None,
            template: "chatml".into(),
            reward_model: None,
            cost_model: None,
            lagrangian: None,
            world_seed: rice_toyworld::DEFAULT_SEED,
            world_size: "medium".into(),
            steps: 100,
            rollout_batch: 16,
            mini_batch: 8,
            ppo_epochs: 1,
            max_new_tokens: 128,
            temperature: 1.0,
            kl_coeff: 0.02,
            clip_range_ratio: 0.2,
            clip_range_score: 50.0,
            clip_range_value: 5.0,
            gamma: 1.0,
            gae_lambda: 0.95,
            normalize_reward: false,
            actor_lr: 1e-5,
            critic_lr: 5e-6,
            warmup_steps: 0,
            max_grad_norm: 1.0,
            optimizer: AdamWParams::default(),
            log_every: 1,
            save_every: 20,
            seed: 0,
            device: DeviceSpec::Cpu,
            precision: Precision::F32,
            eval_prompts_per_family: 24,
        }
    }

    /// The `toy` preset: the helpful-only toy SFT model, rewarded by the oracle's helpfulness (which rates a leaked
    /// recipe, 0.5, above a bare refusal, 0.4: plain PPO learns to comply with hazards); sized to finish in about a
    /// minute on 2 CPU cores. With `lagrangian`, Safe RLHF's PPO-Lagrangian with the oracle's cost.
    pub fn toy(model: PathBuf, lagrangian: bool) -> PpoConfig {
        PpoConfig {
            steps: 40,
            rollout_batch: 32,
            mini_batch: 16,
            max_new_tokens: 48,
            actor_lr: 2e-4,
            critic_lr: 1e-3,
            warmup_steps: 3,
            // With the oracle's cost (−1 safe, +0.25 per leaking sentence) a mean of −0.9 allows about one unsafe
            // answer in twelve rollouts: a third of the hazard prompts, which are a fifth of the world's.
            lagrangian: lagrangian.then(|| LagrangianConfig {
                threshold: -0.9,
                ..LagrangianConfig::default()
            }),
            ..PpoConfig::new(model)
        }
    }

    /// Rejects settings that cannot run, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(format!("`{name}` must be positive, got {v}"))
            }
        };
        positive("actor_lr", self.actor_lr)?;
        positive("critic_lr", self.critic_lr)?;
        positive("clip_range_ratio", self.clip_range_ratio)?;
        positive("clip_range_score", self.clip_range_score)?;
        positive("clip_range_value", self.clip_range_value)?;
        if self.steps == 0
            || self.rollout_batch == 0
            || self.mini_batch == 0
            || self.ppo_epochs == 0
        {
            return Err(
                "`steps`, `rollout_batch`, `mini_batch` and `ppo_epochs` must be at least 1".into(),
            );
        }
        if self.max_new_tokens == 0 {
            return Err("`max_new_tokens` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.gae_lambda) {
            return Err("`gamma` and `gae_lambda` must be in [0, 1]".into());
        }
        if self.kl_coeff < 0.0 || self.temperature < 0.0 {
            return Err("`kl_coeff` and `temperature` must be ≥ 0".into());
        }
        if let Some(l) = &self.lagrangian {
            positive("lagrangian.lambda_init", l.lambda_init)?;
            positive("lagrangian.lambda_lr", l.lambda_lr)?;
        }
        // The oracle knows only the toy world's prompts.
        if self.prompts.is_some() {
            if self.reward_model.is_none() {
                return Err(
                    "with your own prompts, pass a reward model (--reward-model DIR): the toy oracle judges only \
                     the toy world's prompts"
                        .into(),
                );
            }
            if self.lagrangian.is_some() && self.cost_model.is_none() {
                return Err(
                    "with your own prompts, pass a cost model (--cost-model DIR): the toy oracle judges only the \
                     toy world's prompts"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// What a PPO run did, for `summary.json`.
#[derive(Debug, Serialize)]
pub struct PpoSummary {
    pub method: &'static str,
    pub steps: u64,
    pub resumed_from: Option<u64>,
    pub seconds: f64,
    /// Mean score of the rollouts over the first and the last fifth of the steps (before normalisation).
    pub reward_start: f64,
    pub reward_end: f64,
    /// PPO-Lagrangian only: mean cost of the rollouts over the first and last fifth of the steps, and λ at the end.
    pub cost_start: Option<f64>,
    pub cost_end: Option<f64>,
    pub lambda_end: Option<f64>,
    /// Mean KL(π‖π_ref) per response over the last fifth of the steps.
    pub kl_end: f64,
    /// The final policy against the starting one on held-out toy prompts, judged by the oracle (absent with
    /// `--prompts`).
    pub toy: Option<Comparison>,
    pub checkpoint: PathBuf,
}

/// Running mean and variance (Welford), for reward normalisation; saved with the checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunningStats {
    count: f64,
    mean: f64,
    m2: f64,
}

impl RunningStats {
    fn push(&mut self, x: f64) {
        self.count += 1.0;
        let d = x - self.mean;
        self.mean += d / self.count;
        self.m2 += d * (x - self.mean);
    }

    fn std(&self) -> f64 {
        if self.count < 2.0 {
            1.0
        } else {
            (self.m2 / (self.count - 1.0)).sqrt().max(1e-6)
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PpoState {
    step: u64,
    /// Optimizer updates so far (several per step: one per mini-batch and epoch), for AdamW's bias correction.
    updates: u64,
    log_lambda: f64,
    reward_stats: RunningStats,
    cost_stats: RunningStats,
}

/// The judge of a response: a score model, or the toy world's oracle.
enum Judge<'a> {
    Model(Box<LoadedScore>),
    Oracle(&'a World, fn(&rice_toyworld::Score) -> f64),
}

impl Judge<'_> {
    fn score(
        &self,
        b: &Batch,
        prompts: &[&str],
        texts: &[String],
    ) -> candle_core::Result<Vec<f64>> {
        match self {
            Judge::Model(m) => Ok(m
                .model
                .forward(&b.ids, Some(&b.padding))?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f64::from)
                .collect()),
            Judge::Oracle(world, pick) => Ok(prompts
                .iter()
                .zip(texts)
                .map(|(p, t)| pick(&world.score(p, t.trim())))
                .collect()),
        }
    }
}

/// A critic: a value head on a backbone, with its optimizer.
struct Critic {
    loaded: LoadedScore,
    opt: AdamW,
    name: &'static str,
}

/// One mini-batch of a rollout with everything the update needs; per-token tensors are (rows, seq − 1).
struct Chunk {
    b: Batch,
    mask: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    /// Per critic: old values and returns.
    targets: Vec<(Tensor, Tensor)>,
}

pub fn run(cfg: &PpoConfig, run_dir: &Path, resume: bool) -> Result<PpoSummary, RunError> {
    cfg.validate().map_err(RunError::Usage)?;
    let template = crate::template(&cfg.template)?;
    let lagrangian = cfg.lagrangian.clone();
    let method = if lagrangian.is_some() {
        "safe-rlhf"
    } else {
        "ppo"
    };
    let dir = RunDir::create(run_dir)?;
    dir.write_config(cfg)?;
    let device = cfg.device.open().map_err(TrainError::from)?;
    let frozen = cfg.precision.dtype();
    let tokenizer_path = cfg.model.join("tokenizer.json");
    let tok = Tokenizer::load(&tokenizer_path)?;
    let actor: Loaded =
        checkpoint::load(&cfg.model, DType::F32, &device)?.with_precision(cfg.precision);
    checkpoint::check_tokenizer(actor.model.config(), &tok, &tokenizer_path)?;
    let reference: Loaded = checkpoint::load(&cfg.model, frozen, &device)?;

    let toy = cfg
        .prompts
        .is_none()
        .then(|| load_world(cfg.world_seed, &cfg.world_size))
        .transpose()?;
    let prompts: Vec<String> = match (&cfg.prompts, &toy) {
        (Some(path), _) => {
            #[derive(Deserialize)]
            struct Prompt {
                prompt: String,
            }
            read_jsonl::<Prompt>(path)?
                .into_iter()
                .map(|p| p.prompt)
                .collect()
        }
        (None, Some((_, data))) => data.sft.iter().map(|r| r.row.prompt.clone()).collect(),
        (None, None) => unreachable!("toy data exists when no file is given"),
    };
    let prompt_ids = prompts
        .iter()
        .map(|p| tok.encode(&template.prompt(p)))
        .collect::<Result<Vec<_>, _>>()?;

    let oracle_needed = |what: &str| {
        RunError::Usage(format!(
            "no {what} model given, and the toy oracle can only judge the toy world's prompts: pass --{what}-model DIR"
        ))
    };
    let reward = match (&cfg.reward_model, &toy) {
        (Some(dir), _) => Judge::Model(Box::new(checkpoint::load_score(dir, frozen, &device)?)),
        (None, Some((world, _))) => Judge::Oracle(world, |s| f64::from(s.helpfulness)),
        (None, None) => return Err(oracle_needed("reward")),
    };
    let cost = match (&lagrangian, &cfg.cost_model, &toy) {
        (None, _, _) => None,
        (Some(_), Some(dir), _) => Some(Judge::Model(Box::new(checkpoint::load_score(
            dir, frozen, &device,
        )?))),
        (Some(_), None, Some((world, _))) => Some(Judge::Oracle(world, |s| f64::from(s.cost))),
        (Some(_), None, None) => return Err(oracle_needed("cost")),
    };
    // safe-rlhf starts each critic from its score model; without one, from the policy with a zero head.
    let critic_start = |m: &Option<PathBuf>| m.clone().unwrap_or_else(|| cfg.model.clone());
    let critic = |start: &Option<PathBuf>, name: &'static str| -> Result<Critic, RunError> {
        let loaded = checkpoint::load_score(&critic_start(start), DType::F32, &device)?
            .with_precision(cfg.precision);
        let opt = AdamW::new(&loaded.vars, cfg.optimizer.clone())?;
        Ok(Critic { loaded, opt, name })
    };
    let mut critics = vec![critic(&cfg.reward_model, "critic")?];
    if lagrangian.is_some() {
        critics.push(critic(&cfg.cost_model, "cost_critic")?);
    }
    let mut actor_opt = AdamW::new(&actor.vars, cfg.optimizer.clone())?;
    let log_lambda = Var::new(
        lagrangian.as_ref().map_or(0.0, |l| l.lambda_init.ln()) as f32,
        &device,
    )?;

    // `actor` holds the starting weights until a checkpoint is loaded below.
    let answers = |model: &CausalLm| {
        answers_if(
            toy.as_ref(),
            model,
            &tok,
            cfg.eval_prompts_per_family,
            cfg.max_new_tokens,
        )
    };
    let start_answers = answers(&actor.model)?;

    let ckpt = trainer::checkpoint_dir(run_dir);
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut start = 0;
    let mut reward_stats = RunningStats::default();
    let mut cost_stats = RunningStats::default();
    if resume {
        trainer::recover_dir(&ckpt)?;
    }
    if resume && ckpt.join("ppo_state.json").is_file() {
        let text = std::fs::read_to_string(ckpt.join("ppo_state.json")).map_err(|source| {
            RunError::Train(TrainError::Io {
                path: ckpt.join("ppo_state.json"),
                source,
            })
        })?;
        let state: PpoState = serde_json::from_str(&text).map_err(|e| {
            RunError::Usage(format!("{}: {e}", ckpt.join("ppo_state.json").display()))
        })?;
        trainer::load_into(&ckpt, &actor.vars)?;
        let load = |name: &str| candle_core::safetensors::load(ckpt.join(name), &device);
        actor_opt.restore(&load("optimizer_actor.safetensors")?, state.updates)?;
        for c in &mut critics {
            trainer::load_into(&ckpt.join(c.name), &c.loaded.vars)?;
            c.opt.restore(
                &load(&format!("optimizer_{}.safetensors", c.name))?,
                state.updates,
            )?;
        }
        log_lambda.set(&Tensor::new(state.log_lambda as f32, &device)?)?;
        reward_stats = state.reward_stats;
        cost_stats = state.cost_stats;
        start = state.step;
        trainer::truncate_metrics(&metrics_path, start)?;
    } else if metrics_path.exists() {
        std::fs::remove_file(&metrics_path).map_err(|source| {
            RunError::Train(TrainError::Io {
                path: metrics_path.clone(),
                source,
            })
        })?;
    }
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|source| {
            RunError::Train(TrainError::Io {
                path: metrics_path.clone(),
                source,
            })
        })?;

    let schedule = |lr: f64| Schedule {
        lr,
        warmup: cfg.warmup_steps,
        total: cfg.steps,
        min_ratio: 1.0,
    };
    let max_len = prompt_ids.iter().map(Vec::len).max().unwrap_or(1) + cfg.max_new_tokens + 1;
    let started = Instant::now();
    let progress = Progress::new(cfg.steps);
    let mut tokens_seen = 0usize;
    for step in start..cfg.steps {
        // 1. Rollout.
        let mut rng = Rng::derive(cfg.seed, &format!("ppo-prompts-{step}"));
        let picks: Vec<usize> = (0..cfg.rollout_batch)
            .map(|_| rng.below(prompt_ids.len()))
            .collect();
        let batch_prompts: Vec<Vec<u32>> = picks.iter().map(|&i| prompt_ids[i].clone()).collect();
        let sampling = Sampling {
            temperature: cfg.temperature,
            max_new_tokens: cfg.max_new_tokens,
            seed: cfg.seed.wrapping_mul(0x9e37_79b9).wrapping_add(step),
            ..Sampling::default()
        };
        let generated = generate_batch(&actor.model, &tok, &batch_prompts, &sampling, &[])?;
        let items: Vec<Encoded> = generated
            .iter()
            .zip(&batch_prompts)
            .map(|(g, p)| {
                let mut response = g.ids.clone();
                // The end-of-sequence token was the policy's last action: it is part of the response.
                if g.stop == StopReason::EndOfSequence || response.is_empty() {
                    response.push(tok.eos_id);
                }
                Encoded {
                    prompt: p.clone(),
                    response,
                }
            })
            .collect();
        let texts: Vec<String> = generated.iter().map(|g| g.text.clone()).collect();
        let prompt_texts: Vec<&str> = picks.iter().map(|&i| prompts[i].as_str()).collect();

        // 2. Score (on the whole batch at once).
        let full = batch(&items, tok.pad_id, max_len, &device)?;
        tokens_seen += full.tokens;
        let clip_score = |x: f64| x.clamp(-cfg.clip_range_score, cfg.clip_range_score);
        let rewards: Vec<f64> = reward
            .score(&full, &prompt_texts, &texts)?
            .into_iter()
            .map(clip_score)
            .collect();
        let costs: Option<Vec<f64>> = match &cost {
            Some(j) => Some(
                j.score(&full, &prompt_texts, &texts)?
                    .into_iter()
                    .map(clip_score)
                    .collect(),
            ),
            None => None,
        };
        let mut row = serde_json::json!({ "step": step + 1 });
        row["reward"] = serde_json::json!(mean(&rewards));
        if let Some((world, _)) = &toy {
            let scores: Vec<_> = prompt_texts
                .iter()
                .zip(&texts)
                .map(|(p, t)| world.score(p, t.trim()))
                .collect();
            row["oracle_helpfulness"] = serde_json::json!(mean(
                &scores
                    .iter()
                    .map(|s| f64::from(s.helpfulness))
                    .collect::<Vec<_>>()
            ));
            row["oracle_unsafe_rate"] = serde_json::json!(
                scores.iter().filter(|s| s.is_unsafe).count() as f64 / scores.len().max(1) as f64
            );
        }
        let shaped_rewards: Vec<f64> = if cfg.normalize_reward {
            rewards.iter().for_each(|&r| reward_stats.push(r));
            rewards
                .iter()
                .map(|r| (r - reward_stats.mean) / reward_stats.std())
                .collect()
        } else {
            rewards.clone()
        };
        let shaped_costs: Option<Vec<f64>> = costs.as_ref().map(|c| {
            if cfg.normalize_reward {
                c.iter().for_each(|&x| cost_stats.push(x));
                // Costs are scaled but not centred: their sign (safe or not) must survive.
                c.iter().map(|x| x / cost_stats.std()).collect()
            } else {
                c.clone()
            }
        });

        // Lagrange multiplier: one gradient step on log λ from this rollout's episode cost, before the actor update.
        if let (Some(l), Some(c)) = (&lagrangian, &costs) {
            row["cost"] = serde_json::json!(mean(c));
            row["cost_unsafe_share"] = serde_json::json!(
                c.iter().filter(|&&x| x > 0.0).count() as f64 / c.len().max(1) as f64
            );
            let loss = lagrange_loss(log_lambda.as_tensor(), mean(c), l.threshold)?;
            let grads = loss.backward()?;
            if let Some(g) = grads.get(log_lambda.as_tensor()) {
                let mut next = (log_lambda.as_tensor() - (g * l.lambda_lr)?)?;
                if let Some(max) = l.lambda_max {
                    next = next.minimum(max.ln() as f32)?;
                }
                log_lambda.set(&next)?;
            }
        }
        let lambda = f64::from(log_lambda.as_tensor().exp()?.to_scalar::<f32>()?);
        if lagrangian.is_some() {
            row["lambda"] = serde_json::json!(lambda);
        }

        // 3–4. Old log-probs, reference log-probs, values; shaped rewards; GAE — per mini-batch of rows.
        let mut chunks = Vec::new();
        let (mut kl_sum, mut length_sum) = (0.0, 0.0);
        // Per chunk: its index, the actor's advantages and the response mask, as rows.
        let mut all_advantages: Vec<(usize, Rows, Rows)> = Vec::new();
        for (c, rows) in (0..items.len())
            .collect::<Vec<_>>()
            .chunks(cfg.mini_batch)
            .enumerate()
        {
            let chunk_items: Vec<Encoded> = rows.iter().map(|&i| items[i].clone()).collect();
            let b = batch(&chunk_items, tok.pad_id, max_len, &device)?;
            let old_logp =
                token_logprobs(&actor.model.forward(&b.ids, Some(&b.padding))?, &b.ids)?.detach();
            let ref_logp =
                token_logprobs(&reference.model.forward(&b.ids, Some(&b.padding))?, &b.ids)?
                    .detach();
            let mask = b.response_mask.clone();
            let mask_v = mask.to_vec2::<f32>()?;
            let old_v = old_logp.to_vec2::<f32>()?;
            let ref_v = ref_logp.to_vec2::<f32>()?;
            let kl_share = if lagrangian.is_some() { 0.5 } else { 1.0 };
            let mut targets = Vec::new();
            let mut per_critic_adv = Vec::new();
            for (k, critic) in critics.iter().enumerate() {
                let values = values_of(&critic.loaded.model, &b)?.detach();
                let values_v = values.to_vec2::<f32>()?;
                let mut adv = vec![vec![0f32; values_v[0].len()]; rows.len()];
                let mut ret = adv.clone();
                for (r, &i) in rows.iter().enumerate() {
                    let positions: Vec<usize> = (0..mask_v[r].len())
                        .filter(|&j| mask_v[r][j] > 0.0)
                        .collect();
                    if positions.is_empty() {
                        continue;
                    }
                    // The reward critic gets −β·KL, the cost critic +β·KL (each half of it under the Lagrangian).
                    let sign = if k == 0 { -1.0 } else { 1.0 };
                    let mut per_token: Vec<f32> = positions
                        .iter()
                        .map(|&j| {
                            (sign * kl_share * cfg.kl_coeff * f64::from(old_v[r][j] - ref_v[r][j]))
                                as f32
                        })
                        .collect();
                    let score = if k == 0 {
                        shaped_rewards[i]
                    } else {
                        shaped_costs.as_ref().expect("a cost critic has costs")[i]
                    };
                    *per_token.last_mut().expect("non-empty") += score as f32;
                    let vals: Vec<f32> = positions.iter().map(|&j| values_v[r][j]).collect();
                    let (a, rt) = gae(&per_token, &vals, cfg.gamma as f32, cfg.gae_lambda as f32);
                    for (n, &j) in positions.iter().enumerate() {
                        adv[r][j] = a[n];
                        ret[r][j] = rt[n];
                    }
                    if k == 0 {
                        kl_sum += positions
                            .iter()
                            .map(|&j| f64::from(old_v[r][j] - ref_v[r][j]))
                            .sum::<f64>();
                        length_sum += positions.len() as f64;
                    }
                }
                targets.push((values, Tensor::new(ret, &device)?.to_dtype(DType::F32)?));
                per_critic_adv.push(adv);
            }
            // The actor's advantage: A^R, or (A^R − λ A^C) / (1 + λ) under the Lagrangian.
            let combined: Vec<Vec<f32>> = if per_critic_adv.len() == 2 {
                per_critic_adv[0]
                    .iter()
                    .zip(&per_critic_adv[1])
                    .map(|(ar, ac)| {
                        ar.iter()
                            .zip(ac)
                            .map(|(r, c)| {
                                ((f64::from(*r) - lambda * f64::from(*c)) / (1.0 + lambda)) as f32
                            })
                            .collect()
                    })
                    .collect()
            } else {
                per_critic_adv.swap_remove(0)
            };
            all_advantages.push((c, combined, mask_v));
            chunks.push(Chunk {
                b,
                mask,
                old_logp,
                advantages: Tensor::zeros(1, DType::F32, &device)?,
                targets,
            });
        }
        // Whiten the advantages over the whole rollout (masked), then hand them to their chunks.
        let counted: Vec<f32> = all_advantages
            .iter()
            .flat_map(|(_, a, m)| {
                a.iter().zip(m).flat_map(|(ar, mr)| {
                    ar.iter()
                        .zip(mr)
                        .filter(|(_, m)| **m > 0.0)
                        .map(|(a, _)| *a)
                })
            })
            .collect();
        let n = counted.len().max(1) as f32;
        let mu = counted.iter().sum::<f32>() / n;
        let sd = (counted.iter().map(|a| (a - mu).powi(2)).sum::<f32>() / n)
            .sqrt()
            .max(1e-6);
        for (c, a, m) in all_advantages {
            let whitened: Vec<Vec<f32>> = a
                .iter()
                .zip(&m)
                .map(|(ar, mr)| {
                    ar.iter()
                        .zip(mr)
                        .map(|(a, m)| if *m > 0.0 { (a - mu) / sd } else { 0.0 })
                        .collect()
                })
                .collect();
            chunks[c].advantages = Tensor::new(whitened, &device)?;
        }

        // 5. Update the actor and the critics on every mini-batch, `ppo_epochs` times.
        let (mut actor_loss_sum, mut critic_loss_sum, mut updates) =
            (0.0, vec![0.0; critics.len()], 0.0);
        for _ in 0..cfg.ppo_epochs {
            for chunk in &chunks {
                let logits = actor.model.forward(&chunk.b.ids, Some(&chunk.b.padding))?;
                let logp = token_logprobs(&logits, &chunk.b.ids)?;
                let loss = ppo_policy_loss(
                    &logp,
                    &chunk.old_logp,
                    &chunk.advantages,
                    &chunk.mask,
                    cfg.clip_range_ratio,
                )?;
                let value = f64::from(loss.to_scalar::<f32>()?);
                // Stop before a non-finite loss reaches the weights: the last checkpoint stays good.
                if !value.is_finite() {
                    return Err(RunError::Train(TrainError::NonFinite {
                        step,
                        value,
                        lr: schedule(cfg.actor_lr).at(step),
                        kept: format!("The last checkpoint is kept in {}.", ckpt.display()),
                    }));
                }
                actor_loss_sum += value;
                step_optimizer(
                    &mut actor_opt,
                    &loss,
                    schedule(cfg.actor_lr).at(step),
                    cfg.max_grad_norm,
                )?;
                for (k, critic) in critics.iter_mut().enumerate() {
                    let values = values_of(&critic.loaded.model, &chunk.b)?;
                    let (old_values, returns) = &chunk.targets[k];
                    let loss = ppo_value_loss(
                        &values,
                        old_values,
                        returns,
                        &chunk.mask,
                        cfg.clip_range_value,
                    )?;
                    critic_loss_sum[k] += f64::from(loss.to_scalar::<f32>()?);
                    step_optimizer(
                        &mut critic.opt,
                        &loss,
                        schedule(cfg.critic_lr).at(step),
                        cfg.max_grad_norm,
                    )?;
                }
                updates += 1.0;
            }
        }
        let actor_loss = actor_loss_sum / updates;
        let done = step + 1;
        row["actor_loss"] = serde_json::json!(actor_loss);
        for (k, critic) in critics.iter().enumerate() {
            row[format!("{}_loss", critic.name)] = serde_json::json!(critic_loss_sum[k] / updates);
        }
        row["kl"] = serde_json::json!(kl_sum / items.len() as f64);
        row["response_length"] = serde_json::json!(length_sum / items.len() as f64);
        if done.is_multiple_of(cfg.log_every.max(1)) || done == cfg.steps || step == start {
            writeln!(metrics_file, "{row}")
                .and_then(|_| metrics_file.flush())
                .map_err(|source| {
                    RunError::Train(TrainError::Io {
                        path: metrics_path.clone(),
                        source,
                    })
                })?;
        }
        let elapsed = started.elapsed().as_secs_f64();
        progress.show(
            done,
            mean(&rewards),
            tokens_seen as f64 / elapsed.max(1e-9),
            elapsed,
            start,
        );
        if (cfg.save_every > 0 && done.is_multiple_of(cfg.save_every)) || done == cfg.steps {
            let state = PpoState {
                step: done,
                updates: actor_opt.step,
                log_lambda: f64::from(log_lambda.as_tensor().to_scalar::<f32>()?),
                reward_stats: reward_stats.clone(),
                cost_stats: cost_stats.clone(),
            };
            trainer::replace_dir_atomically(&ckpt, |tmp| {
                checkpoint::save(
                    tmp,
                    actor.model.config(),
                    &actor.vars,
                    Some(&tokenizer_path),
                )?;
                candle_core::safetensors::save(
                    &actor_opt.state(),
                    tmp.join("optimizer_actor.safetensors"),
                )?;
                for c in &critics {
                    checkpoint::save_score(
                        &tmp.join(c.name),
                        c.loaded.model.config(),
                        &c.loaded.vars,
                        None,
                    )?;
                    candle_core::safetensors::save(
                        &c.opt.state(),
                        tmp.join(format!("optimizer_{}.safetensors", c.name)),
                    )?;
                }
                let json = serde_json::to_vec_pretty(&state).expect("state serialises");
                std::fs::write(tmp.join("ppo_state.json"), json).map_err(|source| TrainError::Io {
                    path: tmp.to_owned(),
                    source,
                })
            })?;
        }
    }
    progress.finish();

    let end_answers = answers(&actor.model)?;
    let comparison = match (&start_answers, &end_answers) {
        (Some(b), Some(a)) => Some(Comparison::new(b, a)),
        _ => None,
    };
    let fifth = |key: &str, last: bool| -> Option<f64> {
        let series = dir.metric(key);
        if series.is_empty() {
            return None;
        }
        let k = (series.len() / 5).max(1);
        let part = if last {
            &series[series.len() - k..]
        } else {
            &series[..k]
        };
        Some(part.iter().map(|(_, v)| v).sum::<f64>() / part.len() as f64)
    };
    let title = if lagrangian.is_some() {
        "Safe RLHF (PPO-Lagrangian)"
    } else {
        "PPO"
    };
    // Rollout metrics are noisy (a few dozen responses a step): plotted as 5-step moving averages.
    let smooth = |key: &str| moving_average(&dir.metric(key), 5);
    let mut reward_series = vec![(
        if cfg.reward_model.is_some() {
            "reward model score"
        } else {
            "reward (oracle helpfulness)"
        },
        smooth("reward"),
    )];
    if toy.is_some() {
        if cfg.reward_model.is_some() {
            reward_series.push(("oracle helpfulness", smooth("oracle_helpfulness")));
        }
        reward_series.push(("oracle unsafe rate", smooth("oracle_unsafe_rate")));
    }
    dir.write_plot(
        "reward",
        &line_chart(
            &format!("{title}: rollouts (5-step means)"),
            "step",
            "mean per response",
            &reward_series,
        ),
    )?;
    dir.write_plot(
        "kl",
        &line_chart(
            &format!("{title}: KL to the reference"),
            "step",
            "nats per response",
            &[("KL", dir.metric("kl"))],
        ),
    )?;
    let mut loss_series = vec![("actor", dir.metric("actor_loss"))];
    for c in &critics {
        loss_series.push((c.name, dir.metric(&format!("{}_loss", c.name))));
    }
    dir.write_plot(
        "loss",
        &line_chart(&format!("{title}: losses"), "step", "loss", &loss_series),
    )?;
    if let Some(l) = &lagrangian {
        let threshold: Vec<(f64, f64)> = dir
            .metric("cost")
            .iter()
            .map(|(s, _)| (*s, l.threshold))
            .collect();
        dir.write_plot(
            "lambda",
            &line_chart(
                "Safe RLHF: the Lagrange multiplier",
                "step",
                "λ",
                &[("λ", dir.metric("lambda"))],
            ),
        )?;
        dir.write_plot(
            "cost",
            &line_chart(
                "Safe RLHF: episode cost against the threshold",
                "step",
                "mean cost per response (> 0 unsafe)",
                &[
                    ("episode cost (5-step mean)", smooth("cost")),
                    ("threshold", threshold),
                ],
            ),
        )?;
    }
    let summary = PpoSummary {
        method,
        steps: cfg.steps,
        resumed_from: (start > 0).then_some(start),
        seconds: started.elapsed().as_secs_f64(),
        reward_start: fifth("reward", false).unwrap_or(f64::NAN),
        reward_end: fifth("reward", true).unwrap_or(f64::NAN),
        cost_start: fifth("cost", false),
        cost_end: fifth("cost", true),
        lambda_end: lagrangian.as_ref().map(|_| lambda_now(&log_lambda)),
        kl_end: fifth("kl", true).unwrap_or(f64::NAN),
        toy: comparison,
        checkpoint: ckpt,
    };
    dir.write_summary(&summary)?;
    Ok(summary)
}

/// Per-token values of a chunk, one row per response.
type Rows = Vec<Vec<f32>>;

fn lambda_now(log_lambda: &Var) -> f64 {
    log_lambda
        .as_tensor()
        .exp()
        .and_then(|t| t.to_scalar::<f32>())
        .map_or(f64::NAN, f64::from)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// The critic's value for each position that predicts a next token: (rows, seq − 1).
fn values_of(model: &ScoreModel, b: &Batch) -> candle_core::Result<Tensor> {
    let all = model.forward_all(&b.ids, Some(&b.padding))?;
    let t = all.dim(1)?;
    all.narrow(1, 0, t - 1)
}

/// Backpropagates `loss` and takes one AdamW step with the gradient norm clipped to `max_norm`.
fn step_optimizer(
    opt: &mut AdamW,
    loss: &Tensor,
    lr: f64,
    max_norm: f64,
) -> candle_core::Result<()> {
    let grads = loss.backward()?;
    let norm = opt.grad_norm(&grads)?;
    let scale = if max_norm > 0.0 && norm > max_norm {
        max_norm / norm
    } else {
        1.0
    };
    opt.update(&grads, lr, scale)
}
