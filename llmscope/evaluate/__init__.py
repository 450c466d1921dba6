"""The judge-and-fix loop: is an answer good, and would a change make it better.

``evaluations/`` judges answers (LLM judges and built-in checks, on sampled live traffic and in
batch); ``experiments/`` replays a cluster's calls with a candidate fix and judges the original
and the new answers with the same evaluators. The part calls models through the collector's
gateway and records what it replays through the collector's write path, so it may import
``llmscope.collector`` and the base; the collector, the analysis and the dashboard never import
it. Experiments use evaluations, never the reverse.
"""
