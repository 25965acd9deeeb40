"""Problems from reasoning-gym, user files and the hub; the chat prompt; grading of responses."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from reasonlens.errors import ReasonlensError
from reasonlens.sources.tasks import (BOXED_INSTRUCTION, FEWSHOT_PRESETS, Problem, chat_prompt, fewshot_examples,
                                     held_out_problems, load_problems, score_response)

GYM_TASKS = ["gsm_symbolic", "basic_arithmetic", "countdown"]


# --- reasoning-gym -------------------------------------------------------------------------------


@pytest.mark.parametrize("task", GYM_TASKS, ids=GYM_TASKS)
def test_gym_problems_deterministic_for_a_seed(task):
    first = load_problems(task, n=3, seed=7)
    assert [p.prompt_id for p in first] == [f"{task}:0", f"{task}:1", f"{task}:2"]
    assert [p.question for p in first] == [p.question for p in load_problems(task, n=3, seed=7)]
    assert [p.question for p in first] != [p.question for p in load_problems(task, n=3, seed=8)]
    assert all(p.answer and p.meta["task"] == task for p in first)


@pytest.mark.parametrize("task", GYM_TASKS, ids=GYM_TASKS)
def test_gym_scoring_right_and_wrong(task):
    problem = load_problems(task, n=1, seed=0)[0]
    right = score_response(f"Working... so \\boxed{{{problem.answer}}}", problem)
    assert right.correct and right.reward == 1.0 and right.pred == problem.answer
    wrong = score_response("I think \\boxed{123456789}", problem)
    assert not wrong.correct and wrong.reward < 1.0 and wrong.pred == "123456789"


def test_countdown_bare_target_is_wrong():
    """math-verify alone would call the target number equal to the gold expression: the task scorer decides."""
    problem = load_problems("countdown", n=1, seed=0)[0]
    target = problem.meta["entry"]["metadata"]["target"]
    assert not score_response(f"\\boxed{{{target}}}", problem).correct


def test_gsm_wrong_answer_gets_the_task_graded_score():
    # reasoning-gym's gsm_symbolic scorer gives 0.01 to a well-formed wrong answer: a graded reward
    problem = load_problems("gsm_symbolic", n=1, seed=0)[0]
    assert score_response("\\boxed{1}", problem).reward == pytest.approx(0.01)


def test_unboxed_response_falls_back_to_task_scorer():
    problem = load_problems("gsm_symbolic", n=1, seed=0)[0]
    score = score_response(f"The answer is {problem.answer}", problem)
    assert score.pred is None and score.correct and score.reward == 1.0


def test_unknown_task_suggests_names():
    with pytest.raises(ReasonlensError, match="unknown task 'gsm_symbolik'.*Did you mean gsm_symbolic"):
        load_problems("gsm_symbolik")


@pytest.mark.parametrize("n", [0, -2, None], ids=["zero", "negative", "none-for-gym"])
def test_bad_n(n):
    with pytest.raises(ReasonlensError, match="--num-prompts"):
        load_problems("basic_arithmetic", n=n)


# --- user files ----------------------------------------------------------------------------------


ROWS = [{"q": "What is 2+2?", "a": 4, "id": "add"},
        {"q": "Half of one?", "a": "0.5", "id": "half"},
        {"q": "Tom has 3 apples...", "a": "He has 3+4=7.\n#### 7", "id": "gsm"}]


def _jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(params=["jsonl", "parquet"])
def prompts_file(request, tmp_path):
    path = tmp_path / f"mine.{request.param}"
    if request.param == "jsonl":
        return _jsonl(path, ROWS)
    pd.DataFrame(ROWS).assign(a=lambda d: d["a"].astype(str)).to_parquet(path)
    return path


def test_file_with_custom_fields(prompts_file):
    problems = load_problems(None, prompts_file=prompts_file, n=None, question_field="q", answer_field="a")
    assert [p.prompt_id for p in problems] == ["add", "half", "gsm"]
    assert [p.answer for p in problems] == ["4", "0.5", "7"]  # GSM8K '#### 7' keeps just the answer
    assert problems[0].question == "What is 2+2?" and problems[0].meta["source"] == "file"
    assert score_response(r"\boxed{\frac{1}{2}}", problems[1]).correct


def test_file_first_n_and_index_ids(tmp_path):
    path = _jsonl(tmp_path / "plain.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(5)])
    problems = load_problems(prompts_file=path, n=2)
    assert [p.prompt_id for p in problems] == ["plain:0", "plain:1"]


def test_file_missing_field_names_line_and_fix(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [{"question": "a", "answer": "1"}, {"prompt": "b", "answer": "2"}])
    with pytest.raises(ReasonlensError, match=r"p\.jsonl line 2 has no field 'question' \(it has: prompt, answer\)"
                                              r"\. Set --question-field"):
        load_problems(prompts_file=path)


def test_parquet_missing_column(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"question": ["a"], "solution": ["1"]}).to_parquet(path)
    with pytest.raises(ReasonlensError, match=r"p\.parquet row 0 has no field 'answer'.*--answer-field"):
        load_problems(prompts_file=path)


def test_file_bad_json_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": \n')
    with pytest.raises(ReasonlensError, match=r"p\.jsonl line 3 is not valid JSON"):
        load_problems(prompts_file=path)


@pytest.mark.parametrize("content, message", [
    ('["not", "an", "object"]\n', "line 1 is a JSON list"),
    ('{"question": "", "answer": "1"}\n', "field 'question' is empty"),
    ('{"id": 1, "question": "a", "answer": "1"}\n{"id": 1, "question": "b", "answer": "2"}\n',
     "line 2 repeats id '1'"),
    ("", "holds no records"),
], ids=["not-object", "empty-question", "duplicate-id", "empty-file"])
def test_file_content_errors(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(ReasonlensError, match=message):
        load_problems(prompts_file=path)


def test_file_missing_or_wrong_suffix(tmp_path):
    with pytest.raises(ReasonlensError, match="does not exist"):
        load_problems(prompts_file=tmp_path / "none.jsonl")
    (tmp_path / "p.csv").write_text("question,answer\n")
    with pytest.raises(ReasonlensError, match="suffix '.csv'.*expected .jsonl"):
        load_problems(prompts_file=tmp_path / "p.csv")


def test_hf_dataset_offline_is_a_clear_error():
    with pytest.raises(ReasonlensError, match=r"could not load Hugging Face dataset 'openai/gsm8k' config='main'"
                                              r".*offline.*--prompts-file"):
        load_problems("hf:openai/gsm8k:main", n=2)


def test_hf_dataset_rows_and_fields(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return [{"problem": "1+1?", "solution": "2"}, {"problem": "2+2?", "solution": "4"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    problems = load_problems("hf:someone/math", n=2, question_field="problem", answer_field="solution", split="test")
    assert calls == [("someone/math", None, "test[:2]")]
    assert [(p.prompt_id, p.answer) for p in problems] == [("someone/math:0", "2"), ("someone/math:1", "4")]


def test_scoring_in_worker_threads():
    """Reward functions may run in threads: grading there must match grading in the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [(p, f"\\boxed{{{answer}}}") for task in GYM_TASKS for p in load_problems(task, n=2, seed=3)
             for answer in (p.answer, "987654")]
    expected = [score_response(text, p) for p, text in cases]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(lambda case: score_response(case[1], case[0]), cases)) == expected


