"""Shared fixtures: offline environment, a tiny tokenizer and model built on the spot, a checkpoint series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_models import tiny_model, tiny_tokenizer
from tiny_models import tiny_series as tiny_series_at

# One converted copy of the bundled SmolLM2 for all test sessions and xdist workers (a filelock guards it).
SHARED_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "reasonlens-cache"


@pytest.fixture(autouse=True, scope="session")
def _offline_env():
    """No hub; the real bundled models load from site-packages, converted once into SHARED_CACHE. Under
    pytest-xdist each worker gets one torch thread: two workers with two threads each on two cores run
    several times slower than one each."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("REASONLENS_CACHE", str(SHARED_CACHE))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ.setdefault("OMP_NUM_THREADS", "1")  # also for the commands the tests start
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE (GPT-2 style, 400 tokens) with ChatML special tokens and template."""
    return tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer_dir, tmp_path_factory):
    """A random 2-layer Llama (hidden 64) saved as an HF folder with the tiny tokenizer."""
    return tiny_model(tmp_path_factory.mktemp("tiny-model"), tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_series(tiny_model_dir, tmp_path_factory):
    """A TRL-style series `checkpoint-1..3`, each one SGD step further on the corpus."""
    return tiny_series_at(tmp_path_factory.mktemp("tiny-series"), tiny_model_dir)
