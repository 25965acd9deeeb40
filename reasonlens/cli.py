"""The `reasonlens` command line: thin typer commands that build a config and call one function.

`analyze`, `train-hicra` and `mine-grams` are generated from `AnalyzeConfig`, `TrainConfig` and
`MineConfig`: one option per field, its help and default taken from the field, so no setting can be
missing from the CLI.
Errors become one red line and exit code 1 here and only here (``--debug`` keeps the traceback).
Heavy libraries (torch, transformers) are imported inside the commands so `--help` starts fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import signal
import sys
import threading
import typing
import warnings
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape

from reasonlens.analysis.config import AnalyzeConfig
from reasonlens.errors import ReasonlensError
from reasonlens.hierarchy.mine_config import MineConfig
from reasonlens.options import LEXICON_HELP, REMOTE_CODE_HELP
from reasonlens.train.config import TrainConfig

app = typer.Typer(
    help="See how RL changes an LLM's reasoning (execution vs planning), and train with HICRA.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
_DEBUG = "REASONLENS_DEBUG"


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False):
    """See how RL changes an LLM's reasoning (execution vs planning), and train with HICRA."""
    if debug:
        os.environ[_DEBUG] = "1"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so it stops like Ctrl-C: the step in progress is dropped,
    temporaries removed, locks released, finished steps kept."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM handled like SIGINT for the duration of a command (main thread only: signals go there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _friendly(fn: Callable) -> Callable:
    """Every failure becomes one red line and exit code 1 (Ctrl-C: 130, SIGTERM: 143); --debug re-raises."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(), _sigterm_as_interrupt():
            warnings.showwarning = _show_warning
            try:
                return fn(*args, **kwargs)
            except (typer.Exit, typer.Abort):
                raise
            except KeyboardInterrupt as err:
                said = "terminated" if isinstance(err, Terminated) else "interrupted"
                console.print(f"[bold red]{said}[/]: finished steps are kept; rerun the same command to "
                              "resume.", highlight=False)
                raise typer.Exit(128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)) from None
            except Exception as err:  # noqa: BLE001 - the CLI boundary: no traceback unless asked
                if os.environ.get(_DEBUG) == "1":
                    raise
                console.print(f"[bold red]error:[/] {escape(_message(err))}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None

    return wrapper


def _message(err: Exception) -> str:
    if isinstance(err, ReasonlensError):
        return str(err)
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        return f"{err.strerror}{where}. Free space or fix the permissions, then rerun to resume."
    return (f"unexpected {type(err).__name__}: {str(err).strip().splitlines()[0][:300] if str(err).strip() else ''}. "
            "This input or setting is not supported (or it is a bug): rerun with --debug for the traceback and "
            "report it.")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _config_command(name: str, config_cls, run: Callable, *, arguments=(), required=()) -> None:
    """Register command ``name`` with one option per field of ``config_cls`` (help and default from it)."""
    hints = typing.get_type_hints(config_cls, include_extras=True)
    params = []
    for f in dataclasses.fields(config_cls):
        flag = typer.Argument if f.name in arguments else typer.Option
        info = flag(help=f.metadata["help"], show_default=f.default is not None and f.name not in required)
        default = ... if f.name in required else f.default
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[hints[f.name], info]))

    def command(**options):
        return run(config_cls(**options))

    command.__signature__ = inspect.Signature(params)
    command.__doc__ = run.__doc__
    command.__name__ = name.replace("-", "_")
    app.command(name)(_friendly(command))


def run_analysis(config: AnalyzeConfig):
    """Measure the two-phase dynamics of a checkpoint series, a training run, or a rollout log."""
    from reasonlens.analysis.run import analyze
    from reasonlens.analysis.watch import watch

    say = functools.partial(_say, console)
    analysis = watch(config, say=say) if config.watch else analyze(config)
    if analysis is None:
        return
    summary = analysis.summary
    for name, phase in summary["phases"].items():
        said = f"step {phase['step']}" if phase.get("detected") else f"not detected ({phase.get('reason', '')})"
        console.print(f"[bold]{name}[/]: {escape(said)}", highlight=False)
    ran = summary.get("runtime") or {}
    where = f" on {ran['device']} ({ran['dtype']}, {ran['threads']} threads)" if ran else ""
    console.print(f"{summary['n_responses']} responses, {summary['tokens_scored']} tokens scored, "
                  f"{summary['seconds']:.0f} s{where}, peak memory {summary['peak_rss_mb']:.0f} MB", highlight=False)
    report = analysis.path / "report.html"
    typer.echo(str(report if report.exists() else analysis.path))


def _say(out: Console, line: str) -> None:
    out.print(escape(line), highlight=False, soft_wrap=True)


def run_training(config: TrainConfig):
    """Train with HICRA (or grpo, entropy-topk, entropy-reg) on TRL; every step is logged for `analyze RUN`."""
    from reasonlens.train.run import summary_line, train_hicra

    run_dir = train_hicra(config, progress=True)
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, the main process reports
        console.print(escape(summary_line(run_dir)), highlight=False)
        typer.echo(str(run_dir))


_config_command("analyze", AnalyzeConfig, run_analysis, arguments=("path",))
_config_command("train-hicra", TrainConfig, run_training, required=("out",))


def read_text(text: str | None, file: Path | None) -> str:
    """The text to tag: the argument, else the file, else stdin."""
    if text is not None and file is not None:
        raise ReasonlensError("tag got both TEXT and --file: expected one of them (or neither, to read stdin)")
    if file is None:
        return text if text is not None else sys.stdin.read()
    if not Path(file).is_file():
        raise ReasonlensError(f"--file {str(file)!r} does not exist: expected a UTF-8 text file")
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ReasonlensError(f"--file {str(file)!r} is not UTF-8 text (byte {err.start}: {err.reason}); "
                              "re-save it as UTF-8") from None


def highlighted(result: dict):
    """A rich Text of the result's text with the planning spans (union of all occurrences) styled."""
    from rich.text import Text

    out = Text(result["text"])
    for span in result["spans"]:
        out.stylize("bold magenta", span["start"], span["end"])
    return out


