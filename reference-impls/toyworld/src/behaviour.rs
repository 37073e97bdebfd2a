//! Rule-based writers of responses with known properties: the "base" model that pre-training imitates, the
//! "aligned" model that SFT imitates, and anything in between.
//!
//! A [`Behaviour`] is a set of defect rates. `aligned` has none, `base` has the pre-training distribution's, and
//! [`Behaviour::mixture`] interpolates, which is how preference pairs of graded difficulty are made.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::world::{Family, Item, Task, World, pick};

/// Probabilities of each defect, per response (the arithmetic slip is one wrong step per slipped answer).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    /// Give the recipe for a hazard instead of refusing.
    pub hazard_comply: f64,
    /// Refuse a harmless look-alike request.
    pub over_refuse: f64,
    /// Get one step of a word problem wrong (the error carries through to the final answer).
    pub arith_slip: f64,
    /// Name a wrong value in a fact answer.
    pub fact_error: f64,
    /// Add one or two off-topic sentences.
    pub ramble: f64,
    /// Phrase the answer rudely.
    pub rude: f64,
}

impl Behaviour {
    /// The pre-training distribution: complies with hazards, slips, misremembers, rambles, is sometimes rude.
    pub const fn base() -> Behaviour {
        Behaviour {
            hazard_comply: 0.9,
            over_refuse: 0.0,
            arith_slip: 0.3,
            fact_error: 0.3,
            ramble: 0.25,
            rude: 0.2,
        }
    }

    /// Correct, concise, polite; refuses hazards and helps with look-alikes: the ideal answer every time.
    pub const fn aligned() -> Behaviour {
        Behaviour {
            hazard_comply: 0.0,
            over_refuse: 0.0,
            arith_slip: 0.0,
            fact_error: 0.0,
            ramble: 0.0,
            rude: 0.0,
        }
    }

    /// Aligned, except that it refuses every look-alike: safe and unhelpful.
    pub const fn over_cautious() -> Behaviour {
        Behaviour {
            over_refuse: 1.0,
            ..Behaviour::aligned()
        }
    }

    /// Each rate moved linearly from `a` (t = 0) to `b` (t = 1); `t` is clamped to [0, 1].
    pub fn mixture(a: &Behaviour, b: &Behaviour, t: f64) -> Behaviour {
        let t = t.clamp(0.0, 1.0);
        let lerp = |x: f64, y: f64| x + (y - x) * t;
        Behaviour {
            hazard_comply: lerp(a.hazard_comply, b.hazard_comply),
            over_refuse: lerp(a.over_refuse, b.over_refuse),
            arith_slip: lerp(a.arith_slip, b.arith_slip),
            fact_error: lerp(a.fact_error, b.fact_error),
            ramble: lerp(a.ramble, b.ramble),
            rude: lerp(a.rude, b.rude),
        }
    }

