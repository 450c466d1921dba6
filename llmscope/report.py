"""The run report: the one typed shape of what an analysis run found.

The analysis builds a :class:`RunReport`, stores ``report.to_json()`` in ``analysis_runs.report``
and serves it at ``GET /api/v1/analysis/runs/{latest|run_id}`` (declared as the response model,
so OpenAPI documents every key); the dashboard, the alerts and the demo read it back with
:meth:`RunReport.from_stored`. ``docs/reference/run-report.md`` is generated from these models
(``llmscope.app.reference``), so the documented JSON is this one, key for key and in order.

Guarantees:

- **Unknown keys are refused.** A misspelt key (``down_pvalue``) is a validation error naming
  it, not a silently kept extra beside a ``down_p_value`` left null (``extra="forbid"``).
- **Old runs load.** :meth:`ReportModel.from_stored` is the lenient path for what the store
  holds: keys that earlier runs lack get defaults (``template_versions`` and ``alerts`` empty,
  no ``summary``), and keys this code no longer knows (removed since the run was written) are
  dropped. Everything that reads a run from the store goes through it.
- **Never NaN.** A figure that cannot be computed (a percentile of nothing, an untested
  hotspot's p-value) is ``None``/``null``: non-finite floats are turned into ``None`` on the way in.
- **Times** are timezone-aware UTC ``datetime`` values in Python and RFC 3339 strings ending in
  ``Z`` in the JSON (a stored time without an offset is read as UTC).

To add a key: add a field with a default (so stored runs still load) in the place the JSON
should show it. A key that only some entries carry (``prompt_version`` of an LLM summary) is
declared with :func:`omitted_while_none`: left out of the JSON while it is ``None``; the
evaluations' keys (``clusters[].evaluations``, ``evaluators``, ``template_versions[].evaluations``)
with :func:`omitted_while_empty`: present once a run has evaluations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    ValidationInfo,
    model_validator,
)

__all__ = [
    "Agreement",
    "AlertEntry",
    "ClusterEntry",
    "ClusterSummary",
    "Drift",
    "EvaluationHotspot",
    "EvaluatorEntry",
    "DriftKind",
    "Finding",
    "MixShare",
    "FeedbackCounts",
    "GlobalDrift",
    "Hotspot",
    "HotspotKind",
    "HotspotTest",
    "Implicit",
    "LatencySlice",
    "NovelGroup",
    "REGRESSION_METRICS",
    "Regression",
    "RephraseRate",
    "ReportModel",
    "RunReport",
    "SampleInfo",
    "SessionOutcomes",
    "TemplateVersionRow",
    "TokenSlice",
    "WindowInfo",
    "deepest_subcluster",
    "finite",
    "omitted_while_empty",
    "omitted_while_none",
    "stored_members",
    "utc_iso",
]


def finite(value: float | None) -> float | None:
    """A JSON-safe number: NaN and infinities become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(moment: datetime) -> str:
    """``2026-11-20T12:00:00Z``: RFC 3339 in UTC, as every time in the report is written."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


# A figure of the report: a float, or None when it cannot be computed (never NaN).
Number = Annotated[float | None, AfterValidator(finite)]
# A moment in UTC; in the JSON an RFC 3339 string ending in Z.
Timestamp = Annotated[
    datetime, AfterValidator(_utc), PlainSerializer(utc_iso, return_type=str, when_used="json")
]
DriftKind = Literal["new", "grew", "shrank", "vanished", "stable", "not tested"]


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


def omitted_while_empty(description: str) -> Any:
    """A mapping only runs with evaluations carry: empty by default, and then left out of the
    JSON, so a run without evaluators (and every stored run before them) keeps its shape."""
    return Field(default_factory=dict, exclude_if=_is_empty, description=description)


def omitted_while_none(description: str) -> Any:
    """A field that only some entries carry: ``None`` by default, and then left out of the JSON
    (not written as ``null``), so entries without it keep the shape they always had."""
    return Field(default=None, exclude_if=_is_none, description=description)


# The validation context of a stored run (see ReportModel.from_stored).
_STORED = {"stored": True}


class ReportModel(BaseModel):
    """Base of every part of the report: unknown keys are refused, except in a stored run."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _drop_removed_keys_when_stored(
        cls, data: Any, handler: ModelWrapValidatorHandler[Self], info: ValidationInfo
    ) -> Self:
        # The context reaches every nested part, so one flag makes the whole report lenient.
        if isinstance(data, dict) and info.context == _STORED:
            data = {k: v for k, v in data.items() if k in cls.model_fields}
        return handler(data)

    @classmethod
    def from_stored(cls, data: Any) -> Self:
        """The part as the store holds it, whatever code wrote it: keys it no longer has are
        dropped (a run written before they were removed), everything else is validated."""
        return cls.model_validate(data, context=_STORED)

    def to_json(self, **dump: Any) -> dict[str, Any]:
        """The JSON value stored and served: plain dicts, lists, strings and numbers
        (``dump``: more options of ``model_dump``, e.g. ``include``)."""
        return self.model_dump(mode="json", **dump)


