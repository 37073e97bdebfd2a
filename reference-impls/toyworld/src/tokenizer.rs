//! A byte-level BPE tokenizer trained on the world's corpus, saved as a Hugging Face `tokenizer.json`.

use std::collections::HashSet;

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::ToyworldError;

/// Special tokens, in id order: end of document, ChatML turn markers, padding.
pub const SPECIAL_TOKENS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"];

/// Trains a byte-level BPE of at most `vocab_size` tokens (fewer if the corpus runs out of merges) on `texts`.
///
/// Byte level means every string encodes, with no unknown token. `add_prefix_space` is off so that
/// `decode(encode(text)) == text` exactly, special tokens included.
pub fn train_tokenizer<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
) -> Result<Tokenizer, ToyworldError> {
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None::<NormalizerWrapper>)
        .with_pre_tokenizer(Some(byte_level))
        .with_post_processor(Some(byte_level))
        .with_decoder(Some(byte_level))
        .build()
        .map_err(|e| ToyworldError::Tokenizer(e.to_string()))?;
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .initial_alphabet(alphabet)
        .special_tokens(
            SPECIAL_TOKENS
                .iter()
                .map(|t| AddedToken::from(t.to_string(), true))
                .collect(),
        )
        .build();
    tokenizer
        .train(&mut trainer, texts)
        .map_err(|e| ToyworldError::Tokenizer(e.to_string()))?;
    Ok(Tokenizer::from(tokenizer))
}
