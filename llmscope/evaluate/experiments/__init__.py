"""Experiments: replay a problem cluster's calls with a candidate fix and test the difference.

``spec`` parses a variant's SPEC and builds each record's replay request, ``dataset`` picks the
cluster's records, ``replay`` sends one replay through the gateway (internal, tagged) and judges
an answer with the evaluations' checks and judge client, ``runner`` plans (everything checked
before anything is called) and executes an experiment, ``report`` turns its stored answers into
the :class:`llmscope.experiment_report.ExperimentReport`, ``stats`` holds the paired tests
(exact McNemar, Wilcoxon signed-rank, intervals, the verdict) as pure functions, ``export``
writes datasets, ``cli`` the ``llmscope experiment`` commands.
"""
