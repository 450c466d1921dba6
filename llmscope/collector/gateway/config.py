"""The gateway's YAML: MLflow AI Gateway's schema plus llmscope's ``prompts:`` and options.

MLflow's ``endpoints:`` each have a ``name``, an ``endpoint_type`` (or ``route_type``),
``model: {provider, name, config}`` and an optional ``limit: {calls, renewal_period}``.
MLflow's traffic-split ``routes:`` (``name``, ``task_type``, ``destinations: [{name,
traffic_percentage}]``, ``routing_strategy: TRAFFIC_SPLIT``) share calls between endpoints; the
percentages sum to 100 and every destination is an endpoint of the route's task type. llmscope
adds ``fallbacks:`` to a route: endpoints tried in order when the chosen one fails with 429, 5xx or
a timeout. The old spelling, where ``routes:`` lists endpoints, is still read: an entry with
``route_type`` or ``model`` is an endpoint. Secrets in ``model.config`` are ``$ENV_VAR`` references
(or literal values), resolved when the file is loaded into ``SecretStr`` values (a repr, a log
line or a dump shows ``**********``); only the provider that sends them reads them
(:meth:`ModelSpec.revealed_config`). llmscope adds per-endpoint options
(``log_content``, ``log_media``, ``timeout_seconds``, ``max_retries``) and a top-level
``prompts:`` list of named, versioned templates with ``{{variable}}`` placeholders,
``evaluators:`` (parsed by
``llmscope.collector.gateway.evaluators``; hot-reloaded with the rest of the file), and the
``pricing:`` and ``budgets:`` lists (entries defined in ``collector/costs/pricing.py`` and
``collector/costs/budgets.py``).

:func:`load_config` raises :class:`ConfigError` with one line naming the endpoint and field;
nothing in the message ever contains a secret's value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from llmscope import limits
from llmscope.collector.costs.budgets import Budget
from llmscope.collector.costs.pricing import Price
from llmscope.collector.gateway.evaluators import (
    Evaluator,
    EvaluatorConfigError,
    parse_evaluators,
)
from llmscope.collector.gateway.provider_keys import (
    ALIASES,
    AWS_KEYS,
    NESTED_SECRETS,
    PROVIDER_KEYS,
    REQUIRED_KEYS,
    UNSUPPORTED,
    unknown_provider_message,
)

EndpointType = Literal["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]
RENEWAL_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

_M = TypeVar("_M", bound=BaseModel)
_ENV_REF = re.compile(r"^\$(?:\{(\w+)\}|(\w+))$")


class ConfigError(ValueError):
    """An invalid gateway config: the message is one line naming the endpoint and field."""


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calls: int = Field(gt=0)
    renewal_period: Literal["second", "minute", "hour", "day"] = "minute"
    key: str | None = None  # MLflow accepts it; llmscope limits per endpoint

    @property
    def period_seconds(self) -> int:
        return RENEWAL_SECONDS[self.renewal_period]


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    provider: str
    name: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)  # secrets as SecretStr once checked

    def revealed_config(self) -> dict[str, Any]:
        """``config`` with its secrets' values, for the provider that sends them (only it)."""
        return {
            key: {k: _revealed(v) for k, v in value.items()}
            if isinstance(value, dict)
            else _revealed(value)
            for key, value in self.config.items()
        }

    @field_validator("provider", mode="before")
    @classmethod
    def _known_provider(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = ALIASES.get(value, value)
            if value not in PROVIDER_KEYS:
                raise ValueError(unknown_provider_message(value))
        return value


class Endpoint(BaseModel):
    """One endpoint: where calls go, and how llmscope records them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    endpoint_type: EndpointType
    model: ModelSpec
    limit: Limit | None = None
    log_content: bool = True
    log_media: bool = False  # llmscope: keep inline images/audio in records, not references
    timeout_seconds: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _route_type_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "route_type" in data:
            data = dict(data)
            data.setdefault("endpoint_type", data.pop("route_type"))
            data.pop("route_type", None)
        return data


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    traffic_percentage: int = Field(ge=0, le=100)


class Route(BaseModel):
    """A traffic-split route: each call goes to one destination, drawn by weight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    task_type: EndpointType
    destinations: list[Destination] = Field(min_length=1)
    routing_strategy: Literal["TRAFFIC_SPLIT"] = "TRAFFIC_SPLIT"
    fallbacks: list[str] = Field(default_factory=list)


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=limits.NAME)
    version: str = Field(default="1", max_length=limits.VERSION)
    text: str

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("version"), int | float):
            data = {**data, "version": str(data["version"])}
        return data


