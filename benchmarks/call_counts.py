"""How often one `analyze` of a 3-checkpoint series runs the tagger and the tokenizer's decode, and how
often a fully cached rerun does.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/call_counts.py
(with PYTHONPATH pointing at another checkout, the same script counts that version's calls).
The series is a tiny random Llama on a byte-level BPE (checkpoint-1..3, 2 problems x 2 samples).
``PlanningTagger.find`` and ``PreTrainedTokenizerBase.decode`` / ``batch_decode`` are wrapped at class
level, so every call counts, whichever module makes it. Last line: JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

CORPUS = ["Let's break down the problem. First, we add 3 and 4 to get 7.",
          "But wait, let me check again: 12 * 3 = 36, so the answer is \\boxed{36}.",
          "Hmm, that's not right. Let's try a different approach to solve for x."] * 20
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_series(root: Path) -> Path:
    """checkpoint-1..3 of a random 2-layer Llama, one SGD step apart."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.chat_template = CHATML
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    batch = tokenizer(CORPUS[:3], return_tensors="pt", padding=True)
    for step in (1, 2, 3):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.save_pretrained(root / f"checkpoint-{step}")
        tokenizer.save_pretrained(root / f"checkpoint-{step}")
    return root


def counting(counts: dict):
    """Wrap find/decode/batch_decode so each call adds to ``counts``."""
    from transformers import PreTrainedTokenizerBase

    from reasonlens.hierarchy.tagger import PlanningTagger

    def wrap(owner, name, key):
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            counts[key] += 1
            return real(*args, **kwargs)
        setattr(owner, name, counted)

    wrap(PlanningTagger, "find", "find")
    wrap(PreTrainedTokenizerBase, "decode", "decode")
    wrap(PreTrainedTokenizerBase, "batch_decode", "batch_decode")


def main() -> None:
    import reasonlens
    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.analysis.run import analyze

    with tempfile.TemporaryDirectory() as tmp:
        series = tiny_series(Path(tmp) / "series")
        counts = {"find": 0, "decode": 0, "batch_decode": 0}
        counting(counts)
        config = dict(path=series, out=Path(tmp) / "out", task="basic_arithmetic", num_prompts=2, samples=2,
                      max_new_tokens=24, device="cpu", dtype="fp32", report=True)
        results = {}
        for run in ("first", "cached_rerun"):
            for key in counts:
                counts[key] = 0
            analyze(AnalyzeConfig(**config), progress=False)
            results[run] = dict(counts)
        responses = 3 * 2 * 2
    print(f"reasonlens {reasonlens.__version__} from {Path(reasonlens.__file__).parent}", file=sys.stderr)
    for run, calls in results.items():
        print(f"{run}: {calls} for {responses} responses", file=sys.stderr)
    print(json.dumps({"responses": responses, **{f"{run}_{k}": v for run, c in results.items() for k, v in c.items()},
                      "reasonlens": str(Path(reasonlens.__file__).parent)}))


if __name__ == "__main__":
    main()
