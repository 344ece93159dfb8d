"""Write tests/fixtures/bert-token-tiny and tests/fixtures/mpnet-token-tiny:
a tiny random BertForTokenClassification and MPNetForTokenClassification
created by transformers, labelling tokens with the attribution tagger's BIO
tags, each with its tokenizer and what PyTorch computes on a few sentences
(per-token logits, the loss, the gradient of every parameter, and for MPNet
its relative-position buckets), for the token-classifier tests to check
stance's engine, graph and native training step against. Dropout is 0 in
the configs so train and eval modes agree. Every text is a single sentence;
one is long enough (35 tokens) that MPNet's relative distances reach the
logarithmic buckets. Each token's label is pseudo-random (torch.manual_seed),
-100 at <s> and </s> (and at padding, for the loss).

    python scripts/interop/token_fixture.py [OUT_ROOT]

OUT_ROOT defaults to tests/fixtures. Needs torch, transformers and tokenizers
(scripts/bench.sh installs them in a virtual environment). Not run in CI:
its output is committed (about 100 kB a fixture).
"""
import json, os, sys

import torch
import tiny_tokenizer
from safetensors.torch import save_file
from transformers import BertConfig, BertForTokenClassification, MPNetConfig, MPNetForTokenClassification
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

LABELS = ["O", "B-SOURCE", "I-SOURCE", "B-CUE", "I-CUE", "B-CONTENT", "I-CONTENT"]
TEXTS = ["The mayor denied the report.", "Short one.",
         "She flatly denied the claims, and police accused the driver of fraud and theft, the club said on "
         "Monday, and the council approved the budget of the town in the region.",
         "Shares rose 4 percent on Monday."]
IGNORE = -100  # transformers' ignore_index: no loss, no gradient
PAD = 1  # <pad> in tiny_tokenizer
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, hidden_act="gelu",
             initializer_range=0.3, pad_token_id=PAD, bos_token_id=0, eos_token_id=2,
             id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})


def bert(vocab):
    cfg = BertConfig(vocab_size=len(vocab), max_position_embeddings=128, type_vocab_size=2,
                     layer_norm_eps=1e-12, classifier_dropout=0.0, **SIZES)
    return BertForTokenClassification(cfg)


def mpnet(vocab):
    cfg = MPNetConfig(vocab_size=len(vocab), max_position_embeddings=130, layer_norm_eps=1e-5,
                      relative_attention_num_buckets=32, **SIZES)
    return MPNetForTokenClassification(cfg)


def write(out, build, seed):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    tok, vocab = tiny_tokenizer.write(out)
    model = build(vocab)
    # Non-trivial biases and norms (and a relative table that matters), so
    # every path carries signal.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias") or "LayerNorm" in n:
                p.add_(0.2 * torch.randn_like(p))
            if "relative_attention_bias" in n:
                p.normal_(0.0, 1.0)
    model.save_pretrained(out, safe_serialization=True)

    encs = [tok.encode(t) for t in TEXTS]
    enc = [e.ids for e in encs]
    type_ids = [e.type_ids for e in encs]
    torch.manual_seed(seed + 1)
    token_labels = []
    for e in encs:
        drawn = torch.randint(0, len(LABELS), (len(e.ids),)).tolist()
        token_labels.append([IGNORE if s else l for l, s in zip(drawn, e.special_tokens_mask)])
    t = max(map(len, enc))
    ids = torch.tensor([e + [PAD] * (t - len(e)) for e in enc])
    types = torch.tensor([e + [0] * (t - len(e)) for e in type_ids])
    mask = (ids != PAD).long()
    labels = torch.tensor([l + [IGNORE] * (t - len(l)) for l in token_labels])
    kwargs = {"token_type_ids": types} if isinstance(model, BertForTokenClassification) else {}
    model.train()  # dropout is 0: the same function as eval
    outp = model(input_ids=ids, attention_mask=mask, labels=labels, **kwargs)
    outp.loss.backward()
    save_file({n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None},
              os.path.join(out, "grads.safetensors"))
    ref = {"task": "token", "label_names": LABELS, "texts": TEXTS, "contexts": [None] * len(TEXTS),
           "ids": enc, "type_ids": type_ids, "token_labels": token_labels,
           "logits": [outp.logits[i, :len(e)].tolist() for i, e in enumerate(enc)],
           "loss": outp.loss.item()}
    if isinstance(model, MPNetForTokenClassification):
        rel = torch.arange(-300, 301)
        ref["relative_positions"] = rel.tolist()
        ref["buckets"] = MPNetEncoder.relative_position_bucket(rel).tolist()
    json.dump(ref, open(os.path.join(out, "reference.json"), "w"), indent=1)
    print(f"wrote {out}: loss {outp.loss.item():.6f}, longest {t} tokens")


root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
write(os.path.join(root, "bert-token-tiny"), bert, 13)
write(os.path.join(root, "mpnet-token-tiny"), mpnet, 17)
