"""The automatic number of clusters: a cut that fits the number of points, not the finest one."""

from __future__ import annotations

import math

import numpy as np

from llmscope.analysis.cluster import cluster, most_clusters


def _topics_of_paraphrases(topics: int, groups: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``topics`` far-apart topics in 5-d, each made of ``groups`` tight groups of ``size``
    near-identical points (as a topic's paraphrases are): the finest cut has the best
    silhouette, but splits each topic into groups too small to test."""
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 100, (topics, 5))
    points, topic = [], []
    for t in range(topics):
        for _ in range(groups):
            middle = centres[t] + rng.normal(0, 8, 5)
            points.append(middle + rng.normal(0, 0.2, (size, 5)))
            topic += [t] * size
    return np.vstack(points), np.array(topic)


def test_the_cut_is_the_topics_not_their_paraphrase_groups() -> None:
    points, topic = _topics_of_paraphrases(topics=8, groups=5, size=25)  # 1,000 points
    n = len(points)
    assert math.sqrt(n) < 8 * 5  # the 40 groups are more clusters than the rule allows

    result = cluster(points, seed=0)

    assert result.n_clusters == 8
    for t in range(8):  # each cluster is exactly one topic
        assert len(np.unique(result.labels[topic == t])) == 1
    # Without the bound (the old rule: any k up to n / min_size) the finest cut wins.
    finer = cluster(points, seed=0, max_clusters=150, min_size=10, clusters_per_sqrt_n=None)
    assert finer.n_clusters > math.sqrt(n)  # ~40: the paraphrase groups


def test_the_most_clusters_grows_with_the_square_root_of_n() -> None:
    assert most_clusters(1_157, max_clusters=150, min_size=10) == 35
    assert most_clusters(2_741, max_clusters=150, min_size=10) == 53
    assert most_clusters(10_003, max_clusters=150, min_size=10) == 101
    assert most_clusters(100_000, max_clusters=150, min_size=10) == 150  # the setting's cap
    assert most_clusters(150, max_clusters=150, min_size=10) == 13  # the minimum size's
    assert most_clusters(1_000, max_clusters=150, min_size=10, clusters_per_sqrt_n=None) == 100