class WindowInfo(ReportModel):
    """One of the run's two windows, ``[start, end)``, and how many records it held."""

    start: Timestamp
    end: Timestamp
    records: int = Field(ge=0)


class SampleInfo(ReportModel):
    """A bounded run: ``analysed`` (at most ``max_records``) of the windows' records were
    clustered; every other record was assigned to one of their clusters."""

    max_records: int = Field(ge=1)
    analysed: int = Field(ge=0)


class GlobalDrift(ReportModel):
    """The two-sample test of the windows' embeddings as a whole (method ``not tested``, null
    statistic and p: a window was empty or too small; the report's ``warnings`` say which)."""

    statistic: Number
    p_value: Number
    flagged: bool
    method: str


class Drift(ReportModel):
    """How a cluster's share of traffic changed from the baseline to the current window.

    ``not tested`` (score, p and q null, never flagged): a window was empty or too small to
    test; the report's ``warnings`` say which."""

    kind: DriftKind
    score: Number = Field(description="log2(current share / baseline share), smoothed")
    p_value: Number
    q_value: Number
    flagged: bool


class FeedbackCounts(ReportModel):
    """Thumbs in the current window, the newest event per record counting."""

    rated: int = Field(ge=0)
    down: int = Field(ge=0)
    down_rate: Number


HotspotKind = Literal["persistent", "emerging"]


class HotspotTest(ReportModel):
    """One of a hotspot's two tests: ``persistent`` (every rated record of both windows against
    all others; ``lift``) or ``emerging`` (the current window against the group's own baseline;
    ``rise``). ``rated``/``down`` are the ratings the test used; p and q null when untested."""

    rated: int = Field(ge=0)
    down: int = Field(ge=0)
    lift: Number = None
    rise: Number = None
    p_value: Number = None
    q_value: Number = None
    flagged: bool = False


class Hotspot(ReportModel):
    """Is the cluster a thumbs-down hotspot. ``lift``: its current-window rate over the current
    window's; ``p_value``/``q_value`` of the kind flagged (else of the more significant test)."""

    kind: HotspotKind | None = omitted_while_none("flagged hotspots: persistent|emerging")
    lift: Number
    p_value: Number
    q_value: Number
    flagged: bool
    level: Literal["parent"] | None = omitted_while_none(
        "parent: too few ratings, tested with its neighbours (the tree node above it)"
    )
    persistent: HotspotTest | None = omitted_while_none("runs since the two hotspot tests")
    emerging: HotspotTest | None = omitted_while_none("runs since the two hotspot tests")


class EvaluationHotspot(ReportModel):
    """One evaluator's failures in the cluster (current window) against all other evaluated
    records: tested like a thumbs-down hotspot, in the same family of the run's alpha."""

    evaluated: int = Field(ge=0)
    failed: int = Field(ge=0)
    fail_rate: Number
    lift: Number
    p_value: Number = None
    q_value: Number = None
    flagged: bool = False


class RephraseRate(ReportModel):
    """How often the cluster's answers were followed by the same question in other words.

    A record is *rephrased* when the next turn of its session (or user) within
    ``LLMSCOPE_REPHRASE_WINDOW_SECONDS`` asks a different text at cosine similarity at least
    ``LLMSCOPE_REPHRASE_MIN_SIMILARITY`` (times ``LLMSCOPE_REPHRASE_CLUSTER_RATIO`` when the run
    put the next turn in the record's cluster). ``current``/``baseline``: rephrased records of the
    cluster in each window; the rates divide them by the window's records in a conversation
    (null: none). Tested like a thumbs-down hotspot (persistent and emerging) in the run's
    implicit family; ``p_value``/``q_value`` of the kind flagged, else of the more significant.
    """

    current_rate: Number = None
    baseline_rate: Number = None
    current: int = Field(default=0, ge=0, description="rephrased records, current window")
    baseline: int = Field(default=0, ge=0, description="rephrased records, baseline window")
    p_value: Number = None
    q_value: Number = None
    flagged: bool = False
    kind: HotspotKind | None = omitted_while_none("flagged: persistent|emerging")
    lift: Number = Field(
        default=None, description="current-window rate over the current window's overall rate"
    )


