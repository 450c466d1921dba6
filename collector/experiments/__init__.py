"""Experiments: replay a problem cluster's calls with a candidate fix and test the difference.

``stats`` holds the paired tests (exact McNemar, Wilcoxon signed-rank, intervals, the verdict),
pure functions on arrays.
"""
