"""Synthetic math-reasoning responses for the benchmarks: templated sentences, random numbers and names.

Roughly the mix of a GSM-style chain of thought: mostly execution (arithmetic, restating), with
planning phrases (paper lexicon and paraphrases) at a realistic rate, plus distractor chatter.
"""

from __future__ import annotations

import random

NAMES = ["Tom", "Ava", "Liam", "Mia", "Noah", "Zoe", "Omar", "Ines", "Kenji", "Sara"]
ITEMS = ["apples", "marbles", "books", "cookies", "stickers", "pencils", "coins", "cards"]
EXECUTION = [
    "{n} has {a} {i} and buys {b} more, so {a} + {b} = {s}.",
    "Each box holds {a} {i}, and there are {b} boxes, giving {a} * {b} = {p} {i}.",
    "Subtracting, {p} - {a} = {d}.",
    "The total number of {i} is {s}.",
    "{n} gives away {b} of them, leaving {a} - {b} = {d}.",
    "Dividing {p} by {b} gives {a}.",
    "So {n} ends up with {s} {i} in total.",
    "That means {a} groups of {b}, which is {p}.",
]
PLANNING = [
    "First, we need to find how many {i} {n} has.",
    "Let's break this down step by step.",
    "Wait, let me double-check the multiplication.",
    "Alternatively, we can use the fact that each box is the same.",
    "Hmm, that doesn't look right. Let me rethink this.",
    "To verify, I'll recompute the sum.",
    "Now we need to determine the remaining {i}.",
    "The problem asks for the final count, so we add everything up.",
    "But wait, the problem states that {n} also lost some {i}.",
    "Let me check again to be sure.",
    "On second thought, we should consider the {i} given away.",
    "Therefore, the answer is \\boxed{{{s}}}.",
]
CHATTER = [
    "This is a fun problem about {i}.",
    "The weather was nice that day, and {n} was happy.",
    "Counting objects carefully is important in everyday life.",
]


def _fill(template: str, rng: random.Random) -> str:
    a, b = rng.randint(2, 60), rng.randint(2, 30)
    return template.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b, s=a + b, p=a * b, d=a - b)


def reasoning_responses(n: int, seed: int = 0, sentences: tuple[int, int] = (8, 20)) -> list[str]:
    """``n`` responses of 8-20 sentences: ~60% execution, ~30% planning, ~10% chatter."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(*sentences)):
            r = rng.random()
            pool = EXECUTION if r < 0.6 else PLANNING if r < 0.9 else CHATTER
            parts.append(_fill(rng.choice(pool), rng))
        out.append(" ".join(parts))
    return out