@app.command()
@_friendly
def tag(
    text: Annotated[Optional[str], typer.Argument(help="Text to tag (default: --file, else stdin).",
                                                  show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option(help="Read the text from this UTF-8 file.")] = None,
    lexicon: Annotated[str, typer.Option(help=LEXICON_HELP)] = "paper",
    tokenizer: Annotated[Optional[str], typer.Option(help="Also label tokens: 'smollm2', a tokenizer folder "
                                                          "or a .gguf file.")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help=REMOTE_CODE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print spans, counts (and tokens) as JSON.")] = False,
):
    """Highlight the strategic grams (planning spans) in TEXT, a --file, or stdin."""
    import json

    from reasonlens.hierarchy.tag import tag_text

    result = tag_text(read_text(text, file), lexicon=lexicon, tokenizer=tokenizer,
                        trust_remote_code=trust_remote_code)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    Console(highlight=False).print(highlighted(result))
    n_tok = f", {sum(t['planning'] for t in result['tokens'])}/{len(result['tokens'])} planning tokens" \
        if "tokens" in result else ""
    console.print(f"{len(result['spans'])} gram occurrences ({escape(result['lexicon']['name'])}){n_tok}",
                  highlight=False)


def run_mining(config: MineConfig):
    """Mine a strategic-gram lexicon from the correct responses of a rollout file (paper section 2.1)."""
    from reasonlens.hierarchy.mining import mine_file

    miner, report, n = mine_file(config)
    selected = int(miner.clusters_["selected"].sum())
    console.print(f"{n} correct responses, {miner.config_['n_ngrams_embedded']} n-grams, "
                  f"{len(miner.clusters_)} clusters, {selected} kept -> {len(miner.lexicon_)} phrases "
                  f"({escape(miner.lexicon_.name)}); clusters: {escape(str(report))}", highlight=False)
    typer.echo(str(config.out))


_config_command("mine-grams", MineConfig, run_mining, arguments=("rollouts",),
                required=("rollouts", "out"))


@app.command()
@_friendly
def compare(
    analyses: Annotated[list[Path], typer.Argument(help="Two or more analysis folders (the --out of `analyze`).",
                                                   show_default=False)],
    out: Annotated[Path, typer.Option(help="Folder for comparison.csv, comparison.html and figures/compare_*.png.")],
    label: Annotated[Optional[list[str]], typer.Option(help="Name of each analysis in the legend, "
                                                             "once per folder, in order (default: folder names).")] = None,
):
    """Overlay the dynamics curves of several analyses (GRPO vs HICRA, seeds) with a combined table."""
    from reasonlens.analysis.compare import compare as run_compare

    out_dir = run_compare(analyses, out, labels=label)
    console.print(f"compared {len(analyses)} analyses: {escape(str(out_dir / 'comparison.csv'))}", highlight=False)
    typer.echo(str(out_dir / "comparison.html"))


if __name__ == "__main__":
    app(prog_name="reasonlens")
