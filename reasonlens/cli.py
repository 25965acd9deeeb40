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
from reasonlens.options import LEXICON_HELP

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


def _d(name: str):
    """Default of an AnalyzeConfig field, so the CLI and the library cannot drift apart."""
    from reasonlens.config import AnalyzeConfig

    return AnalyzeConfig.default(name)


@app.command()
@_friendly
def analyze(
    path: Annotated[Optional[Path], typer.Argument(help=_h("path"), show_default=False)] = _d("path"),
    rollouts: Annotated[Optional[Path], typer.Option(help=_h("rollouts"))] = _d("rollouts"),
    out: Annotated[Optional[Path], typer.Option(help=_h("out"))] = _d("out"),
    base: Annotated[Optional[str], typer.Option(help=_h("base"))] = _d("base"),
    skip_bad: Annotated[bool, typer.Option(help=_h("skip_bad"))] = _d("skip_bad"),
    task: Annotated[str, typer.Option(help=_h("task"))] = _d("task"),
    prompts_file: Annotated[Optional[Path], typer.Option(help=_h("prompts_file"))] = _d("prompts_file"),
    question_field: Annotated[str, typer.Option(help=_h("question_field"))] = _d("question_field"),
    answer_field: Annotated[str, typer.Option(help=_h("answer_field"))] = _d("answer_field"),
    num_prompts: Annotated[int, typer.Option(help=_h("num_prompts"))] = _d("num_prompts"),
    eval_task: Annotated[Optional[str], typer.Option(help=_h("eval_task"))] = _d("eval_task"),
    samples: Annotated[int, typer.Option(help=_h("samples"))] = _d("samples"),
    max_new_tokens: Annotated[int, typer.Option(help=_h("max_new_tokens"))] = _d("max_new_tokens"),
    temperature: Annotated[float, typer.Option(help=_h("temperature"))] = _d("temperature"),
    top_p: Annotated[float, typer.Option(help=_h("top_p"))] = _d("top_p"),
    score_temperature: Annotated[float, typer.Option(help=_h("score_temperature"))] = _d("score_temperature"),
    seed: Annotated[int, typer.Option(help=_h("seed"))] = _d("seed"),
    batch_size: Annotated[int, typer.Option(help=_h("batch_size"))] = _d("batch_size"),
    device: Annotated[str, typer.Option(help=_h("device"))] = _d("device"),
    dtype: Annotated[str, typer.Option(help=_h("dtype"))] = _d("dtype"),
    lexicon: Annotated[str, typer.Option(help=_h("lexicon"))] = _d("lexicon"),
    tokenizer: Annotated[Optional[str], typer.Option(help=_h("tokenizer"))] = _d("tokenizer"),
    report: Annotated[bool, typer.Option(help=_h("report"))] = _d("report"),
):
    """Measure the two-phase dynamics of a checkpoint series, a training run, or a rollout log."""
    options = dict(locals())  # exactly the parameters above
    from reasonlens.config import AnalyzeConfig
    from reasonlens.pipeline import analyze as run_analysis

    out_dir = run_analysis(AnalyzeConfig(**options))
    _print_analysis(out_dir)


def _print_analysis(out_dir: Path) -> None:
    """The phases in words, the headline numbers, and (last, on stdout) where the report is."""
    import json

    summary = json.loads((out_dir / "summary.json").read_text())
    for name, phase in summary["phases"].items():
        said = f"step {phase['step']}" if phase.get("detected") else f"not detected ({phase.get('reason', '')})"
        console.print(f"[bold]{name}[/]: {said}", highlight=False)
    console.print(f"{summary['n_responses']} responses, {summary['tokens_scored']} tokens scored, "
                  f"{summary['seconds']:.0f} s, peak memory {summary['peak_rss_mb']:.0f} MB")
    report = out_dir / "report.html"
    typer.echo(str(report if report.exists() else out_dir))