class GatewayConfig(BaseModel):
    """A loaded, validated config; ``model.config`` holds resolved keys: never show it."""

    endpoints: list[Endpoint]
    routes: list[Route] = Field(default_factory=list)
    prompts: list[Prompt] = Field(default_factory=list)
    evaluators: list[Evaluator] = Field(default_factory=list)
    pricing: list[Price] = Field(default_factory=list)
    budgets: list[Budget] = Field(default_factory=list)

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    def route(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    def prompt(self, name: str, version: str | None) -> Prompt | None:
        """The prompt ``name`` at ``version``; without a version, the last one listed."""
        found = [p for p in self.prompts if p.name == name]
        if version is not None:
            found = [p for p in found if p.version == str(version)]
        return found[-1] if found else None


def _describe(error: dict[str, Any]) -> str:
    # Only the location and the message: pydantic's input_value could be a secret.
    loc = ".".join(str(p) for p in error.get("loc", ()))
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        msg = "unknown field"
    return f"{loc}: {msg}" if loc else msg


def _revealed(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _resolve_secret(value: Any, where: str) -> SecretStr:
    if isinstance(value, SecretStr):  # a config checked before (resolved once)
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string or a $ENV_VAR reference")
    match = _ENV_REF.match(value.strip())
    if match is None:
        return SecretStr(value)
    var = match.group(1) or match.group(2)
    resolved = os.environ.get(var)
    if not resolved:
        raise ConfigError(f"{where}: environment variable {var} is not set")
    return SecretStr(resolved)


def _check_provider(endpoint: Endpoint, where: str) -> None:
    provider = endpoint.model.provider
    allowed = PROVIDER_KEYS[provider]
    for key in endpoint.model.config:
        if key not in allowed:
            raise ConfigError(f"{where}: model.config.{key}: unknown field for {provider}")
    for key in REQUIRED_KEYS.get(provider, ()):
        if key not in endpoint.model.config:
            raise ConfigError(f"{where}: model.config.{key}: field required for {provider}")
    if (provider, endpoint.endpoint_type) in UNSUPPORTED:
        raise ConfigError(
            f"{where}: endpoint_type: {provider} does not support {endpoint.endpoint_type}"
        )
    for key, is_secret in allowed.items():
        if is_secret and key in endpoint.model.config:
            endpoint.model.config[key] = _resolve_secret(
                endpoint.model.config[key], f"{where}: model.config.{key}"
            )
    for key, secrets in NESTED_SECRETS.items():
        nested = endpoint.model.config.get(key)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            raise ConfigError(f"{where}: model.config.{key}: must be a mapping")
        if key == "aws_config":
            for inner in nested:
                if inner not in AWS_KEYS:
                    raise ConfigError(f"{where}: model.config.aws_config.{inner}: unknown field")
        endpoint.model.config[key] = {
            inner: _resolve_secret(value, f"{where}: model.config.{key}.{inner}")
            if inner in secrets
            else value
            for inner, value in nested.items()
        }
    for key in ("latency_ms", "embedding_dim"):
        value = endpoint.model.config.get(key)
        if value is not None and (not isinstance(value, int | float) or value < 0):
            raise ConfigError(f"{where}: model.config.{key}: must be a non-negative number")


def _is_route(item: Any) -> bool:
    # MLflow >= 3.6 routes split traffic; older files list endpoints under ``routes:``.
    if not isinstance(item, dict):
        return False
    return "route_type" not in item and "model" not in item


def _parse_route(item: Any, index: int, endpoints: dict[str, Endpoint]) -> Route:
    name = item.get("name") if isinstance(item, dict) else None
    where = f"route {name!r}" if isinstance(name, str) else f"routes[{index}]"
    try:
        route = Route.model_validate(item)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(dict(exc.errors()[0]))}") from None
    total = sum(d.traffic_percentage for d in route.destinations)
    if total != 100:
        raise ConfigError(f"{where}: destinations: traffic_percentage sums to {total}, not 100")
    listed = [("destinations", d.name) for d in route.destinations]
    for field, target in listed + [("fallbacks", f) for f in route.fallbacks]:
        endpoint = endpoints.get(target)
        if endpoint is None:
            raise ConfigError(f"{where}: {field}: no endpoint named {target!r}")
        if endpoint.endpoint_type != route.task_type:
            raise ConfigError(
                f"{where}: {field}: endpoint {target!r} is {endpoint.endpoint_type}, "
                f"not {route.task_type}"
            )
    if len({d.name for d in route.destinations}) != len(route.destinations):
        raise ConfigError(f"{where}: destinations: an endpoint is listed twice")
    return route


def parse_config(data: Any) -> GatewayConfig:
    """Validate a parsed YAML document; raise ConfigError naming the endpoint and field."""
    if not isinstance(data, dict):
        raise ConfigError("the gateway config must be a mapping with an 'endpoints:' list")
    unknown = set(data) - {"endpoints", "routes", "prompts", "evaluators", "pricing", "budgets"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level field")
    raw_routes = data.get("routes") or []
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: must be a list")
    raw = data.get("endpoints")
    if raw is None:
        raw = [item for item in raw_routes if not _is_route(item)]  # the old spelling
    if not isinstance(raw, list) or not raw:
        raise ConfigError("endpoints: a non-empty list of endpoints is required")
    endpoints: list[Endpoint] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"endpoint {name!r}" if isinstance(name, str) else f"endpoints[{index}]"
        try:
            endpoint = Endpoint.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_describe(dict(exc.errors()[0]))}") from None
        _check_provider(endpoint, where)
        if any(e.name == endpoint.name for e in endpoints):
            raise ConfigError(f"{where}: name: more than one endpoint has this name")
        endpoints.append(endpoint)
    by_name = {e.name: e for e in endpoints}
    routes: list[Route] = []
    for index, item in enumerate(raw_routes):
        if not _is_route(item):
            continue
        route = _parse_route(item, index, by_name)
        if route.name in by_name or any(r.name == route.name for r in routes):
            raise ConfigError(f"route {route.name!r}: name: an endpoint or route has this name")
        routes.append(route)
    prompts: list[Prompt] = []
    for index, item in enumerate(data.get("prompts") or []):
        try:
            prompts.append(Prompt.model_validate(item))
        except ValidationError as exc:
            raise ConfigError(f"prompts[{index}]: {_describe(dict(exc.errors()[0]))}") from None
    types = {e.name: e.endpoint_type for e in endpoints}
    types.update({r.name: r.task_type for r in routes})
    try:
        evaluators = parse_evaluators(data.get("evaluators"), types)
    except EvaluatorConfigError as exc:
        raise ConfigError(str(exc)) from None
    pricing = _entries(data, "pricing", Price)
    budgets = _entries(data, "budgets", Budget)
    names = [b.name for b in budgets]
    if len(set(names)) != len(names):
        raise ConfigError("budgets: two budgets have the same name")
    return GatewayConfig(
        endpoints=endpoints,
        routes=routes,
        prompts=prompts,
        evaluators=evaluators,
        pricing=pricing,
        budgets=budgets,
    )


def _entries(data: dict[str, Any], section: str, model: type[_M]) -> list[_M]:
    """The ``section:`` list validated as ``model`` entries (ConfigError names the entry)."""
    items = data.get(section) or []
    if not isinstance(items, list):
        raise ConfigError(f"{section}: must be a list")
    found = []
    for index, item in enumerate(items):
        try:
            found.append(model.model_validate(item))
        except ValidationError as exc:
            raise ConfigError(f"{section}[{index}]: {_describe(dict(exc.errors()[0]))}") from None
    return found


def load_config(path: Path | str) -> GatewayConfig:
    """Read and validate the gateway YAML at ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"gateway config {path} is not valid YAML{where}") from None
    return parse_config(data)
