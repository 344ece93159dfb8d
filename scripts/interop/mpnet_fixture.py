"""Write tests/fixtures/mpnet-tiny: a tiny random MPNetForSequenceClassification
created by transformers, its tokenizer, and what PyTorch computes on a few
sentences (logits, loss, the gradient of every parameter, and MPNet's
relative-position buckets), for tests/suite/mpnet.rs to check stance's
engine, graph and native training step against. Dropout is 0 in the config
so train and eval modes agree. One sentence is long enough (and one is a
sentence pair with context) that relative distances reach the logarithmic
buckets.

    python scripts/interop/mpnet_fixture.py [OUT_DIR]

Needs torch, transformers and tokenizers (scripts/bench.sh installs them in
a virtual environment). Not run in CI: its output is committed (about 100 kB).
"""
import json, os, sys

import torch
import tiny_tokenizer
from safetensors.torch import save_file
from transformers import MPNetConfig, MPNetForSequenceClassification
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/mpnet-tiny"
os.makedirs(out, exist_ok=True)
torch.manual_seed(11)

tok, vocab = tiny_tokenizer.write(out)

labels = ["assertion", "denial", "allegation", "context"]
cfg = MPNetConfig(
    vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
    eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    hidden_act="gelu", layer_norm_eps=1e-5, initializer_range=0.3, relative_attention_num_buckets=32,
    id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
)
model = MPNetForSequenceClassification(cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        if n.endswith(".bias") or "LayerNorm" in n:
            p.add_(0.2 * torch.randn_like(p))
        if "relative_attention_bias" in n:
            p.normal_(0.0, 1.0)  # a bias that matters
model.save_pretrained(out, safe_serialization=True)

texts = ["The mayor denied the report.", "Short one.",
         "Police accused the driver of fraud and theft, the club said on Monday, and the council approved "
         "the budget of the town in the region.",
         "Shares rose 4 percent on Monday."]
contexts = [None, None, None, "The plant opened in May. The town was founded in 1820."]
gold = [1, 3, 2, 0]
enc = [tok.encode(t, c).ids if c else tok.encode(t).ids for t, c in zip(texts, contexts)]
t = max(map(len, enc))
ids = torch.tensor([e + [1] * (t - len(e)) for e in enc])
mask = (ids != 1).long()
model.train()  # dropout is 0: the same function as eval
outp = model(input_ids=ids, attention_mask=mask, labels=torch.tensor(gold))
outp.loss.backward()
save_file({n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None},
          os.path.join(out, "grads.safetensors"))
rel = torch.arange(-300, 301)
buckets = MPNetEncoder.relative_position_bucket(rel).tolist()
json.dump({"texts": texts, "contexts": contexts, "ids": enc, "labels": gold,
           "logits": outp.logits.tolist(), "loss": outp.loss.item(),
           "relative_positions": rel.tolist(), "buckets": buckets},
          open(os.path.join(out, "reference.json"), "w"), indent=1)
print(f"wrote {out}: loss {outp.loss.item():.6f}, longest {t} tokens")
