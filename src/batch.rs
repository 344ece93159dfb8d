//! Tokenisation and batching: sentences (optionally with their article
//! context as a second segment) become token ids once, and batches are padded
//! only to their own longest member (dynamic padding).

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use std::path::Path;
use tokenizers::{EncodeInput, Tokenizer, TruncationParams, TruncationStrategy};

/// One tokenised example.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

/// A padded batch for candle's reference graph: `[batch, longest]` tensors,
/// padding on the right. Training reads [`Packed`] instead.
#[derive(Debug)]
pub struct Batch {
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub mask: Tensor,
    pub labels: Option<Tensor>,
    pub len: usize,
}

impl Batch {
    /// The same sentences packed, to run the native step on what the graph
    /// saw (the tests compare the two).
    pub fn packed(&self) -> Result<Packed> {
        let (ids, types, mask) = (
            self.ids.to_vec2::<u32>()?,
            self.type_ids.to_vec2::<u32>()?,
            self.mask.to_vec2::<u32>()?,
        );
        let items: Vec<Encoded> = ids
            .iter()
            .zip(&types)
            .zip(&mask)
            .map(|((i, t), m)| {
                let len = m.iter().filter(|&&v| v == 1).count();
                Encoded {
                    ids: i[..len].to_vec(),
                    type_ids: t[..len].to_vec(),
                }
            })
            .collect();
        let labels = self
            .labels
            .as_ref()
            .map(|l| l.to_vec1::<u32>())
            .transpose()?;
        Packed::new(&items.iter().collect::<Vec<_>>(), labels.as_deref())
    }
}

/// A token's `(start, end)` bytes in its text.
pub type ByteRange = (usize, usize);

/// A token's label that says "no label": no loss, no gradient (the
/// `[CLS]` and `[SEP]` of a token classifier's sequences; transformers' -100).
pub const IGNORE: u32 = u32::MAX;

/// The tokens of a batch's sentences stored back to back (what the native
/// training step reads). `labels` holds one label per sentence for a
/// sentence classifier, one per token (possibly [`IGNORE`]) for a token
/// classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    pub lengths: Vec<usize>,
    pub labels: Option<Vec<u32>>,
}

impl Packed {
    pub fn new(items: &[&Encoded], labels: Option<&[u32]>) -> Result<Packed> {
        if items.is_empty() {
            return Err(Error::Invalid("empty batch".into()));
        }
        if labels.is_some_and(|l| l.len() != items.len()) {
            return Err(Error::Invalid(
                "a batch's labels do not match its sentences".into(),
            ));
        }
        Ok(Packed {
            ids: items.iter().flat_map(|e| e.ids.iter().copied()).collect(),
            type_ids: items
                .iter()
                .flat_map(|e| e.type_ids.iter().copied())
                .collect(),
            lengths: items.iter().map(|e| e.ids.len()).collect(),
            labels: labels.map(|l| l.to_vec()),
        })
    }

    /// A token classifier's batch: `labels[i]` holds a label per token of
    /// `items[i]`.
    pub fn tokens(items: &[&Encoded], labels: &[&[u32]]) -> Result<Packed> {
        if labels.len() != items.len()
            || items
                .iter()
                .zip(labels)
                .any(|(e, l)| e.ids.len() != l.len())
        {
            return Err(Error::Invalid(
                "a batch's token labels do not match its tokens".into(),
            ));
        }
        let mut p = Packed::new(items, None)?;
        p.labels = Some(labels.iter().flat_map(|l| l.iter().copied()).collect());
        Ok(p)
    }
}

/// A Hugging Face tokenizer set up for classification: truncation to
/// `max_len`, no padding (batches pad themselves).
pub struct TextEncoder {
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for sentences too long for
    /// the window (see [`TextEncoder::encode_flagged`]).
    full: Tokenizer,
    max_len: usize,
    pad_id: u32,
    path: std::path::PathBuf,
}

/// Characters kept per token of the window before tokenising: a 50 MB
/// "sentence" is cut to its start and end first, so memory per input line
/// stays bounded (real tokens average 4-6 characters).
const CHARS_PER_TOKEN_CAP: usize = 16;

