"""Atomic writes, cache keys and provenance."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from reasonlens.records import atomic_path, cache_key, provenance, write_json


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    target = tmp_path / "a" / "table.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert list((tmp_path / "a").iterdir()) == []


def test_write_json_replaces_atomically_and_handles_odd_values(tmp_path):
    import numpy as np

    record = {"p": Path("/a"), "f": Fraction(1, 3), "nan": float("nan"), "np_nan": np.float64("nan"),
              "inf": float("inf"), "np_int": np.int64(3)}
    path = write_json(tmp_path / "x.json", record)
    assert json.loads(path.read_text()) == {"p": "/a", "f": "1/3", "nan": None, "np_nan": None, "inf": None,
                                            "np_int": 3}  # strict JSON: no NaN/Infinity tokens


def test_cache_key_is_order_free_for_dicts_and_sensitive_to_values():
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    assert cache_key({"f": Fraction(1, 3)}) != cache_key({"f": Fraction(1, 4)})


def test_provenance_names_version_libraries_and_date():
    record = provenance()
    assert record["reasonlens_version"]
    assert record["libraries"]["torch"] and record["libraries"]["pandas"]
    assert record["date"].endswith("+00:00")
