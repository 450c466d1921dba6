"""Evaluations: judge sampled answers with an LLM judge or built-in checks, store the verdicts.

``config`` reads the ``evaluators:`` section of the gateway YAML (versions, sampling, filters),
``checks`` holds the built-in checks, ``judge`` the LLM judge's prompt, its answer's parsing and
its call through the gateway, ``store`` the ``evaluations`` rows (claims, so nothing is judged
twice), ``runner`` judges a time range (``llmscope evaluate``) and ``online`` judges new records
in the background of ``llmscope serve``. The statistics per cluster are the analysis' business.
"""
