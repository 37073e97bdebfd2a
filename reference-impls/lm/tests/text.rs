//! Batching and masks, log-probabilities, dataset readers' errors, chat templates.

use candle_core::{DType, Device, Tensor};
use rice_lm::text::{
    Encoded, PreferencePair, SafetyPair, Template, batch, parse_jsonl, parse_sft, read_jsonl,
    read_sft, response_nll, sequence_logprobs, token_logprobs,
};
use rice_lm::{checkpoint, tiny_config};

#[test]
fn batches_pad_right_and_mask_only_response_tokens() {
    let items = [
        Encoded {
            prompt: vec![1, 2, 3],
            response: vec![4, 5],
        },
        Encoded {
            prompt: vec![6],
            response: vec![7, 8, 9],
        },
    ];
    let b = batch(&items, 0, 16, &Device::Cpu).unwrap();
    assert_eq!(
        b.ids.to_vec2::<u32>().unwrap(),
        vec![vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9, 0]]
    );
    assert_eq!(
        b.padding.to_vec2::<u8>().unwrap(),
        vec![vec![1, 1, 1, 1, 1], vec![1, 1, 1, 1, 0]]
    );
    // Position j predicts token j + 1; only response tokens count.
    assert_eq!(
        b.response_mask.to_vec2::<f32>().unwrap(),
        vec![vec![0., 0., 1., 1.], vec![1., 1., 1., 0.]]
    );
    assert_eq!(b.tokens, 5);
}

#[test]
fn long_examples_lose_the_start_of_the_prompt_first() {
    let items = [Encoded {
        prompt: vec![1, 2, 3, 4, 5, 6],
        response: vec![7, 8],
    }];
    let b = batch(&items, 0, 5, &Device::Cpu).unwrap();
    assert_eq!(b.ids.to_vec2::<u32>().unwrap(), vec![vec![4, 5, 6, 7, 8]]);
    assert_eq!(b.tokens, 2);
}

#[test]
fn log_probabilities_are_normalised_and_losses_agree() {
    let device = Device::Cpu;
    let loaded = checkpoint::init(&tiny_config(20), DType::F32, &device, 3).unwrap();
    let items = [
        Encoded {
            prompt: vec![1, 2],
            response: vec![3, 4, 5],
        },
        Encoded {
            prompt: vec![6, 7, 8],
            response: vec![9],
        },
    ];
    let b = batch(&items, 0, 16, &device).unwrap();
    let logits = loaded.model.forward(&b.ids, Some(&b.padding)).unwrap();
    let lp = token_logprobs(&logits, &b.ids).unwrap();
    assert_eq!(lp.dims(), &[2, 4]);
    assert!(
        lp.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|x| *x <= 0.0)
    );
    let per_sequence = sequence_logprobs(&logits, &b)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let nll = response_nll(&logits, &b)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let expected = -(per_sequence[0] + per_sequence[1]) / 4.0;
    assert!((nll - expected).abs() < 1e-5, "{nll} vs {expected}");
    // The loss reaches the weights.
    let grads = response_nll(&logits, &b).unwrap().backward().unwrap();
    let var = loaded.vars.data().lock().unwrap()["model.embed_tokens.weight"].clone();
    assert!(grads.get(var.as_tensor()).is_some());
    let _ = Tensor::zeros(1, DType::F32, &device);
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rice-lm-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn dataset_errors_name_the_file_line_and_field() {
    let path = write(
        "pairs.jsonl",
        "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\",\"extra\":1}\n\n{\"prompt\":\"p\",\"chosen\":\"a\"}\n",
    );
    let err = read_jsonl::<PreferencePair>(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}:3:", path.display())) && err.contains("missing field `rejected`"),
        "{err}"
    );
    let path = write("bad-utf8.jsonl", "{\"prompt\":\"\u{e9}\"}\n");
    std::fs::write(&path, b"{\"prompt\":\"\xff\"}\n").unwrap();
    let err = read_jsonl::<PreferencePair>(&path).unwrap_err().to_string();
    assert!(err.contains(":1:") && err.contains("UTF-8"), "{err}");
    let path = write(
        "safety.jsonl",
        "{\"prompt\":\"p\",\"response_0\":\"a\",\"response_1\":\"b\",\"better_response_id\":1,\"safer_response_id\":0,\"is_response_0_safe\":true,\"is_response_1_safe\":\"no\"}\n",
    );
    let err = read_jsonl::<SafetyPair>(&path).unwrap_err().to_string();
    assert!(
        err.contains(
            ":1: field `is_response_1_safe`: invalid type: string \"no\", expected a boolean"
        ),
        "{err}"
    );
    let path = write("empty.jsonl", "\n\n");
    assert!(
        read_jsonl::<PreferencePair>(&path)
            .unwrap_err()
            .to_string()
            .contains("no usable records")
    );
}

