"""The ``evaluators:`` section of the gateway YAML: what each evaluator is, its version, its sample.

Each evaluator has a ``name`` (``[a-z0-9_-]+``, unique), a ``type``, an optional
``sample_rate`` (share of records judged, default 1) and an optional ``filter`` (``endpoint``,
``template`` as ``NAME`` or ``NAME@VERSION``, ``model``: lists; a record passes when it matches
every key given). Types:

- ``llm_judge``: ``endpoint`` (a chat endpoint of this gateway), ``definition``,
  ``grading_prompt``, optional ``examples`` (``input``, ``output``, ``score``,
  ``justification``), ``pass_threshold`` (a score of 1..5 at or above it passes; default 3),
  ``scope`` (``record``, the default, or ``session``: the whole conversation is judged once it
  has been idle ``idle_seconds``, default 1800; sampled by session id, filtered by its first
  record, the verdict stored on that first record);
- built-in checks, no LLM: ``refusal``; ``json`` (optional JSON ``schema``); ``regex``
  (``pattern``, ``must_match``, default true); ``length`` (``min_words``, ``max_words``);
  ``pii`` (e-mail, phone, card number or secret in the answer); ``latency`` (``max_ms``).

**Version**: a content hash of what decides a verdict (a judge's definition, grading prompt,
examples and threshold and the judge prompt's own version; a check's parameters), so changing
any of it makes a new version and results are kept per version. ``sample_rate`` and ``filter``
choose records; they are not part of the version.

**Sampling**: a record is in an evaluator's sample when a hash of the evaluator's name and the
record id falls under ``sample_rate``: the same records are chosen by every process, on every
run, whatever the order they come in.

:func:`parse_evaluators` raises :class:`EvaluatorConfigError` with one line naming the evaluator
and field; the gateway's config loader turns it into its own ``ConfigError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from llmscope.collector.gateway.patterns import compile_pattern

# The wording of the judge prompt around the user's definition (judge.py); part of the version.
JUDGE_PROMPT_VERSION = "judge-v1"
# The wording around a whole conversation (judge.py), for ``scope: session``; part of the version.
SESSION_PROMPT_VERSION = "session-v1"
CHAT_TYPE = "llm/v1/chat"


class EvaluatorConfigError(ValueError):
    """An invalid ``evaluators:`` entry; the message is one line naming it and the field."""


class Filter(BaseModel):
    """Which records an evaluator looks at; every key given must match."""

    model_config = ConfigDict(extra="forbid")

    endpoint: list[str] | None = None
    template: list[str] | None = None  # NAME or NAME@VERSION
    model: list[str] | None = None

    def matches(
        self, endpoint: str | None, template: str | None, version: str | None, model: str | None
    ) -> bool:
        if self.endpoint is not None and endpoint not in self.endpoint:
            return False
        if self.model is not None and model not in self.model:
            return False
        if self.template is not None:
            if template is None:
                return False
            names = {template, f"{template}@{version}"} if version is not None else {template}
            if not names & set(self.template):
                return False
        return True


class _Evaluator(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    sample_rate: float = Field(default=1.0, ge=0, le=1)
    filter: Filter | None = None

    # what decides a verdict (hashed into the version); subclasses list their fields
    verdict_fields: ClassVar[tuple[str, ...]] = ()
    # what a record must hold to be evaluated: an answer, or a latency
    needs: ClassVar[str] = "response"

    @property
    def is_judge(self) -> bool:
        return False

    @cached_property
    def version(self) -> str:
        """12 hex digits of the SHA-256 of what decides this evaluator's verdicts."""
        content: dict[str, Any] = {"type": getattr(self, "type", "")}
        for name in self.verdict_fields:
            value = getattr(self, name)
            content[name] = value.model_dump() if isinstance(value, BaseModel) else value
        if self.is_judge:
            content["examples"] = [e.model_dump() for e in getattr(self, "examples", [])]
            content["prompt_version"] = JUDGE_PROMPT_VERSION
            if getattr(self, "scope", "record") == "session":
                # a record judge's version is unchanged by the field's arrival
                content["scope"] = "session"
                content["session_prompt_version"] = SESSION_PROMPT_VERSION
        raw = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def sampled(self, record_id: str) -> bool:
        """Whether ``record_id`` is in this evaluator's sample (stable, order-free)."""
        return in_sample(self.name, record_id, self.sample_rate)

    def selects(
        self,
        record_id: str,
        endpoint: str | None,
        template: str | None,
        version: str | None,
        model: str | None,
    ) -> bool:
        """Sampled and passing the filter."""
        if self.filter is not None and not self.filter.matches(endpoint, template, version, model):
            return False
        return self.sampled(record_id)