    /// Writes one response to `item`. Every random draw is made whatever the rates, so two behaviours given the
    /// same RNG state differ only where their rates do.
    pub fn respond(&self, world: &World, item: &Item, rng: &mut impl Rng) -> Response {
        let ideal = world.ideal_sentences(item);
        let defect = |rate: f64, rng: &mut dyn rand::RngCore| rng.random::<f64>() < rate;
        let mut core = ideal.clone();
        match &item.task {
            Task::Arith { .. } => {
                let slip = defect(self.arith_slip, rng);
                let at = pick(rng, item.task.arith_steps().len().max(1));
                let by = 1 + pick(rng, 3) as i64;
                if slip {
                    core = slipped_arith(item, at, by);
                }
            }
            Task::Fact { kind, answer, .. } => {
                let wrong = defect(self.fact_error, rng);
                let values = world.facts.values(*kind);
                let other = &values[pick(rng, values.len())];
                if wrong {
                    // Any other value of the same kind; the next one along if the draw hit the right answer.
                    let other = if other == answer {
                        let i = values.iter().position(|v| v == answer).unwrap_or(0);
                        &values[(i + 1) % values.len()]
                    } else {
                        other
                    };
                    core = core.iter().map(|s| s.replace(answer, other)).collect();
                }
            }
            Task::Hazard { hazard } => {
                if defect(self.hazard_comply, rng) {
                    let h = &world.hazards[*hazard];
                    core = vec![
                        format!("Sure, here is how to {} {}.", h.act, h.substance),
                        format!("First, grind the {} into a fine dust.", h.reagents[0]),
                        format!(
                            "Then mix it with the {} and the {} in a clay pot.",
                            h.reagents[1], h.substance
                        ),
                        "Finally, warm the pot until it starts to hum.".to_string(),
                    ];
                }
            }
            Task::Lookalike { verb, .. } => {
                if defect(self.over_refuse, rng) {
                    core = vec![format!(
                        "I can't help with requests to {verb} things, because they might be dangerous."
                    )];
                }
            }
        }
        let mut sentences: Vec<ResponseSentence> = core
            .into_iter()
            .enumerate()
            .map(|(i, text)| ResponseSentence {
                text,
                ideal_index: (i < ideal.len()).then_some(i),
            })
            .collect();

        let rude = defect(self.rude, rng);
        let ramble = defect(self.ramble, rng);
        let ramble_count = 1 + pick(rng, 2);
        let ramble_at = pick(rng, sentences.len() + 1);
        let ramble_pick = pick(rng, RAMBLES.len());
        if ramble {
            for k in 0..ramble_count {
                sentences.insert(
                    ramble_at + k,
                    extra(RAMBLES[(ramble_pick + k) % RAMBLES.len()]),
                );
            }
        }
        if rude {
            if item.family == Family::Tone {
                // Same content, rude frame: the tone family's polite opener becomes a rude one.
                if let Some(first) = sentences.iter_mut().find(|s| s.ideal_index == Some(0)) {
                    first.text = "Ugh, fine.".to_string();
                }
            } else {
                sentences.insert(0, extra("Ugh, obviously."));
            }
            sentences.push(extra("Figure it out yourself next time."));
        }
        Response { sentences }
    }
}

/// Off-topic sentences: no names, numbers, refusals or rude words, so they change only length and validity.
const RAMBLES: [&str; 5] = [
    "By the way, I have always liked quiet mornings.",
    "Anyway, that reminds me of a long story about my cousin.",
    "Some people say that every question hides another question.",
    "I once spent a whole afternoon thinking about clouds.",
    "It is funny how the mind wanders sometimes.",
];

fn extra(text: &str) -> ResponseSentence {
    ResponseSentence {
        text: text.to_string(),
        ideal_index: None,
    }
}

/// The ideal arithmetic answer with step `at` off by `by`, carried through the later steps.
fn slipped_arith(item: &Item, at: usize, by: i64) -> Vec<String> {
    let steps = item.task.arith_steps();
    let mut out = Vec::new();
    let mut total = steps.first().map_or(0, |s| s.0);
    for (i, &(_, op, b, _)) in steps.iter().enumerate() {
        let mut next = op.apply(total, b);
        if i == at {
            next += by;
        }
        out.push(format!("{total} {} {b} = {next}.", op.symbol()));
        total = next;
    }
    out.push(format!("The answer is {total}."));
    out
}

/// A response as sentences, each tied to the ideal sentence it stands in for (`None` for additions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub sentences: Vec<ResponseSentence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSentence {
    pub text: String,
    /// Which sentence of the ideal answer this one takes the place of, if any.
    pub ideal_index: Option<usize>,
}

impl Response {
    /// The response as one string, sentences separated by single spaces.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.sentences.iter().map(|s| s.text.as_str()).collect();
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Size;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn aligned_writes_the_ideal_answer() {
        let world = World::generate(5, Size::Small);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for item in &world.items {
            let r = Behaviour::aligned().respond(&world, item, &mut rng);
            assert_eq!(r.text(), world.ideal(item));
        }
    }

    #[test]
    fn mixture_interpolates() {
        let m = Behaviour::mixture(&Behaviour::base(), &Behaviour::aligned(), 0.5);
        assert!((m.hazard_comply - 0.45).abs() < 1e-12);
        assert_eq!(
            Behaviour::mixture(&Behaviour::base(), &Behaviour::aligned(), 7.0),
            Behaviour::aligned()
        );
    }
}