#[test]
fn sft_reads_prompt_completion_and_messages() {
    let path = write(
        "sft.jsonl",
        "{\"prompt\":\"2+2?\",\"completion\":\"4.\"}\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]}\n",
    );
    let examples = read_sft(&path).unwrap();
    assert_eq!(examples[1].prompt, "hi");
    assert_eq!(examples[1].completion, "hello");
    let path = write(
        "sft-bad.jsonl",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n",
    );
    assert!(
        read_sft(&path)
            .unwrap_err()
            .to_string()
            .contains("must end with an assistant turn")
    );
}

#[test]
fn sft_errors_name_the_file_line_not_the_record_number() {
    // A blank line is skipped but still counted: the chat record without an answer is on line 3 (it used to be
    // reported as line 2, its record number).
    let path = write(
        "sft-blank.jsonl",
        "{\"prompt\":\"p\",\"completion\":\"c\"}\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n",
    );
    let err = read_sft(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3: `messages` must end with an assistant turn",
            path.display()
        )
    );
}

#[test]
fn the_byte_readers_give_the_file_readers_answers() {
    let text = "{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n\n{\"prompt\":\"q\"}\n";
    let path = write("bytes.jsonl", text);
    assert_eq!(
        parse_jsonl::<PreferencePair>(text.as_bytes(), &path)
            .unwrap_err()
            .to_string(),
        read_jsonl::<PreferencePair>(&path).unwrap_err().to_string()
    );
    let text = "{\"prompt\":\"2+2?\",\"completion\":\"4.\"}\n";
    let path = write("bytes-sft.jsonl", text);
    assert_eq!(
        parse_sft(text.as_bytes(), &path).unwrap(),
        read_sft(&path).unwrap()
    );
}

#[test]
fn templates_are_byte_exact() {
    assert_eq!(
        Template::ChatMl.prompt("Hi"),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        Template::Pku.prompt("Hi"),
        "BEGINNING OF CONVERSATION: USER: Hi ASSISTANT:"
    );
    assert_eq!(Template::Llama2.prompt("Hi"), "<s>[INST] Hi [/INST] ");
    assert_eq!(Template::by_name("gemma"), Some(Template::Gemma));
    assert_eq!(Template::by_name("nope"), None);
}

#[test]
fn conversations_render_every_turn_and_continue_a_final_assistant_turn() {
    for (_, t) in Template::ALL {
        assert_eq!(t.conversation(&[("user", "Hi?")]), t.prompt("Hi?"), "{t:?}");
        assert_eq!(
            t.conversation(&[("user", "Hi?"), ("assistant", "Hello. I")]),
            format!("{}Hello. I", t.prompt("Hi?")),
            "{t:?}: a final assistant turn is left open"
        );
    }
    let turns = [
        ("system", "Be brief."),
        ("user", "A?"),
        ("assistant", "B."),
        ("user", "C?"),
    ];
    assert_eq!(
        Template::ChatMl.conversation(&turns),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nA?<|im_end|>\n<|im_start|>assistant\nB.<|im_end|>\n<|im_start|>user\nC?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        Template::Gemma.conversation(&turns),
        "<start_of_turn>user\nBe brief.\n\nA?<end_of_turn>\n<start_of_turn>model\nB.<end_of_turn>\n<start_of_turn>user\nC?<end_of_turn>\n<start_of_turn>model\n"
    );
    assert_eq!(
        Template::Pku.conversation(&turns),
        "BEGINNING OF CONVERSATION: USER: Be brief.\n\nA? ASSISTANT:B. USER: C? ASSISTANT:"
    );
    assert_eq!(
        Template::Llama2.conversation(&turns),
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nA? [/INST] B. </s><s>[INST] C? [/INST] "
    );
}