/// `text` cut to its first and last `keep / 2` characters when longer.
fn cap_chars(text: &str, keep: usize) -> std::borrow::Cow<'_, str> {
    let n = text.chars().count();
    if n <= keep {
        return text.into();
    }
    let head: String = text.chars().take(keep / 2).collect();
    let tail: String = text.chars().skip(n - keep / 2).collect();
    format!("{head} … {tail}").into()
}

impl TextEncoder {
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
            path: path.into(),
            message: e.to_string(),
        })?;
        Self::new(tokenizer, max_len, path)
    }

    pub fn new(mut tokenizer: Tokenizer, max_len: usize, path: &Path) -> Result<Self> {
        if max_len < 8 {
            return Err(Error::Invalid(format!(
                "--max-len {max_len} is too small (minimum 8)"
            )));
        }
        // BERT's `[PAD]`, RoBERTa's `<pad>` (padding is masked out either way).
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .unwrap_or(0);
        let mut full = tokenizer.clone();
        full.with_truncation(None).map_err(|e| Error::Tokenizer {
            path: path.into(),
            message: e.to_string(),
        })?;
        full.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer {
                path: path.into(),
                message: e.to_string(),
            })?;
        tokenizer.with_padding(None);
        Ok(TextEncoder {
            tokenizer,
            full,
            max_len,
            pad_id,
            path: path.into(),
        })
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The tokens of `text` without special tokens or truncation, with each
    /// token's byte range in `text`.
    pub fn pieces(&self, text: &str) -> Result<(Vec<u32>, Vec<ByteRange>)> {
        let e = self
            .full
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok((e.get_ids().to_vec(), e.get_offsets().to_vec()))
    }

    /// The ids a single sequence starts and ends with (`[CLS]`/`[SEP]`,
    /// `<s>`/`</s>`).
    pub fn bounds(&self) -> Result<(u32, u32)> {
        let e = self.full.encode("", true).map_err(|e| Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        match e.get_ids() {
            [first, .., last] => Ok((*first, *last)),
            _ => Err(Error::Tokenizer {
                path: self.path.clone(),
                message: "the tokenizer adds no start and end tokens to a sequence".into(),
            }),
        }
    }

    /// Tokenise sentences, each with an optional context segment.
    pub fn encode(&self, texts: &[&str], contexts: Option<&[String]>) -> Result<Vec<Encoded>> {
        Ok(self.encode_flagged(texts, contexts)?.0)
    }

    /// Tokenise sentences, and say which were longer than the window.
    ///
    /// A sentence that does not fit is never cut at its end alone (a denial
    /// often comes last: "..., which the ministry denied"): it is fed as its
    /// first and last tokens, half the window each, without context, and
    /// flagged. A context that does not fit is shortened first.
    pub fn encode_flagged(
        &self,
        texts: &[&str],
        contexts: Option<&[String]>,
    ) -> Result<(Vec<Encoded>, Vec<bool>)> {
        let keep = self.max_len * CHARS_PER_TOKEN_CAP;
        let capped: Vec<std::borrow::Cow<str>> = texts.iter().map(|t| cap_chars(t, keep)).collect();
        let inputs: Vec<EncodeInput> = match contexts {
            None => capped
                .iter()
                .map(|t| EncodeInput::Single(t.as_ref().into()))
                .collect(),
            Some(c) => capped
                .iter()
                .zip(c)
                .map(|(t, c)| {
                    EncodeInput::Dual(t.as_ref().into(), cap_chars(c, keep).into_owned().into())
                })
                .collect(),
        };
        let err = |e: tokenizers::Error| Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let out = self.tokenizer.encode_batch(inputs, true).map_err(err)?;
        let mut encs = Vec::with_capacity(out.len());
        let mut long = Vec::with_capacity(out.len());
        for (e, text) in out.into_iter().zip(&capped) {
            let mut enc = Encoded {
                ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            };
            let mut cut = false;
            let char_capped = matches!(text, std::borrow::Cow::Owned(_));
            if !e.get_overflowing().is_empty() || char_capped {
                // Truncated somewhere: did the sentence itself not fit?
                let whole = self.full.encode(text.as_ref(), true).map_err(err)?;
                let ids = whole.get_ids();
                let room = if contexts.is_some() {
                    self.max_len.saturating_sub(3)
                } else {
                    self.max_len
                };
                if ids.len() > room || char_capped {
                    let head = self.max_len / 2;
                    let tail = self.max_len - head;
                    let mut window: Vec<u32> = ids[..head.min(ids.len())].to_vec();
                    window.extend_from_slice(
                        &ids[ids.len().saturating_sub(tail).max(head.min(ids.len()))..],
                    );
                    enc = Encoded {
                        type_ids: vec![0; window.len()],
                        ids: window,
                    };
                    cut = true;
                }
            }
            encs.push(enc);
            long.push(cut);
        }
        Ok((encs, long))
    }

    /// Pad `items` to their longest member and build tensors.
    pub fn batch(
        &self,
        items: &[&Encoded],
        labels: Option<&[u32]>,
        device: &Device,
    ) -> Result<Batch> {
        make_batch(items, labels, self.pad_id, device)
    }
}

