r"""Rewards for training, in TRL's reward-function signature ``f(prompts, completions, **columns)``.

The task reward is ``sources.tasks.score_response`` (math-verify on the last \boxed{} answer, then
the task's own scorer): the same grading `analyze` uses, so training and analysis agree on
"correct". The scores of the latest call are kept in call order (TRL grades this process's
completions in sampling order), so the trainer records pred/correct without grading twice.
"""

from __future__ import annotations

from typing import Sequence

from reasonlens.sources.answers import extract_boxed
from reasonlens.sources.files import cell_text
from reasonlens.sources.tasks import Problem, Score, score_response


class TaskReward:
    r"""Callable TRL reward: ``score_response(completion, problem).reward`` for each completion
    (TRL passes strings for text prompts and [{"role", "content"}] for conversational ones).

    Parameters
    ----------
    problems : the training problems; dataset rows carry their ``prompt_id``.

    Examples
    --------
    >>> reward = TaskReward([Problem("p:0", "1+1?", "2")])
    >>> reward(prompts=["q"], completions=[r"so \boxed{2}"], prompt_id=["p:0"])
    [1.0]
    """

    __name__ = "task"  # TRL names the reward's metric columns after this

    def __init__(self, problems: Sequence[Problem]):
        self.problems = {p.prompt_id: p for p in problems}
        self.latest_: list[Score] = []

    def __call__(self, prompts, completions, prompt_id, **kwargs) -> list[float]:
        self.latest_ = [score_response(cell_text(c), self.problems[pid]) for pid, c in zip(prompt_id, completions)]
        return [score.reward for score in self.latest_]


def format_reward(prompts, completions, **kwargs) -> list[float]:
    r"""1.0 when the completion contains a \boxed{} answer, else 0.0 (weighted by --format-reward).

    Examples
    --------
    >>> format_reward(["q", "q"], [r"\boxed{3}", "3"])
    [1.0, 0.0]
    """
    return [1.0 if extract_boxed(cell_text(c)) is not None else 0.0 for c in completions]