@app.command()
@_friendly
def tag(
    text: Annotated[Optional[str], typer.Argument(help="Text to tag (default: --file, else stdin).",
                                                  show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option(help="Read the text from this UTF-8 file.")] = None,
    lexicon: Annotated[str, typer.Option(help=LEXICON_HELP)] = "paper",
    tokenizer: Annotated[Optional[str], typer.Option(help="Also label tokens: 'smollm2', a tokenizer folder "
                                                          "or a .gguf file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print spans, counts (and tokens) as JSON.")] = False,
):
    """Highlight the strategic grams (planning spans) in TEXT, a --file, or stdin."""
    import json

    from reasonlens.hierarchy.commands import highlighted, read_text, tag_result

    result = tag_result(read_text(text, file), lexicon=lexicon, tokenizer=tokenizer)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    Console(highlight=False).print(highlighted(result))
    n_tok = f", {sum(t['planning'] for t in result['tokens'])}/{len(result['tokens'])} planning tokens" \
        if "tokens" in result else ""
    console.print(f"{len(result['spans'])} gram occurrences ({result['lexicon']['name']}){n_tok}", highlight=False)


@app.command("mine-grams")
@_friendly
def mine_grams(
    rollouts: Annotated[Path, typer.Argument(help="rollouts.parquet or .jsonl with response and correct/reward.",
                                             show_default=False)],
    out: Annotated[Path, typer.Option(help="Lexicon file to write (cluster report: <stem>.clusters.csv).")],
    clustering: Annotated[str, typer.Option(help="'agglomerative' (cosine threshold) or 'kmeans'.")] = "agglomerative",
    distance_threshold: Annotated[float, typer.Option(help="Agglomerative cosine distance threshold.")] = 0.5,
    n_clusters: Annotated[Optional[int], typer.Option(help="Number of clusters (k-means; replaces the threshold).")] = None,
    top_fraction: Annotated[float, typer.Option(help="Share of clusters kept, highest CDF first.")] = 0.2,
    drop_fraction: Annotated[float, typer.Option(help="Share of mined phrases dropped at random.")] = 0.0,
    min_df: Annotated[int, typer.Option(help="Minimum number of responses an n-gram must occur in.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed for k-means and the random drop.")] = 0,
    embedder: Annotated[str, typer.Option(help="'minilm' (bundled) or a sentence-transformers folder.")] = "minilm",
    reward_threshold: Annotated[float, typer.Option(help="Without a 'correct' column: keep reward > this.")] = 0.5,
):
    """Mine a strategic-gram lexicon from the correct responses of a rollout file (paper section 2.1)."""
    from reasonlens.hierarchy.commands import mine_grams_file

    options = {k: v for k, v in locals().items() if k not in ("rollouts", "out", "mine_grams_file")}
    miner, report, n = mine_grams_file(rollouts, out, **options)
    selected = int(miner.clusters_["selected"].sum())
    console.print(f"{n} correct responses, {miner.config_['n_ngrams_embedded']} n-grams, "
                  f"{len(miner.clusters_)} clusters, {selected} kept -> {len(miner.lexicon_)} phrases "
                  f"({miner.lexicon_.name}); clusters: {report}", highlight=False)
    typer.echo(str(out))


def _th(name: str) -> str:
    """Help text of a TrainConfig field: documented once, in reasonlens/train/config.py."""
    from reasonlens.train.config import TrainConfig

    return TrainConfig.help(name)


def _td(name: str):
    from reasonlens.train.config import TrainConfig

    return TrainConfig.default(name)


@app.command("train-hicra")
@_friendly
def train_hicra(
    out: Annotated[Path, typer.Option(help=_th("out"))],
    model: Annotated[str, typer.Option(help=_th("model"))] = _td("model"),
    task: Annotated[str, typer.Option(help=_th("task"))] = _td("task"),
    prompts_file: Annotated[Optional[Path], typer.Option(help=_th("prompts_file"))] = None,
    method: Annotated[str, typer.Option(help=_th("method"))] = _td("method"),
    alpha: Annotated[float, typer.Option(help=_th("alpha"))] = _td("alpha"),
    planning_source: Annotated[str, typer.Option(help=_th("planning_source"))] = _td("planning_source"),
    steps: Annotated[int, typer.Option(help=_th("steps"))] = _td("steps"),
    prompts_per_step: Annotated[int, typer.Option(help=_th("prompts_per_step"))] = _td("prompts_per_step"),
    num_generations: Annotated[int, typer.Option(help=_th("num_generations"))] = _td("num_generations"),
    max_new_tokens: Annotated[int, typer.Option(help=_th("max_new_tokens"))] = _td("max_new_tokens"),
    lr: Annotated[float, typer.Option(help=_th("lr"))] = _td("lr"),
    format_reward: Annotated[float, typer.Option(help=_th("format_reward"))] = _td("format_reward"),
    seed: Annotated[int, typer.Option(help=_th("seed"))] = _td("seed"),
    save_every: Annotated[int, typer.Option(help=_th("save_every"))] = _td("save_every"),
    lora: Annotated[bool, typer.Option(help=_th("lora"))] = False,
    vllm: Annotated[str, typer.Option(help=_th("vllm"))] = _td("vllm"),
    resume: Annotated[bool, typer.Option(help=_th("resume"))] = False,
):
    """Train with HICRA (or grpo, entropy-topk, entropy-reg) on TRL; every step is logged for `analyze RUN`."""
    from reasonlens.train.config import TrainConfig
    from reasonlens.train.run import summary_line, train_hicra as run_training

    options = {k: v for k, v in locals().items() if k not in ("TrainConfig", "run_training", "summary_line")}
    run_dir = run_training(TrainConfig(**options), progress=True)
    console.print(summary_line(run_dir), highlight=False)
    typer.echo(str(run_dir))

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
    from reasonlens.report.analysis import compare as run_compare

    out_dir = run_compare(analyses, out, labels=label)
    console.print(f"compared {len(analyses)} analyses: {out_dir / 'comparison.csv'}", highlight=False)
    typer.echo(str(out_dir / "comparison.html"))


if __name__ == "__main__":
    app()
