"""The Ward tree around the cut: the nodes below each cluster and the ancestors above it.

``cluster.py`` cuts a Ward tree over micro-clusters; a cluster is one subtree. What lives
below the cut (one hot intent merged with three calm neighbours, a new intent inside a stable
cluster) is visible on the subtree's nodes, and a cluster too small to test is still covered
by the node above it. This module only describes the tree: which micro-clusters each node
holds, its parent, and per-node sums of per-micro counts. The tests on the nodes live in
``hierarchy.py`` (the procedure) and ``pipeline.py`` (the wiring).

Node ids are scipy's: ``0 .. n_micro-1`` are the micro-clusters (leaves), ``n_micro + i`` is
the node made by row ``i`` of the linkage matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmscope.analysis.cluster import Clustering


@dataclass(frozen=True)
class Tree:
    """The Ward tree of one clustering, with each node's place relative to the cut."""

    n_micro: int
    children: dict[int, tuple[int, int]]  # internal node -> its two children
    parent: dict[int, int]  # node -> its parent (the root has none)
    leaves: dict[int, np.ndarray]  # node -> the micro-clusters it holds
    cut_root: dict[int, int]  # cluster id -> the node that is that cluster
    _below: dict[int, list[int]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def root(self) -> int:
        return self.n_micro + len(self.children) - 1 if self.children else 0

    def below(self, cluster_id: int) -> list[int]:
        """The nodes strictly below a cluster's node, parents before children."""
        if cluster_id in self._below:
            return self._below[cluster_id]
        top = self.cut_root.get(cluster_id)
        out: list[int] = [] if top is None else list(self.children.get(top, ()))
        for node in out:  # grows while it is walked: breadth first
            out.extend(self.children.get(node, ()))
        self._below[cluster_id] = out
        return out

    def above(self, cluster_id: int) -> list[int]:
        """The ancestors of a cluster's node, nearest first, up to the root."""
        node = self.cut_root.get(cluster_id)
        chain: list[int] = []
        while node is not None and node in self.parent:
            node = self.parent[node]
            chain.append(node)
        return chain

    def sums(self, per_micro: np.ndarray) -> dict[int, np.ndarray]:
        """Per node, the sum of ``per_micro`` (n_micro x f) over the micro-clusters it holds."""
        totals = {m: per_micro[m] for m in range(self.n_micro)}
        for node in sorted(self.children):  # scipy numbers a node after both its children
            a, b = self.children[node]
            totals[node] = totals[a] + totals[b]
        return totals


def build_tree(clustering: Clustering) -> Tree | None:
    """The tree of ``clustering``, or None when it has no tree (fewer than two micro-clusters)."""
    z, micro_cluster = clustering.linkage, clustering.micro_cluster
    if z is None or micro_cluster is None or clustering.micro_labels is None:
        return None
    n_micro = len(z) + 1
    children: dict[int, tuple[int, int]] = {}
    parent: dict[int, int] = {}
    leaves: dict[int, np.ndarray] = {m: np.array([m]) for m in range(n_micro)}
    # The final cluster a node belongs to wholly (-2: mixed or none).
    owner: dict[int, int] = {m: int(micro_cluster[m]) for m in range(n_micro)}
    for row, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        node = n_micro + row
        children[node] = (int(a), int(b))
        parent[int(a)] = parent[int(b)] = node
        leaves[node] = np.concatenate([leaves[int(a)], leaves[int(b)]])
        owner[node] = owner[int(a)] if owner[int(a)] == owner[int(b)] else -2
    cut_root: dict[int, int] = {}
    for node, c in owner.items():
        if c >= 0 and owner.get(parent.get(node, -1), -2) != c:
            cut_root[c] = node
    return Tree(n_micro, children, parent, leaves, cut_root)
