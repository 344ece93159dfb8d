"""The word-level tokenizer the transformers-made fixtures share: a small
news vocabulary after <s> <pad> </s> <unk> (RoBERTa's and MPNet's special
ids), lower-cased, split on whitespace and punctuation, with RoBERTa's
pair template (<s> A </s></s> B </s>)."""
import json, os

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

WORDS = ("the said denied accused report was is of and in to a mayor police club any wrongdoing "
         "she flatly claims driver fraud rivals firm lying he theft council approved budget shares "
         "rose percent on monday plant opened may town founded such cases are rare region law dates "
         "back decades . , 4 1820 short one").split()


def write(out):
    """Save tokenizer.json and tokenizer_config.json in `out`; return the
    tokenizer and its vocabulary."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(os.path.join(out, "tokenizer.json"))
    # transformers reads tokenizer.json as it is (not as a BPE or WordPiece
    # rebuilt from the vocabulary) only when told so.
    json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
               "unk_token": "<unk>", "pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
               "model_max_length": 128}, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)
    return tok, vocab
