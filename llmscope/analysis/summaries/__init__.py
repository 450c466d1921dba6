"""Cluster summaries: an LLM explains each problem cluster; otherwise an honest extractive one.

For one run, :func:`summarize_report` picks the clusters worth an LLM's time (``choose.py``:
flagged for drift or as a thumbs-down hotspot first, then the largest few, at most
``Settings.summary_max_clusters``), gathers what the store says about each (``evidence.py``),
builds the prompt of :mod:`llmscope.analysis.prompts` and asks the OpenAI-compatible endpoint of
``Settings.summary_llm_url`` / ``summary_llm_model`` for a JSON object (``llm.py``; title,
summary, root_cause, suggested_fix, checked by ``parse.py``). Calls carry
``X-LLMScope-Internal: true`` so the gateway records them as internal and the analysis never
clusters them. A bad answer is retried once; a second failure, no LLM configured, or a spent
token budget gives an extractive summary (``extractive.py``: keywords, representative questions,
the numbers) marked ``generated_by: "extractive"``. LLM answers are cached in ``summaries`` by
a hash of the rendered prompt, so an unchanged cluster costs nothing. Every cluster of the run
gets a summary in ``run_clusters.summary`` and in the typed run report (``run.py``).
"""

from llmscope.analysis.summaries.extractive import extractive_summary
from llmscope.analysis.summaries.parse import SummaryError, parse_summary
from llmscope.analysis.summaries.run import summarize_report, summarize_run

__all__ = [
    "SummaryError",
    "extractive_summary",
    "parse_summary",
    "summarize_report",
    "summarize_run",
]