def in_sample(name: str, record_id: str, rate: float) -> bool:
    """A hash of ``name`` and ``record_id`` as a number in [0, 1), compared with ``rate``."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{name}\x00{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str
    output: str
    score: int = Field(ge=1, le=5)
    justification: str | None = None


class LLMJudge(_Evaluator):
    type: Literal["llm_judge"]
    endpoint: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    grading_prompt: str = Field(min_length=1)
    examples: list[Example] = Field(default_factory=list)
    pass_threshold: int = Field(default=3, ge=1, le=5)
    # ``session``: judges a whole conversation once it has been idle for ``idle_seconds``
    scope: Literal["record", "session"] = "record"
    idle_seconds: float = Field(default=1800.0, gt=0, le=7 * 86400)

    verdict_fields = ("definition", "grading_prompt", "pass_threshold")

    @property
    def is_judge(self) -> bool:
        return True

    @property
    def per_session(self) -> bool:
        return self.scope == "session"


class RefusalCheck(_Evaluator):
    type: Literal["refusal"]


class JsonCheck(_Evaluator):
    type: Literal["json"]
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")

    verdict_fields = ("json_schema",)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value


class RegexCheck(_Evaluator):
    type: Literal["regex"]
    pattern: str = Field(min_length=1)
    must_match: bool = True

    verdict_fields = ("pattern", "must_match")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_pattern(value)  # PatternError (a ValueError) names why RE2 refuses it
        return value


class LengthCheck(_Evaluator):
    type: Literal["length"]
    min_words: int | None = Field(default=None, ge=0)
    max_words: int | None = Field(default=None, ge=0)

    verdict_fields = ("min_words", "max_words")

    @model_validator(mode="after")
    def _some_bound(self) -> LengthCheck:
        if self.min_words is None and self.max_words is None:
            raise ValueError("min_words or max_words is required")
        if (
            self.min_words is not None
            and self.max_words is not None
            and self.min_words > self.max_words
        ):
            raise ValueError("min_words is larger than max_words")
        return self


class PiiCheck(_Evaluator):
    type: Literal["pii"]


class LatencyCheck(_Evaluator):
    type: Literal["latency"]
    max_ms: float = Field(gt=0)
    needs = "latency"

    verdict_fields = ("max_ms",)


Evaluator = Annotated[
    LLMJudge | RefusalCheck | JsonCheck | RegexCheck | LengthCheck | PiiCheck | LatencyCheck,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Evaluator] = TypeAdapter(Evaluator)
TYPES = ("llm_judge", "refusal", "json", "regex", "length", "pii", "latency")


def _describe(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in error.get("loc", ()) if p not in TYPES)
    msg = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif error.get("type") == "union_tag_invalid":
        loc, msg = "type", f"must be one of {', '.join(TYPES)}"
    elif error.get("type") == "union_tag_not_found":
        loc, msg = "type", "field required"
    msg = msg.removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def parse_evaluators(raw: Any, endpoint_types: Mapping[str, str]) -> list[Evaluator]:
    """Validated evaluators from the YAML's ``evaluators:`` value (None: no evaluators).

    ``endpoint_types`` maps the gateway's endpoint names to their types: a judge's endpoint
    must be a chat endpoint of the same file.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EvaluatorConfigError("evaluators: must be a list of evaluators")
    evaluators: list[Evaluator] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"evaluator {name!r}" if isinstance(name, str) else f"evaluators[{index}]"
        if not isinstance(item, dict):
            raise EvaluatorConfigError(f"{where}: must be a mapping")
        try:
            evaluator = _ADAPTER.validate_python(item)
        except ValidationError as exc:
            raise EvaluatorConfigError(f"{where}: {_describe(exc.errors()[0])}") from None
        if any(e.name == evaluator.name for e in evaluators):
            raise EvaluatorConfigError(f"{where}: name: more than one evaluator has this name")
        if isinstance(evaluator, LLMJudge):
            kind = endpoint_types.get(evaluator.endpoint)
            if kind is None:
                raise EvaluatorConfigError(
                    f"{where}: endpoint: no endpoint {evaluator.endpoint!r} in this config"
                )
            if kind != CHAT_TYPE:
                raise EvaluatorConfigError(
                    f"{where}: endpoint: {evaluator.endpoint!r} is {kind}, not {CHAT_TYPE}"
                )
        evaluators.append(evaluator)
    return evaluators