class Implicit(ReportModel):
    """What users told without rating: for now, how often they rephrased."""

    rephrase: RephraseRate


class SessionOutcomes(ReportModel):
    """How the cluster's sessions ended. A session (the run's records with one ``session_id``)
    belongs to the cluster of its last turn, counted when that turn lies in the current window;
    it ended with a thumbs-down when that turn's latest thumb is down, with a rephrase when that
    turn asks the turn before again in other words (the rephrase flags of the implicit feedback).
    """

    sessions: int = Field(ge=0, description="sessions whose last turn is in this cluster")
    ended_thumbs_down: int = Field(ge=0, description="... whose last turn was rated thumbs-down")
    ended_rephrase: int = Field(ge=0, description="... whose last turn rephrased the one before")
    ended_badly: int = Field(ge=0, description="... either")
    share: Number = Field(default=None, description="ended_badly / sessions; null: no session")


class Agreement(ReportModel):
    """An evaluator's pass/fail against the users' thumbs (up = pass) on records with both."""

    n: int = Field(ge=0)
    kappa: Number = Field(default=None, description="Cohen's kappa; null when undefined")
    kappa_ci: list[float] | None = Field(default=None, description="95% confidence interval")
    confusion: dict[str, dict[str, int]] = Field(
        default_factory=dict, description='{"pass"|"fail": {"up": n, "down": n}}'
    )


class EvaluatorEntry(ReportModel):
    """One evaluator over the run's current window, and how it agrees with the users."""

    version: str
    evaluated: int = Field(ge=0)
    failed: int = Field(ge=0)
    fail_rate: Number
    agreement: Agreement


class LatencySlice(ReportModel):
    """Latency percentiles over the whole cluster (both windows), in milliseconds."""

    p50: Number
    p95: Number


class TokenSlice(ReportModel):
    """Median token counts over the whole cluster (both windows)."""

    input_p50: Number
    output_p50: Number


class CostSlice(ReportModel):
    """What the cluster's calls cost (both windows): stored ``cost_usd``, priced calls only."""

    total_usd: float = Field(ge=0, description="sum of the priced calls' cost_usd")
    per_call_usd: Number = Field(description="mean cost of a priced call; null if none is priced")
    priced: int = Field(ge=0, description="calls with a cost_usd")


REGRESSION_METRICS = ("latency_ms", "output_tokens", "cost_usd", "error_rate")


class Regression(ReportModel):
    """One per-call metric of a cluster, baseline window against current window, tested.

    ``baseline``/``current``: the medians (``latency_ms``, ``output_tokens``), the mean per
    priced call (``cost_usd``) or the share of calls with status ``error`` (``error_rate``);
    ``ratio`` = current / baseline (null when the baseline is 0 or a window has no values).
    ``p_value``/``q_value``: null when a window has too few values to test. ``flagged``:
    significant in the run's regression family (Benjamini-Hochberg) and large enough to
    matter (``LLMSCOPE_REGRESSION_MIN_RATIO``, ``LLMSCOPE_REGRESSION_MIN_ERROR_RISE``).
    """

    baseline: Number = None
    current: Number = None
    ratio: Number = None
    p_value: Number = None
    q_value: Number = None
    flagged: bool = False
    baseline_calls: int = Field(default=0, ge=0, description="baseline calls with a value")
    current_calls: int = Field(default=0, ge=0, description="current calls with a value")
    method: str = Field(default="", description="the test that gave the p-value")


class MixShare(ReportModel):
    """How many of a cluster's calls in each window had one endpoint, model or template, and
    what share of the window's calls that is (null share: no calls in that window)."""

    baseline: int = Field(ge=0)
    current: int = Field(ge=0)
    baseline_share: Number = None
    current_share: Number = None


class ClusterSummary(ReportModel):
    """What a cluster is about and, for an LLM summary, why it is a problem."""

    title: str
    text: str
    root_cause: str | None = None
    suggested_fix: str | None = None
    generated_by: str = Field(description='"llm:<model>" or "extractive"')
    prompt_version: str | None = omitted_while_none("LLM summaries: the prompt template's version")
    reason: str | None = omitted_while_none("extractive summaries: why no LLM wrote it")


