//! Aligner's prompt formats. Three incompatible ones are in use, so the format is a named, versioned constant that
//! every run records in its `config.toml`:
//!
//! | name | where it comes from | input the aligner reads |
//! |---|---|---|
//! | `v1.0` | the released `aligner/aligner-7b-v1.0` | `BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more helpful and harmless: {question} \| {answer} ASSISTANT:` |
//! | `2024-12` | the Aligner repository from commit `29da040` (2024-12-11) on | `##Question: {question}\n##Answer: {answer}\n##Correction: ` inside the same `BEGINNING OF CONVERSATION` wrapper |
//! | `align-anything` | align-anything's `Aligner` format | user turn `##QUESTION: {question} ##ANSWER: {answer}`, assistant turn `##CORRECTION: {correction}`, in the model's own chat template |
//!
//! The first two fix the chat wrapper (PKU-Alignment's); the third uses whatever chat template the model was trained
//! with (`--template`). Only the correction (and the end token) is supervised in training.

use rice_lm::text::Template;

/// A named Aligner input format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignerFormat {
    pub name: &'static str,
    /// The user turn, with `{question}` and `{answer}` placeholders.
    user: &'static str,
    /// Text the assistant turn starts with before the correction itself.
    pub correction_prefix: &'static str,
    /// The chat wrapper this format always uses, if it fixes one.
    fixed_chat: Option<Template>,
}

/// The released aligner-7b-v1.0 format.
pub const V1_0: AlignerFormat = AlignerFormat {
    name: "v1.0",
    user: "Edit the following Question-Answer pair to make it more helpful and harmless: {question} | {answer}",
    correction_prefix: "",
    fixed_chat: Some(Template::Pku),
};

/// The Aligner repository's format since commit `29da040` (2024-12-11).
pub const V2024_12: AlignerFormat = AlignerFormat {
    name: "2024-12",
    user: "##Question: {question}\n##Answer: {answer}\n##Correction: ",
    correction_prefix: "",
    fixed_chat: Some(Template::Pku),
};

/// align-anything's `Aligner` format, rendered through the model's chat template.
pub const ALIGN_ANYTHING: AlignerFormat = AlignerFormat {
    name: "align-anything",
    user: "##QUESTION: {question} ##ANSWER: {answer}",
    correction_prefix: "##CORRECTION: ",
    fixed_chat: None,
};

pub const FORMATS: [AlignerFormat; 3] = [V1_0, V2024_12, ALIGN_ANYTHING];

impl AlignerFormat {
    /// The format called `name`, or an error listing the known ones.
    pub fn by_name(name: &str) -> Result<AlignerFormat, String> {
        FORMATS.into_iter().find(|f| f.name == name).ok_or_else(|| {
            let names: Vec<&str> = FORMATS.iter().map(|f| f.name).collect();
            format!(
                "unknown Aligner format `{name}`; use one of {}",
                names.join(", ")
            )
        })
    }

    /// The user turn for a question and an upstream answer.
    pub fn user(&self, question: &str, answer: &str) -> String {
        // One pass, so a question that happens to contain `{answer}` is left alone.
        let (before, after) = self
            .user
            .split_once("{question}")
            .expect("every format has a {question} slot");
        format!("{before}{question}{}", after.replace("{answer}", answer))
    }

    /// The chat template the input is wrapped in: the format's own, or `model_template` when it has none.
    pub fn chat(&self, model_template: Template) -> Template {
        self.fixed_chat.unwrap_or(model_template)
    }

    /// Everything the aligner reads before it writes the correction (the prompt, plus the correction prefix).
    pub fn prompt(&self, model_template: Template, question: &str, answer: &str) -> String {
        format!(
            "{}{}",
            self.chat(model_template)
                .prompt(&self.user(question, answer)),
            self.correction_prefix
        )
    }

    /// The supervised target: the correction and the template's end token.
    pub fn target(&self, model_template: Template, correction: &str) -> String {
        format!("{correction}{}", self.chat(model_template).end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Byte-exact renderings: a change here breaks compatibility with released checkpoints.
    #[test]
    fn v1_0_renders_the_released_models_prompt() {
        assert_eq!(
            V1_0.prompt(Template::ChatMl, "How do I boil an egg?", "Just boil it."),
            "BEGINNING OF CONVERSATION: USER: Edit the following Question-Answer pair to make it more helpful and harmless: How do I boil an egg? | Just boil it. ASSISTANT:"
        );
        assert_eq!(V1_0.target(Template::ChatMl, "Fixed."), "Fixed.</s>");
    }

    #[test]
    fn the_2024_12_format_keeps_its_markers_and_trailing_space() {
        assert_eq!(
            V2024_12.prompt(Template::Llama3, "Q?", "A."),
            "BEGINNING OF CONVERSATION: USER: ##Question: Q?\n##Answer: A.\n##Correction:  ASSISTANT:"
        );
    }

    #[test]
    fn align_anything_uses_the_models_chat_template_and_prefills_the_marker() {
        assert_eq!(
            ALIGN_ANYTHING.prompt(Template::ChatMl, "Q?", "A."),
            "<|im_start|>user\n##QUESTION: Q? ##ANSWER: A.<|im_end|>\n<|im_start|>assistant\n##CORRECTION: "
        );
        assert_eq!(
            ALIGN_ANYTHING.target(Template::ChatMl, "B."),
            "B.<|im_end|>"
        );
        assert_eq!(
            ALIGN_ANYTHING.prompt(Template::Gemma, "Q?", "A."),
            "<start_of_turn>user\n##QUESTION: Q? ##ANSWER: A.<end_of_turn>\n<start_of_turn>model\n##CORRECTION: "
        );
    }

    #[test]
    fn placeholders_in_user_text_are_not_expanded_twice() {
        assert_eq!(
            ALIGN_ANYTHING.user("what is {answer}?", "x"),
            "##QUESTION: what is {answer}? ##ANSWER: x"
        );
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = AlignerFormat::by_name("v9").unwrap_err();
        assert!(err.contains("v1.0, 2024-12, align-anything"), "{err}");
    }
}
