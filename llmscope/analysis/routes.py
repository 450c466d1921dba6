"""The traffic-split view: a gateway route's destinations compared, so a split is an A/B test.

A route (MLflow's ``routes:`` with ``destinations``) sends each call to one of several endpoints;
the record keeps ``route`` (what the app called) and ``endpoint`` (what answered). For every
route with two or more destinations seen, over the whole run and within each cluster, each
destination is compared with the route's other destinations on the same scope: the thumbs-down
rate and each evaluator's fail rate, each with a two-sided Fisher exact test. q-values are
Benjamini–Hochberg over the run's route tests, thumbs-down and evaluators apart.

Like the template A/B rows, these rows describe and carry q-values but raise no flag and no
alert, so they sit outside the report's alpha budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import fisher_exact

from llmscope.analysis.stats import benjamini_hochberg

__all__ = ["route_destinations"]


def _compare(this: Sequence[bool], others: Sequence[bool]) -> tuple[float | None, float | None]:
    """The share of True in ``this`` and the two-sided Fisher p against ``others``."""
    rate = sum(this) / len(this) if this else None
    if not this or not others:
        return rate, None
    table = [[sum(this), len(this) - sum(this)], [sum(others), len(others) - sum(others)]]
    return rate, float(fisher_exact(table, alternative="two-sided")[1])


def _scopes(
    records: Sequence[Mapping[str, Any]], labels: np.ndarray
) -> dict[tuple[str, int | None], dict[str, list[int]]]:
    """(route, cluster or None for the whole run) -> destination endpoint -> record indices."""
    scopes: dict[tuple[str, int | None], dict[str, list[int]]] = {}
    for i, r in enumerate(records):
        route, endpoint = r.get("route"), r.get("endpoint")
        if not route or not endpoint:
            continue
        cluster = int(labels[i]) if i < len(labels) and labels[i] >= 0 else None
        for scope in (None, cluster) if cluster is not None else (None,):
            scopes.setdefault((route, scope), {}).setdefault(endpoint, []).append(i)
    return {key: dests for key, dests in scopes.items() if len(dests) >= 2}


def route_destinations(
    records: Sequence[Mapping[str, Any]],
    labels: np.ndarray,
    down: Sequence[bool | None],
    passed: Mapping[str, Sequence[bool | None]] | None = None,
) -> list[dict[str, Any]]:
    """One row per route, scope (``cluster_id``: None = the whole run) and destination.

    ``down[i]`` is record i's newest thumb (None: unrated); ``passed[name][i]`` the evaluator's
    verdict on it (None: not evaluated). Rows are sorted by route, scope (whole run first) and
    endpoint, so the same records give the same rows.
    """
    passed = passed or {}
    rows: list[dict[str, Any]] = []
    down_tests: list[tuple[dict[str, Any], float]] = []
    eval_tests: list[tuple[dict[str, Any], float]] = []
    ordered = sorted(_scopes(records, labels).items(), key=lambda kv: (kv[0][0], kv[0][1] or -1))
    for (route, cluster), destinations in ordered:
        for endpoint in sorted(destinations):
            mine = destinations[endpoint]
            theirs = [i for other, idx in destinations.items() if other != endpoint for i in idx]
            thumbs = [bool(down[i]) for i in mine if down[i] is not None]
            other_thumbs = [bool(down[i]) for i in theirs if down[i] is not None]
            down_rate, down_p = _compare(thumbs, other_thumbs)
            row: dict[str, Any] = {
                "route": route,
                "cluster_id": cluster,
                "endpoint": endpoint,
                "records": len(mine),
                "rated": len(thumbs),
                "down_rate": down_rate,
                "others_rated": len(other_thumbs),
                "others_down_rate": _compare(other_thumbs, [])[0],
                "down_p_value": down_p,
                "down_q_value": None,
                "evaluations": {},
            }
            if down_p is not None:
                down_tests.append((row, down_p))
            for name, verdicts in sorted(passed.items()):
                failed = [not verdicts[i] for i in mine if verdicts[i] is not None]
                other_failed = [not verdicts[i] for i in theirs if verdicts[i] is not None]
                if not failed and not other_failed:
                    continue
                fail_rate, p = _compare(failed, other_failed)
                entry = {
                    "evaluated": len(failed),
                    "fail_rate": fail_rate,
                    "others_evaluated": len(other_failed),
                    "others_fail_rate": _compare(other_failed, [])[0],
                    "p_value": p,
                    "q_value": None,
                }
                row["evaluations"][name] = entry
                if p is not None:
                    eval_tests.append((entry, p))
            rows.append(row)
    for tests, key in ((down_tests, "down_q_value"), (eval_tests, "q_value")):
        for (target, _), q in zip(tests, benjamini_hochberg([p for _, p in tests]), strict=True):
            target[key] = q
    return rows
