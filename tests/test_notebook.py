"""notebooks/explore_entropy_curves.ipynb runs top to bottom on a fixture analysis (nbclient, python3 kernel)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from report_fixtures import make_analysis_dir

pytestmark = pytest.mark.slow  # starts a Jupyter kernel per case

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_entropy_curves.ipynb"


@pytest.mark.parametrize("text_only", [False, True], ids=["scored", "text-only"])
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch, text_only):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("REASONLENS_ANALYSIS", str(make_analysis_dir(tmp_path / "analysis", text_only=text_only)))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the kernel is this interpreter (jupyter_client maps the kernelspec's "python" to sys.executable)
    assert Path(outputs[-1]["text"].strip()).resolve() == Path(sys.executable).resolve()
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4  # entropy, dynamics, overlap, grams
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert 'class="plan"' in html
    text = "".join(o.get("text", "") for o in outputs)
    assert "Procedural consolidation ends at step 30" in text
