"""``llmscope analyze`` in a fresh process imports only what its run uses: no torch or
sentence-transformers for the bundled model on the CPU, no openai without a summary LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llmscope.db import make_engine, upgrade
from tests.analysis.traffic import BASELINE, CURRENT, seed_traffic

HEAVY = {"torch", "sentence_transformers", "transformers", "openai"}


def analyze(tmp_path: Path, url: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``python -X importtime -m llmscope analyze --json`` on ``url`` with the default
    settings: the process and the top-level packages it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSCOPE_")}
    env |= {"LLMSCOPE_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "llmscope", "analyze", "--json",
         "--database-url", url, "--baseline", BASELINE, "--current", CURRENT],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return done, imported


def test_an_empty_store_imports_no_model_and_no_llm_client(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(make_engine(url))
    done, imported = analyze(tmp_path, url)
    assert done.returncode == 1 and "nothing to analyse" in done.stderr
    assert "llmscope" in imported and "sqlalchemy" in imported  # the parse saw the imports
    assert not imported & (HEAVY | {"numpy", "umap", "sklearn"})


def test_a_small_run_embeds_in_numpy_without_torch_or_openai(tmp_path: Path) -> None:
    """A 40-record run with the default settings: UMAP's kNN graph is numpy's at this size."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    seed_traffic(engine, per_window=20)
    engine.dispose()
    done, imported = analyze(tmp_path, url)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["params"]["embedding_backend"] == "torch" and report["clusters"]
    assert {"tokenizers", "safetensors"} <= imported  # the numpy MiniLM embedded it
    assert not imported & HEAVY
