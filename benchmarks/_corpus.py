"""Math-reasoning responses for the benchmarks and tests: synthetic ones (templated sentences, random
numbers and names; roughly the mix of a GSM-style chain of thought: mostly execution, planning phrases
at a realistic rate, distractor chatter), and real ones (`champ_transcripts`, from the champ-dataset package).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

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


# ---- long chains of thought (R1/Qwen3-style "thinking" traces) -------------------------------
# Paragraphs separated by blank lines, markdown headers, LaTeX, Unicode math and typographic
# apostrophes, the odd double space or tab: the text shapes the tagger's normalisation must handle.
THINKING = [
    "Okay, let's see. The problem says {n} has {a} {i} and buys {b} more. I need to find the total.",
    "First, I need to figure out how many {i} there are in each box.\n{a} \u00d7 {b} = {p}, so that's {p} {i}.",
    "Wait, but the problem mentions that {n} gave some away. Let me re-read it.",
    "Hmm, so {p} \u2212 {a} = {d}. That seems a bit small.  Let me verify this.",
    "Let\u2019s double-check the multiplication: $${a} \\times {b} = {p}$$",
    "## Step {b}: Compute the remainder\n\nWe have $\\frac{{{p}}}{{{b}}} = {a}$, and ${d} \\le {p}$.",
    "Alternatively, maybe I can set up an equation. Let $x$ be the number of {i}; then $x + {b} = {s}$.",
    "But wait, that can\u2019t be right. If $x = {a}$ then $x + {b} = {s}$, which matches.",
    "So, yes, the total is {s}. Now we need to determine how many are left after {n} shares them.",
    "Actually, hold on.\tI should consider the case where the boxes are not full.",
    "Thus the answer should be \u2192 {s}. Therefore, the final answer is $\\boxed{{{s}}}$.",
    "**Check:** {s} \u2212 {b} = {a} \u2713. Everything is consistent, so I\u2019m confident.",
    "Let me think about this differently. On the other hand, if each of the {b} friends gets {a} {i}, that's {p}.",
    "1. {n} starts with {a} {i}.\n2. {n} buys {b} more.\n3. In total: {a} + {b} = {s}.",
    "I think the key insight is to work our way backwards from the {s} {i} at the end.",
    "The probability is $\\tfrac{{{a}}}{{{p}}} \u2248 0.{b}$ \u2014 no wait, that\u2019s not a probability question.",
]


def long_chains_of_thought(n: int, seed: int = 0, paragraphs: tuple[int, int] = (15, 45)) -> list[str]:
    """``n`` long "thinking" traces (~3-10 k characters): 15-45 blank-line-separated paragraphs of 1-4 sentences."""
    rng = random.Random(seed)
    return ["\n\n".join(" ".join(_fill(rng.choice(THINKING), rng) for _ in range(rng.randint(1, 4)))
                        for _ in range(rng.randint(*paragraphs)))
            for _ in range(n)]


# ---- real transcripts: CHAMP (Mao et al. 2024), the champ-dataset package (dev extra) --------
def champ_transcripts(samples: int = 8) -> list[dict]:
    """Real model solutions: one record per CHAMP conversation (GPT-3.5/4, PaLM 2, Llama 2 on competition
    problems), ``{"prompt", "response", "answer"}``; the response is the model turns joined by a blank line
    (~1.9 k characters). Groups of ``samples`` conversations of one problem follow each other (the samples
    of a prompt), problems interleaved group by group; ~19 k records, in a fixed order."""
    from champ_dataset import BASE_FOLDER

    data = json.loads((Path(str(BASE_FOLDER)) / "dataset_files" / "v0.json").read_text(encoding="utf-8"))
    groups = []
    for problem in data["problems"].values():
        records = []
        for conversation in problem["conversations"].values():
            messages = conversation["messages"]
            turns = [m["text"] for m in messages if m["role"].startswith("Model.") and m.get("text")]
            users = [m["text"] for m in messages if m["role"] == "User" and m.get("text")]
            if turns and users:
                records.append({"prompt": users[0], "response": "\n\n".join(turns), "answer": problem["_answer"]})
        groups.append([records[i:i + samples] for i in range(0, len(records) - samples + 1, samples)])
    rounds = max(map(len, groups))
    return [record for r in range(rounds) for problem in groups if r < len(problem) for record in problem[r]]
