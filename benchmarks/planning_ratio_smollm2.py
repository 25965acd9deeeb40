"""Planning-token ratio the paper lexicon gives on the bundled SmolLM2-135M-Instruct's own answers.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/planning_ratio_smollm2.py [N_PROMPTS] [MAX_NEW_TOKENS]
32 gsm_symbolic prompts, one sample each at temperature 0.6 (seed 0); token masks from the sampled
ids' offsets (the tag stage, hierarchy.tag.tag_rollouts). ``ratio`` = planning tokens / response tokens.
Last line: JSON.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import pandas as pd

from reasonlens import columns as C
from reasonlens.hierarchy.lexicon import load_lexicon
from reasonlens.hierarchy.tag import tag_rollouts


def main(n_prompts: int = 32, max_new_tokens: int = 256):
    from reasonlens.models.generation import generate
    from reasonlens.models.loading import load_model
    from reasonlens.sources.tasks import chat_prompt, load_problems

    start = time.perf_counter()
    model, tokenizer = load_model("smollm2", device="cpu")  # dtype auto: bf16 only where the CPU is native
    problems = load_problems("gsm_symbolic", n=n_prompts, seed=0)
    prompts = [chat_prompt(tokenizer, p.question) for p in problems]
    gens = generate(model, tokenizer, prompts, samples=1, max_new_tokens=max_new_tokens, temperature=0.6,
                    seed=0, batch_size=8)
    gen_s = time.perf_counter() - start

    lexicon = load_lexicon("paper")
    start = time.perf_counter()
    tagged = tag_rollouts(pd.DataFrame({C.RESPONSE: [g.text for g in gens],
                                        C.TOKEN_OFFSETS: [[list(o) for o in g.offsets] for g in gens]}), lexicon)
    mask_s = time.perf_counter() - start
    masks = tagged[C.PLANNING_MASK].tolist()
    n_tokens = sum(len(m) for m in masks)
    n_planning = sum(sum(m) for m in masks)
    grams = Counter(g for row in tagged[C.GRAMS] for g in row)
    per_response = [sum(m) / len(m) for m in masks if m]
    print("most common grams:", grams.most_common(12))
    print("example:", gens[0].text[:400].replace("\n", " "))
    print(json.dumps({"n_responses": len(gens), "response_tokens": n_tokens, "planning_tokens": n_planning,
                      "ratio": round(n_planning / max(n_tokens, 1), 4),
                      "mean_ratio_per_response": round(sum(per_response) / max(len(per_response), 1), 4),
                      "truncated": sum(g.truncated for g in gens), "generation_s": round(gen_s, 1),
                      "tag_s": round(mask_s, 3), "lexicon": lexicon.name, "hash": lexicon.hash,
                      "dtype": str(model.dtype).removeprefix("torch.")}))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
