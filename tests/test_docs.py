"""The generated docs stay true: docs/cli.md is what tools/cli_reference.py writes from the CLI today."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_in_sync_with_the_configs():
    reference = runpy.run_path(str(ROOT / "tools" / "cli_reference.py"))
    page = reference["render"]()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == page, \
        "docs/cli.md is stale: run python tools/cli_reference.py"
    # every config field is documented, with its own help (an independent route: the dataclasses)
    import dataclasses

    from reasonlens.analysis.config import AnalyzeConfig
    from reasonlens.hierarchy.mine_config import MineConfig
    from reasonlens.train.config import TrainConfig

    for config in (AnalyzeConfig, TrainConfig, MineConfig):
        for field in dataclasses.fields(config):
            assert " ".join(field.metadata["help"].split()).replace("|", "\\|") in page, field.name


def test_readme_is_short_and_links_what_moved():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 9 * 1024
    for page in ("docs/install.md", "docs/scale.md", "docs/layouts.md", "docs/cli.md", "docs/performance.md",
                 "docs/architecture.md"):
        assert page in readme and (ROOT / page).is_file(), page