class ClusterEntry(ReportModel):
    """One cluster of the run: its size per window, description, verdicts and slices.

    A flagged node of the Ward tree below the cut is an entry too, a *sub-cluster*: it has a
    ``parent`` (the id of the cluster or sub-cluster it lies in); clusters of the cut have none.
    """

    id: int
    parent: int | None = omitted_while_none("sub-clusters: the cluster or sub-cluster above")
    size: int = Field(ge=0)
    baseline_count: int = Field(ge=0)
    current_count: int = Field(ge=0)
    baseline_share: float
    current_share: float
    keywords: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list, description="record ids")
    drift: Drift
    feedback: FeedbackCounts
    hotspot: Hotspot
    evaluations: dict[str, EvaluationHotspot] = omitted_while_empty(
        "per evaluator: its failures in this cluster"
    )
    implicit: Implicit | None = omitted_while_none(
        "clusters of the cut, in a run whose records carry a session or user: rephrase rates"
    )
    sessions: SessionOutcomes | None = omitted_while_none(
        "runs whose records carry a session id: the sessions that ended in this cluster, and how"
    )
    latency_ms: LatencySlice
    tokens: TokenSlice
    regressions: dict[str, Regression] = omitted_while_empty(
        "clusters of the cut: latency_ms, output_tokens, cost_usd, error_rate, baseline "
        "window against current window"
    )
    mix: dict[str, dict[str, MixShare]] = omitted_while_empty(
        "clusters of the cut: per endpoint, model and template (name@version), the calls of "
        "each window (what changed underneath a regression)"
    )
    templates: dict[str, int] = Field(default_factory=dict, description='calls per "name@version"')
    cost: CostSlice | None = omitted_while_none("runs since cost_usd exists: the cluster's spend")
    summary: ClusterSummary | None = None


class NovelGroup(ReportModel):
    """Records far from every cluster centroid (cosine similarity below ``max_similarity``),
    a new topic too small to be a cluster yet, with its own share-change test."""

    size: int = Field(ge=0)
    baseline_count: int = Field(ge=0)
    current_count: int = Field(ge=0)
    baseline_share: float
    current_share: float
    max_similarity: float
    examples: list[str] = Field(default_factory=list, description="record ids")
    drift: Drift | None = None


class Finding(ReportModel):
    """One flagged finding of the run; the report's ``findings`` lists them most severe first.

    ``severity``: the run's current-window calls the finding touches times how much worse (or
    different) they are, weighted down for traffic changes (``analysis/findings.py`` and the
    findings page of the docs give the rule per kind). ``metric``: a regression's metric.
    """

    kind: str = Field(
        description="hotspot|eval_hotspot|rephrase_hotspot|regression|"
        "new_cluster|drift|global_drift"
    )
    cluster_id: int | None = None
    metric: str | None = omitted_while_none("regressions: the metric that moved")
    severity: float = Field(ge=0)
    message: str


class AlertEntry(ReportModel):
    """An alert the run raised and did not suppress (stored in ``alerts`` with its delivery)."""

    kind: str = Field(
        description="drift|hotspot|new_cluster|global_drift|eval_hotspot|regression|"
        "rephrase_hotspot"
    )
    cluster_id: int | None = None
    message: str


class TemplateVersionRow(ReportModel):
    """One template version against the one before it (the template A/B view)."""

    template: str
    version: str
    against: str
    down_rate: Number
    against_down_rate: Number
    down_p_value: Number = None
    latency_p50_ms: Number = None
    against_latency_p50_ms: Number = None
    latency_p_value: Number = None
    down_q_value: Number = None
    latency_q_value: Number = None
    records: int = 0
    against_records: int = 0
    evaluations: dict[str, dict[str, Any]] = omitted_while_empty(
        "per evaluator: evaluated, fail_rate, against_evaluated, against_fail_rate, p_value "
        "(two-sided Fisher), q_value"
    )


class RouteEvaluation(ReportModel):
    """One evaluator on one route destination, against the route's other destinations."""

    evaluated: int
    fail_rate: Number = None
    others_evaluated: int
    others_fail_rate: Number = None
    p_value: Number = None
    q_value: Number = None


