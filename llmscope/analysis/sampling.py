"""Bounded runs: a seeded uniform sample per window above ``LLMSCOPE_ANALYSIS_MAX_RECORDS``.

A run over more records than the bound analyses a uniform random sample of each window
(seeded by ``LLMSCOPE_ANALYSIS_SEED``, so the same store gives the same sample): each window
gets up to half of the budget, and what one window does not need goes to the other. Within a
window every record has the same chance to be drawn, so a cluster's share of the window, its
thumbs-down rate and every test on them are unbiased estimates from a sample of known size;
p-values are computed on the sample (honest about its size).

Counts in the report stay in the unit a reader expects, records of the window:
:func:`scale_to_totals` sets each window's ``records`` to its true total and multiplies a
cluster's sample counts (and its rated / thumbs-down counts) by the window's inverse sampling
rate, rounded, so ``count / records`` is the sample's share. The report's ``sample`` says
``{max_records, analysed}``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmscope.analysis.pipeline import RunResult


@dataclass(frozen=True)
class Sample:
    """Which records a run analyses: ``keep`` (sorted indices) of each window's ``total``."""

    keep: np.ndarray
    max_records: int
    baseline_total: int
    current_total: int
    baseline_kept: int
    current_kept: int

    @property
    def sampled(self) -> bool:
        return self.baseline_kept < self.baseline_total or self.current_kept < self.current_total

    @property
    def weights(self) -> tuple[float, float]:
        """How many records of its window each analysed record stands for (baseline, current)."""
        return (
            self.baseline_total / self.baseline_kept if self.baseline_kept else 1.0,
            self.current_total / self.current_kept if self.current_kept else 1.0,
        )


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


def scale_to_totals(result: RunResult, sample: Sample) -> None:
    """Put a sampled run's counts back in records of the window (see the module doc).

    ``result`` is the pipeline's ``RunResult``: its window totals become the true ones, and
    each cluster's counts are scaled by the window weights. A run that was not sampled is left
    as it is.
    """
    if not sample.sampled:
        return
    w_base, w_cur = sample.weights
    result.baseline_records = sample.baseline_total
    result.current_records = sample.current_total
    for cluster in result.clusters:
        cluster.baseline_count = round(cluster.baseline_count * w_base)
        cluster.current_count = round(cluster.current_count * w_cur)
        spot: Any = cluster.hotspot
        if spot is not None:
            # Hotspots are tested on the current window's thumbs.
            cluster.hotspot = dataclasses.replace(
                spot, rated=round(spot.rated * w_cur), down=round(spot.down * w_cur)
            )