# --- chat prompt ---------------------------------------------------------------------------------


def test_chat_prompt_uses_template(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    prompt = chat_prompt(tokenizer, "What is 2+2?")
    assert prompt == f"<|im_start|>user\nWhat is 2+2?\n{BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"


def test_chat_prompt_without_template(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.chat_template = None
    assert chat_prompt(tokenizer, "What is 2+2?") == f"What is 2+2?\n{BOXED_INSTRUCTION}\n"


def test_chat_prompt_fewshot_turns_come_first(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    prompt = chat_prompt(tokenizer, "What is 2+2?", [("1+1?", r"1 + 1 = 2. So the answer is \boxed{2}.")])
    assert prompt == (f"<|im_start|>user\n1+1?\n{BOXED_INSTRUCTION}<|im_end|>\n"
                      "<|im_start|>assistant\n1 + 1 = 2. So the answer is \\boxed{2}.<|im_end|>\n"
                      f"<|im_start|>user\nWhat is 2+2?\n{BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n")
    tokenizer.chat_template = None
    assert chat_prompt(tokenizer, "What is 2+2?", [("1+1?", "2")]) == (
        f"1+1?\n{BOXED_INSTRUCTION}\n2\n\nWhat is 2+2?\n{BOXED_INSTRUCTION}\n")


def test_fewshot_presets_and_files(tmp_path):
    assert fewshot_examples(None) == fewshot_examples("none") == ()
    for name, examples in FEWSHOT_PRESETS.items():  # every preset's example is graded correct by our grader
        for question, response in examples:
            gold = question.split("Calculate ")[1].rstrip(".")
            assert score_response(response, Problem("p:0", question, str(eval(gold)))).correct, name
    path = tmp_path / "shots.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "response": r"\boxed{2}"}) + "\n")
    assert fewshot_examples(str(path)) == (("1+1?", r"\boxed{2}"),)
    path.write_text(json.dumps({"question": "1+1?"}) + "\n")
    with pytest.raises(ReasonlensError, match="line 1 has no field 'response'"):
        fewshot_examples(str(path))
    with pytest.raises(ReasonlensError, match="neither a preset"):
        fewshot_examples("no-such-preset")


def test_held_out_problems_never_repeat_a_training_question():
    # 1-digit sums: 121 distinct problems, so 64 training draws repeat questions and overlap any other seed's
    task = "basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1,allow_parentheses=false,operators=+"
    training = {p.question for p in load_problems(task, n=64, seed=0)}
    assert len(training & {p.question for p in load_problems(task, n=32, seed=1)}) > 0  # seed + 1 is not held out
    held = held_out_problems(task, 32, seed=1_000_003, exclude=training)
    questions = [p.question for p in held]
    assert len(held) == 32 and len(set(questions)) == 32 and not set(questions) & training
    assert questions == [p.question for p in held_out_problems(task, 32, seed=1_000_003, exclude=training)]
    with pytest.raises(ReasonlensError, match="fewer than 200 problems the run did not train on"):
        held_out_problems(task, 200, seed=1_000_003, exclude=training)


def test_file_problem_scoring_without_box_is_wrong():
    problem = Problem("p:0", "2+2?", "4", {"source": "file"})
    assert score_response("it is 4", problem).correct is False
    assert score_response(r"\boxed{4}", problem).reward == 1.0


def test_task_options_configure_the_reasoning_gym_generator():
    problems = load_problems("basic_arithmetic:min_terms=2,max_terms=2,min_digits=1,max_digits=1", n=5, seed=3)
    # one-digit operands, two terms: "Calculate 5 - 3." and the like
    for p in problems:
        operands = [t for t in p.question.rstrip(".").split()[1:] if t.lstrip("-").isdigit()]
        assert len(operands) == 2 and all(len(t.lstrip("-")) == 1 for t in operands), p.question
        assert p.meta["options"]["max_terms"] == 2


def test_bad_task_options_name_the_fix():
    with pytest.raises(ReasonlensError, match="not KEY=VALUE"):
        load_problems("basic_arithmetic:max_terms", n=2)
    with pytest.raises(ReasonlensError, match="rejected the options"):
        load_problems("basic_arithmetic:no_such_option=1", n=2)