pub fn make_batch(
    items: &[&Encoded],
    labels: Option<&[u32]>,
    pad_id: u32,
    device: &Device,
) -> Result<Batch> {
    let b = items.len();
    if b == 0 {
        return Err(Error::Invalid("empty batch".into()));
    }
    let t = items.iter().map(|e| e.ids.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; b * t];
    let mut types = vec![0u32; b * t];
    let mut mask = vec![0u32; b * t];
    for (r, e) in items.iter().enumerate() {
        for (c, (&id, &ty)) in e.ids.iter().zip(&e.type_ids).enumerate() {
            ids[r * t + c] = id;
            types[r * t + c] = ty;
            mask[r * t + c] = 1;
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        type_ids: Tensor::from_vec(types, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
        labels: labels
            .map(|l| Tensor::from_vec(l.to_vec(), b, device))
            .transpose()?,
        len: b,
    })
}

/// Batches of example indices of similar length (sorted by length, then cut),
/// so that padding stays small; the order of the batches is kept by length.
pub fn length_buckets(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    order
        .chunks(batch_size.max(1))
        .map(|c| c.to_vec())
        .collect()
}

/// A BERT WordPiece `tokenizer.json` built from a `vocab.txt`, for
/// checkpoints that ship no `tokenizer.json`.
pub fn tokenizer_from_vocab(vocab_path: &Path, lowercase: bool) -> Result<Tokenizer> {
    let text = std::fs::read_to_string(vocab_path).map_err(|e| Error::io(vocab_path, e))?;
    let vocab: serde_json::Map<String, serde_json::Value> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| (l.to_string(), serde_json::json!(i)))
        .collect();
    let id = |tok: &str| {
        vocab
            .get(tok)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| Error::file(vocab_path, format!("vocabulary has no {tok} token")))
    };
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    id("[UNK]")?;
    let added: Vec<serde_json::Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .filter_map(|t| vocab.get(*t).map(|i| serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})))
        .collect();
    let special = |n: &str, ty: u32| serde_json::json!({"SpecialToken": {"id": n, "type_id": ty}});
    let seq = |n: &str, ty: u32| serde_json::json!({"Sequence": {"id": n, "type_id": ty}});
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)],
            "pair": [special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)],
            "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [cls], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [sep], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    });
    json.to_string()
        .parse::<Tokenizer>()
        .map_err(|e| Error::Tokenizer {
            path: vocab_path.into(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_buckets() {
        let a = Encoded {
            ids: vec![1, 5, 2],
            type_ids: vec![0, 0, 0],
        };
        let b = Encoded {
            ids: vec![1, 2],
            type_ids: vec![0, 0],
        };
        let batch = make_batch(&[&a, &b], Some(&[3, 1]), 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.ids.to_vec2::<u32>().unwrap(),
            vec![vec![1, 5, 2], vec![1, 2, 0]]
        );
        assert_eq!(
            batch.mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 1, 0]]
        );
        assert_eq!(
            batch.labels.as_ref().unwrap().to_vec1::<u32>().unwrap(),
            vec![3, 1]
        );
        assert_eq!(
            batch.packed().unwrap(),
            Packed {
                ids: vec![1, 5, 2, 1, 2],
                type_ids: vec![0; 5],
                lengths: vec![3, 2],
                labels: Some(vec![3, 1])
            }
        );
        assert_eq!(
            length_buckets(&[5, 1, 3, 2, 4], 2),
            vec![vec![1, 3], vec![2, 4], vec![0]]
        );
    }
}
