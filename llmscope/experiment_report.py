"""The experiment report: the one typed shape of what an experiment found.

``llmscope experiment run`` builds an :class:`ExperimentReport` and stores it in
``experiments.report``; ``llmscope experiment show``, ``--json`` and
``GET /api/v1/experiments/{id}`` (its response model) print the same JSON:

- ``baseline``: :class:`Side` over the original answers (``pass_rate``, ``mean_score``,
  ``latency_p50`` in ms, ``tokens``, ``cost`` in USD, and how many answers were judged);
- ``variants[]``: the same per variant, plus the paired comparison with the baseline on the
  same records (``p_value`` exact McNemar on pass/fail, ``score_p_value`` Wilcoxon signed-rank
  on scores, ``ci`` of the pass-rate difference, ``score_ci`` of the mean score difference, a
  ``verdict``, and ``needed_sample``: the records it would take to tell, when no difference was
  detectable).

A figure that cannot be computed (no judged answer) is ``null``, never NaN.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


Figure = Annotated[float | None, AfterValidator(_finite)]


class Side(BaseModel):
    """One side's answers: the original ones or a variant's."""

    model_config = ConfigDict(extra="allow")

    answers: int = 0  # records answered (for a variant: replayed without error)
    errors: int = 0  # replays that failed
    judged: int = 0  # answers with a pass/fail from every evaluator that judged them
    pass_rate: Figure = None
    mean_score: Figure = None  # mean of the LLM judges' 1-5 scores
    latency_p50: Figure = None
    tokens: int = 0
    cost: Figure = None


class VariantResult(Side):
    """A variant's answers and its paired comparison with the baseline."""

    name: str  # "1", "2", ... in the order given
    spec: str  # as given on the command line
    resolved: dict[str, Any] = Field(default_factory=dict)  # endpoint, template, params
    reused: int = 0  # answers taken from an earlier experiment with the same spec
    pairs: int = 0
    pass_rate_difference: Figure = None
    ci: tuple[float, float] | None = None
    p_value: Figure = None
    score_pairs: int = 0
    mean_score_difference: Figure = None
    score_ci: tuple[float, float] | None = None
    score_p_value: Figure = None
    verdict: str = "no detectable difference"
    needed_sample: int | None = None


class ExperimentReport(BaseModel):
    """What ``experiments.report`` holds and the API serves."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str  # done | stopped (budget reached: some answers missing)
    created_at: datetime
    run_id: str
    cluster_id: int
    records: int
    evaluators: list[str]
    baseline: Side
    variants: list[VariantResult]
    stopped: str | None = None  # why, in words

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


TEMPLATE_TEXT_MAX_BYTES = 256 * 1024
"""The largest candidate template (UTF-8 bytes): a ``template_text`` the API takes, a
``template-file`` the CLI reads."""
MAX_SAMPLE = 10_000
"""The most records one experiment replays (the API's ``sample``, the dashboard's Records)."""


def _bounded_text(text: str | None) -> str | None:
    if text is not None and len(text.encode("utf-8", "surrogatepass")) > TEMPLATE_TEXT_MAX_BYTES:
        raise ValueError(f"larger than {TEMPLATE_TEXT_MAX_BYTES // 1024} KiB of UTF-8")
    return text


class VariantRequest(BaseModel):
    """A variant as parts (``POST /api/v1/experiments``), the candidate sent as its text (the
    API never reads a path): ``template`` (``NAME@VERSION`` under ``prompts:``) or
    ``template_text`` (``{{variable}}`` placeholders, at most ``TEMPLATE_TEXT_MAX_BYTES``),
    ``endpoint`` (an endpoint or a traffic-split route) and ``params`` (``temperature``,
    ``max_tokens``, ...)."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(default=None, min_length=1, max_length=300)
    template_text: Annotated[str | None, AfterValidator(_bounded_text)] = None
    endpoint: str | None = Field(default=None, min_length=1, max_length=300)
    params: dict[str, Any] = Field(default_factory=dict)


class ExperimentRequest(BaseModel):
    """The body of ``POST /api/v1/experiments``: what ``llmscope experiment run`` takes."""

    model_config = ConfigDict(extra="forbid")

    cluster_id: int
    run: str = Field(default="latest", min_length=1, max_length=64)  # a run id or "latest"
    variants: list[str | VariantRequest] = Field(min_length=1, max_length=10)  # SPEC or parts
    evaluators: list[str] | None = None  # default: every evaluator in the gateway config
    sample: int = Field(default=100, ge=1, le=MAX_SAMPLE)


class ExperimentStatus(BaseModel):
    """Where an experiment is (``GET /api/v1/experiments/{id}/status``): ``done`` of ``total``
    answers judged while ``running``; ``done``, ``stopped`` (its report is served) or ``failed``
    (``error`` says why) after."""

    id: str
    status: str  # running | done | stopped | failed
    cluster_id: int
    run_id: str
    done: int
    total: int
    error: str | None = None
