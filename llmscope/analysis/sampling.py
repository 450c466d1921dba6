"""Bounded runs: which records are clustered above ``LLMSCOPE_ANALYSIS_MAX_RECORDS``.

A run over more records than the bound clusters the distinct texts of a uniform random sample
of each window (seeded by ``LLMSCOPE_ANALYSIS_SEED``, so the same store gives the same sample):
each window gets up to half of the budget, and what one window does not need goes to the
other. Every other record of both windows is then assigned to one of the sample's clusters
(``assign.py``), so counts, shares, thumbs-down rates and every test are computed on all
records and all ratings, in records of the window. The report's ``sample`` says
``{max_records, analysed}``: ``analysed`` is how many records were clustered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    """Which records a run clusters: ``keep`` (sorted indices) of each window's ``total``."""

    keep: np.ndarray
    max_records: int
    baseline_total: int
    current_total: int
    baseline_kept: int
    current_kept: int

    @property
    def sampled(self) -> bool:
        return self.baseline_kept < self.baseline_total or self.current_kept < self.current_total


def budget(baseline: int, current: int, max_records: int) -> tuple[int, int]:
    """Records to analyse per window: up to half each, the unused part to the other window."""
    half = max_records // 2
    take_current = min(current, max(half, max_records - baseline))
    take_baseline = min(baseline, max_records - take_current)
    return take_baseline, take_current


def sample_windows(is_current: np.ndarray, max_records: int, seed: int) -> Sample:
    """A seeded uniform sample of each window, within ``max_records`` in all."""
    current = np.flatnonzero(is_current)
    baseline = np.flatnonzero(~is_current)
    take_baseline, take_current = budget(len(baseline), len(current), max_records)
    rng = np.random.default_rng(seed)
    kept = [
        np.sort(rng.choice(group, size=take, replace=False)) if take < len(group) else group
        for group, take in ((baseline, take_baseline), (current, take_current))
    ]
    return Sample(
        keep=np.sort(np.concatenate(kept)).astype(np.int64),
        max_records=max_records,
        baseline_total=len(baseline),
        current_total=len(current),
        baseline_kept=take_baseline,
        current_kept=take_current,
    )
