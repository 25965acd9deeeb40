"""The `reasonlens` command line: thin typer commands that build a config and call one function.

Heavy libraries (torch, transformers) are imported inside the commands so `--help` starts fast.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reasonlens.errors import ReasonlensError

app = typer.Typer(
    help="See how RL changes an LLM's reasoning (execution vs planning), and train with HICRA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def _friendly(fn):
    """Turn a ReasonlensError into one red line and exit code 1 (the only place that does)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ReasonlensError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _h(name: str) -> str:
    """Help text of an AnalyzeConfig field: documented once, in reasonlens/config.py."""
    from reasonlens.config import AnalyzeConfig

    return AnalyzeConfig.help(name)


@app.command()
@_friendly
def analyze(
    path: Annotated[Optional[Path], typer.Argument(help=_h("path"), show_default=False)] = None,
    rollouts: Annotated[Optional[Path], typer.Option(help=_h("rollouts"))] = None,
    out: Annotated[Optional[Path], typer.Option(help=_h("out"))] = None,
    base: Annotated[Optional[str], typer.Option(help=_h("base"))] = None,
    skip_bad: Annotated[bool, typer.Option(help=_h("skip_bad"))] = False,
    task: Annotated[str, typer.Option(help=_h("task"))] = "gsm_symbolic",
    prompts_file: Annotated[Optional[Path], typer.Option(help=_h("prompts_file"))] = None,
    question_field: Annotated[str, typer.Option(help=_h("question_field"))] = "question",
    answer_field: Annotated[str, typer.Option(help=_h("answer_field"))] = "answer",
    num_prompts: Annotated[int, typer.Option(help=_h("num_prompts"))] = 8,
    eval_task: Annotated[Optional[str], typer.Option(help=_h("eval_task"))] = None,
    samples: Annotated[int, typer.Option(help=_h("samples"))] = 4,
    max_new_tokens: Annotated[int, typer.Option(help=_h("max_new_tokens"))] = 256,
    temperature: Annotated[float, typer.Option(help=_h("temperature"))] = 0.6,
    top_p: Annotated[float, typer.Option(help=_h("top_p"))] = 1.0,
    score_temperature: Annotated[float, typer.Option(help=_h("score_temperature"))] = 1.0,
    seed: Annotated[int, typer.Option(help=_h("seed"))] = 0,
    batch_size: Annotated[int, typer.Option(help=_h("batch_size"))] = 8,
    device: Annotated[str, typer.Option(help=_h("device"))] = "auto",
    dtype: Annotated[str, typer.Option(help=_h("dtype"))] = "auto",
    lexicon: Annotated[str, typer.Option(help=_h("lexicon"))] = "paper",
    tokenizer: Annotated[Optional[str], typer.Option(help=_h("tokenizer"))] = None,
    report: Annotated[bool, typer.Option(help=_h("report"))] = True,
):
    """Measure the two-phase dynamics of a checkpoint series, a training run, or a rollout log."""
    from reasonlens.config import AnalyzeConfig
    from reasonlens.pipeline import analyze as run_analysis

    options = {k: v for k, v in locals().items() if k != "AnalyzeConfig" and k != "run_analysis"}
    out_dir = run_analysis(AnalyzeConfig(**options))
    _print_analysis(out_dir)


def _print_analysis(out_dir: Path) -> None:
    """One table of the headline numbers, the phases in words, and where the report is."""
    import json

    summary = json.loads((out_dir / "summary.json").read_text())
    for name, phase in summary["phases"].items():
        said = f"step {phase['step']}" if phase.get("detected") else f"not detected ({phase.get('reason', '')})"
        console.print(f"[bold]{name}[/]: {said}", highlight=False)
    console.print(f"{summary['n_responses']} responses, {summary['tokens_scored']} tokens scored, "
                  f"{summary['seconds']:.0f} s, peak memory {summary['peak_rss_mb']:.0f} MB")
    report = out_dir / "report.html"
    typer.echo(str(report if report.exists() else out_dir))

# <<commands:tag>>

# <<commands:train-hicra>>

# <<commands:compare>>