class RouteDestinationRow(ReportModel):
    """A traffic-split route's destination against its other destinations (the route A/B view)."""

    route: str
    cluster_id: int | None = Field(default=None, description="None: the whole run")
    endpoint: str = Field(description="the destination endpoint that answered")
    records: int
    rated: int
    down_rate: Number = None
    others_rated: int
    others_down_rate: Number = None
    down_p_value: Number = Field(default=None, description="two-sided Fisher exact")
    down_q_value: Number = Field(default=None, description="BH over the run's route tests")
    evaluations: dict[str, RouteEvaluation] = omitted_while_empty("per evaluator, when evaluated")


class RunReport(ReportModel):
    """The contract's run report (plus ``template_versions``, the per-template A/B view)."""

    run_id: str
    created_at: Timestamp
    baseline: WindowInfo
    current: WindowInfo
    sample: SampleInfo | None = omitted_while_none(
        "a run over more records than LLMSCOPE_ANALYSIS_MAX_RECORDS: what it clustered"
    )
    warnings: list[str] = Field(
        default_factory=list,
        exclude_if=_is_empty,  # runs over enough data keep their shape
        description="sentences on what the data were too few to show (an empty or small "
        "window, too few records to split): printed by the CLI, shown by the dashboard",
    )
    global_drift: GlobalDrift
    clusters: list[ClusterEntry] = Field(default_factory=list)
    novel: NovelGroup | None = omitted_while_none("records far from every centroid, if any")
    findings: list[Finding] = Field(
        default_factory=list,
        description="every flagged finding, most severe first: what the CLI story, the alerts, "
        "/metrics and the dashboard read",
    )
    alerts: list[AlertEntry] = Field(default_factory=list)
    template_versions: list[TemplateVersionRow] = Field(default_factory=list)
    route_destinations: list[RouteDestinationRow] = Field(
        default_factory=list,
        exclude_if=_is_empty,  # runs without routed traffic keep their shape
        description="per traffic-split route, whole run and per cluster: each destination "
        "against the route's other destinations",
    )
    evaluators: dict[str, EvaluatorEntry] = omitted_while_empty(
        "per evaluator: failures and agreement with users"
    )
    params: dict[str, Any] = omitted_while_empty(
        "the settings the run used, embedding_backend, alpha_split, timings (seconds per "
        "stage) and seconds (the run's wall time up to its storing): the same object as the "
        "stored run's params"
    )

    def cluster(self, cluster_id: int) -> ClusterEntry | None:
        """The cluster ``cluster_id``, or None if the run has no such cluster."""
        return next((c for c in self.clusters if c.id == cluster_id), None)

    def children(self, cluster_id: int) -> list[ClusterEntry]:
        """The sub-clusters whose ``parent`` is ``cluster_id``, in report order."""
        return [c for c in self.clusters if c.parent == cluster_id]

    def lineage(self, cluster_id: int) -> list[ClusterEntry]:
        """The entries above ``cluster_id``, its cluster of the cut first, its parent last."""
        chain: list[ClusterEntry] = []
        entry = self.cluster(cluster_id)
        while entry is not None and entry.parent is not None and len(chain) < len(self.clusters):
            entry = self.cluster(entry.parent)
            if entry is not None:
                chain.insert(0, entry)
        return chain


def stored_members(stats: Any) -> list[str] | None:
    """The record ids a run stored for a sub-cluster (its ``run_clusters.stats`` name a
    ``parent`` and list the ``members``); None for a cluster of the cut, whose records the
    run's assignments name instead."""
    if not isinstance(stats, dict) or stats.get("parent") is None:
        return None
    return [str(m) for m in stats.get("members", [])]


def deepest_subcluster(
    parent_of: Mapping[int, int | None], members: Mapping[int, Iterable[str]]
) -> dict[str, int]:
    """Record id -> the most specific sub-cluster holding it (the deepest of those listing it).

    ``parent_of`` maps each entry to its parent (None for a cluster of the cut); ``members``
    lists each sub-cluster's record ids (the analysis stores them in ``run_clusters.stats``).
    """

    def depth(c: int) -> int:
        d = 0
        while parent_of.get(c) is not None and d <= len(parent_of):
            c, d = int(parent_of[c]), d + 1  # type: ignore[arg-type]
        return d

    out: dict[str, int] = {}
    for c in sorted(members, key=lambda c: (depth(c), c)):  # deeper ones overwrite
        for record_id in members[c]:
            out[str(record_id)] = int(c)
    return out
