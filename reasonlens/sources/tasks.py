r"""Problems to pose (reasoning-gym tasks, a user's file, a Hugging Face dataset) and how answers are graded.

Grading: the last ``\boxed{}`` of a response is its answer. math-verify (gold first) decides
first; for reasoning-gym problems the task's own ``score_answer`` is the fallback, and its score
becomes the reward when it is graded (strictly between 0 and 1). Countdown is graded by its
scorer alone: its gold answer is one of many valid expressions, and math-verify would accept
the bare target number.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import signal
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from reasonlens.errors import ReasonlensError
from reasonlens.sources.answers import answers_equivalent, extract_boxed
from reasonlens.sources.files import field_value, hf_records, read_records, record_id

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_TASK = "gsm_symbolic"
# Worked examples shown before the question as earlier chat turns (``fewshot=``): a small model that
# never ends with \boxed{} on its own copies the example's format. Each is (question, response).
# SmolLM2-135M on 1-digit sums (64 samples, T 0.7): no example 0% correct (16% boxed), "arithmetic" 98%,
# "arithmetic-steps" 27% (it invents steps), which leaves GRPO mixed groups to learn from.
FEWSHOT_PRESETS = {
    "none": (),
    "arithmetic": (("Calculate 3 + 4.", "3 + 4 = 7. So the answer is \\boxed{7}."),),
    "arithmetic-steps": (("Calculate 3 + 4.",
                          "First, I start with 3. Then I add 4 to get 7. So the answer is \\boxed{7}."),),
}
HELD_OUT_SEED_OFFSET = 1_000_003  # far from any training seed: reasoning-gym seeds item i with seed + i
TEMPLATE_SECONDS = 10.0  # one chat-template render; a real template takes milliseconds
SCORER_ONLY_TASKS = frozenset({"countdown"})  # gold is one valid solution among many


@dataclass(frozen=True)
class Problem:
    """One question with its gold answer; ``meta`` says where it came from (and holds a gym entry)."""

    prompt_id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """How one response fared: reward (1/0 or the task's graded score), verified correctness, answer."""

    reward: float
    correct: bool
    pred: str | None


def load_problems(task: str | None = DEFAULT_TASK, *, prompts_file=None, n: int | None = 8, seed: int = 0,
                  question_field: str = "question", answer_field: str = "answer",
                  split: str = "train") -> list[Problem]:
    """The first ``n`` problems of a reasoning-gym task, a prompts file or a Hugging Face dataset.

    Parameters
    ----------
    task : a reasoning-gym name (``gsm_symbolic``, ``basic_arithmetic``, ``countdown``, ...) or
        ``hf:NAME[:CONFIG]``; ignored when ``prompts_file`` is given.
    prompts_file : a .jsonl or .parquet file with one question/answer record per line/row.
    n : how many problems (files and hf: the first ``n``; None = all rows).
    seed : reasoning-gym generator seed (same seed, same problems).
    question_field, answer_field : field names in a file or hf dataset.
    split : hf dataset split.

    Returns
    -------
    list[Problem] with stable ``prompt_id``: ``task:index``, or the record's ``id`` field.

    Examples
    --------
    >>> [p.prompt_id for p in load_problems("basic_arithmetic", n=2)]
    ['basic_arithmetic:0', 'basic_arithmetic:1']
    """
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ReasonlensError(f"number of prompts n={n!r} must be a positive integer (or None for every row "
                              "of a file). Pass e.g. --num-prompts 8.")
    if prompts_file is not None:
        path = Path(prompts_file).expanduser()
        records = read_records(path)[:n]
        return _from_records(records, str(path), path.stem, question_field, answer_field, {"source": "file"})
    task = task or DEFAULT_TASK
    if task.startswith("hf:"):
        records = hf_records(task, split=split, n=n)
        return _from_records(records, f"dataset {task} ({split})", task[3:], question_field, answer_field,
                             {"source": "hf", "split": split})
    if n is None:
        raise ReasonlensError(f"task {task!r} is generated on demand: pass how many problems, e.g. --num-prompts 8.")
    return _gym_problems(task, n, seed)


def _from_records(records, source: str, label: str, question_field: str, answer_field: str,
                  meta: dict) -> list[Problem]:
    problems, seen = [], {}
    for index, (where, fields) in enumerate(records):
        question = field_value(source, where, fields, question_field, "--question-field (question_field=)")
        answer = field_value(source, where, fields, answer_field, "--answer-field (answer_field=)")
        prompt_id = record_id(fields) or f"{label}:{index}"
        if prompt_id in seen:
            raise ReasonlensError(f"{source} {where} repeats id {prompt_id!r} (first seen at {seen[prompt_id]}). "
                                  "Give every record a unique id, or drop the id field.")
        seen[prompt_id] = where
        problems.append(Problem(prompt_id, question, final_answer(answer), {**meta, "where": where}))
    return problems


def final_answer(answer: str) -> str:
    """GSM8K-style golds end their worked solution with '#### 72': keep just the answer."""
    return answer.rsplit("####", 1)[1].strip() if "####" in answer else answer


def parse_task(spec: str) -> tuple[str, dict]:
    """``"basic_arithmetic:max_terms=2,max_digits=1"`` -> the reasoning-gym name and its config values.

    >>> parse_task("basic_arithmetic:max_terms=2,allow_parentheses=false")
    ('basic_arithmetic', {'max_terms': 2, 'allow_parentheses': False})
    """
    name, _, options = spec.partition(":")
    config = {}
    for item in filter(None, options.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReasonlensError(f"task option {item!r} in {spec!r} is not KEY=VALUE: write the task as "
                                  "NAME:KEY=VALUE,KEY=VALUE (e.g. basic_arithmetic:max_terms=2).")
        key, value = key.strip(), value.strip()
        try:  # numbers, JSON literals and true/false in any case; anything else stays text
            config[key] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            config[key] = value
    return name, config


def _gym_problems(spec: str, n: int, seed: int) -> list[Problem]:
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    task, options = parse_task(spec)
    if task not in DATASETS:
        close = difflib.get_close_matches(task, DATASETS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ReasonlensError(f"unknown task {task!r}: expected a reasoning-gym task (e.g. gsm_symbolic, "
                              f"basic_arithmetic, countdown), hf:NAME[:CONFIG], or --prompts-file.{hint}")
    try:
        dataset = reasoning_gym.create_dataset(task, size=n, seed=seed, **options)
    except (TypeError, ValueError, AssertionError) as err:
        raise ReasonlensError(f"task {spec!r}: reasoning-gym rejected the options {options} ({err}); "
                              f"see the {task} dataset's config for valid names and ranges.") from None
    return [Problem(f"{task}:{i}", entry["question"], str(entry["answer"]),
                    {"source": "reasoning_gym", "task": task, "options": options, "seed": seed, "index": i,
                     "entry": entry})
            for i, entry in enumerate(dataset)]


def fewshot_examples(spec: str | None) -> tuple[tuple[str, str], ...]:
    """The worked examples ``spec`` names: a `FEWSHOT_PRESETS` key, or a JSONL/Parquet file of
    ``question``/``response`` records; None or "none" = no examples.

    >>> fewshot_examples("arithmetic")[0][1]
    '3 + 4 = 7. So the answer is \\\\boxed{7}.'
    """
    if spec is None or spec in FEWSHOT_PRESETS:
        return FEWSHOT_PRESETS[spec or "none"]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ReasonlensError(f"fewshot={spec!r} is neither a preset ({', '.join(FEWSHOT_PRESETS)}) nor a file "
                              "of question/response records.")
    examples = []
    for where, fields in read_records(path, "fewshot file", '{"question": ..., "response": ...}'):
        question = field_value(f"fewshot file {path}", where, fields, "question", "the 'question' field")
        response = field_value(f"fewshot file {path}", where, fields, "response", "the 'response' field")
        examples.append((question, response))
    return tuple(examples)


def chat_prompt(tokenizer, question: str, examples=()) -> str:
    r"""``question`` plus the \boxed{} instruction as one user turn, through the tokenizer's chat template.

    ``examples`` (see `fewshot_examples`) come first, each as a user turn (its question plus the same
    instruction) and an assistant turn (its response). A tokenizer without a chat template gets the
    plain text ``question\ninstruction\n``, each example as ``question\ninstruction\nresponse\n\n`` before it.
    """
    turns = []
    for example_question, response in examples:
        turns += [{"role": "user", "content": f"{example_question}\n{BOXED_INSTRUCTION}"},
                  {"role": "assistant", "content": response}]
    turns.append({"role": "user", "content": f"{question}\n{BOXED_INSTRUCTION}"})
    if not getattr(tokenizer, "chat_template", None):
        shots = "".join(f"{t['content']}\n" + ("\n" if t["role"] == "assistant" else "") for t in turns[:-1])
        return shots + turns[-1]["content"] + "\n"
    with time_limit(TEMPLATE_SECONDS, f"the chat template of {getattr(tokenizer, 'name_or_path', 'the tokenizer')} "
                    f"took over {TEMPLATE_SECONDS:g} s to render one prompt (runaway loops in the template?): fix "
                    "chat_template in its tokenizer_config.json, or use another model"):
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


@contextlib.contextmanager
def time_limit(seconds: float, message: str):
    """Raise ReasonlensError(``message``) if the block runs longer than ``seconds`` (SIGALRM: main thread only,
    elsewhere the block runs unlimited)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise ReasonlensError(message)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def held_out_problems(task: str, n: int, *, seed: int, exclude: set[str]) -> list[Problem]:
    """``n`` distinct problems of a reasoning-gym ``task`` whose questions are not in ``exclude`` (a run's
    training questions), drawn with ``seed``: more are drawn until enough are left, since small tasks
    (1-digit sums: 121 problems) repeat questions."""
    wanted, drawn = [], set()
    for size in (2 * n, 8 * n, 32 * n, 128 * n):
        for problem in load_problems(task, n=size, seed=seed):
            if problem.question not in exclude and problem.question not in drawn:
                drawn.add(problem.question)
                wanted.append(problem)
            if len(wanted) == n:
                return wanted
        wanted, drawn = [], set()
    raise ReasonlensError(f"task {task!r} has fewer than {n} problems the run did not train on; lower --num-prompts "
                          "or evaluate on a larger task.")


def score_response(response: str, problem: Problem) -> Score:
    r"""Grade one response against ``problem``: math-verify on its last \boxed{}, then the task's scorer.

    Examples
    --------
    >>> score_response(r"so \boxed{\frac{1}{2}}", Problem("p:0", "1/2?", "0.5"))
    Score(reward=1.0, correct=True, pred='\\frac{1}{2}')
    """
    pred = extract_boxed(response)
    task = problem.meta.get("task") if problem.meta.get("source") == "reasoning_gym" else None
    if task not in SCORER_ONLY_TASKS and pred is not None and answers_equivalent(problem.answer, pred):
        return Score(1.0, True, pred)
    if task is None:
        return Score(0.0, False, pred)
    score = _task_score(task, problem.meta["entry"], response if pred is None else pred)
    return Score(score, score >= 1.0, pred)


def _task_score(task: str, entry: dict, answer: str) -> float:
    """reasoning-gym's own score in [0, 1]; a scorer that trips over a strange answer counts as 0."""
    try:
        score = float(_gym_scorer(task)(answer, entry))
    except Exception as err:  # noqa: BLE001 - model output is arbitrary; one odd answer must not end a run
        warnings.warn(f"reasoning-gym scorer for {task!r} failed on {answer[:80]!r} ({err!r}); scored 0",
                      stacklevel=3)
        return 0.0
    return min(max(score, 0.0), 1.0)


@functools.lru_cache(maxsize=32)
def _gym_scorer(task: str):
    """The task's ``score_answer``; it needs only the task's default config, not the generated problems."""
    from reasoning_gym.factory import get_score_answer_fn

    return get_score_answer_fn(task)
