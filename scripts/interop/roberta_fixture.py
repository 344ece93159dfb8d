"""Write tests/fixtures/roberta-tiny: a tiny random RobertaForSequenceClassification
created by transformers, its tokenizer, and what PyTorch computes on a few
sentences (logits, loss, and the gradient of every parameter), for
tests/suite/roberta.rs to check stance's engine, graph and native training
step against. Dropout is 0 in the config so train and eval modes agree.

    python scripts/interop/roberta_fixture.py [OUT_DIR]

Needs torch, transformers and tokenizers (scripts/bench.sh installs them in
a virtual environment). Not run in CI: its output is committed (about 100 kB).
"""
import json, os, sys

import torch
import tiny_tokenizer
from safetensors.torch import save_file
from transformers import RobertaConfig, RobertaForSequenceClassification

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/roberta-tiny"
os.makedirs(out, exist_ok=True)
torch.manual_seed(7)

tok, vocab = tiny_tokenizer.write(out)

labels = ["assertion", "denial", "allegation", "context"]
cfg = RobertaConfig(
    vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=37, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1,
    bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    hidden_act="gelu", layer_norm_eps=1e-5, initializer_range=0.3,
    id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
)
model = RobertaForSequenceClassification(cfg)
# Non-trivial biases and norms, so every path carries signal.
with torch.no_grad():
    for n, p in model.named_parameters():
        if n.endswith(".bias") or "LayerNorm" in n:
            p.add_(0.2 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)

texts = ["The mayor denied the report.", "Short one.", "Police accused the driver of fraud, the club said.",
         "Shares rose 4 percent on Monday."]
gold = [1, 3, 2, 0]
enc = [tok.encode(t).ids for t in texts]
t = max(map(len, enc))
ids = torch.tensor([e + [1] * (t - len(e)) for e in enc])
mask = (ids != 1).long()
model.train()  # dropout is 0: the same function as eval
outp = model(input_ids=ids, attention_mask=mask, labels=torch.tensor(gold))
outp.loss.backward()
save_file({n: p.grad.contiguous() for n, p in model.named_parameters() if p.grad is not None},
          os.path.join(out, "grads.safetensors"))
json.dump({"texts": texts, "ids": enc, "labels": gold, "logits": outp.logits.tolist(),
           "loss": outp.loss.item()}, open(os.path.join(out, "reference.json"), "w"), indent=1)
print(f"wrote {out}: loss {outp.loss.item():.6f}")
