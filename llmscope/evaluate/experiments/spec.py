"""A variant's SPEC, parsed and resolved into the exact request each record's replay sends.

A SPEC is comma-separated ``key=value``: ``template=NAME@VERSION`` (a template under
``prompts:``; without ``@VERSION``, the last one listed), ``template-file=PATH`` (a candidate
text not yet registered; the CLI's alone), ``endpoint=NAME`` (an endpoint or a traffic-split
route; default: the endpoint that answered the record), ``param.NAME=VALUE`` (``temperature``,
``max_tokens``, ...; the value read as JSON when it is JSON, else as text). :func:`structured`
takes the same parts as a mapping (the REST API's form), where ``template_text`` is a pasted
candidate. Everything is checked before anything is called: :class:`SpecError` says what is
wrong in one line.

Nothing here reads a file. :func:`parse` is given the reader of ``template-file`` by the CLI
(:mod:`template_file`); without one (the collector's API), a ``template-file`` is refused
without touching the path, so the answer says nothing about what exists on the server's host.

:func:`request_for` builds a record's replay request: the variant's template rendered with the
record's template variables, or else the record's original messages (chat) or prompt
(completions), plus the parameters. A template renders one message of a conversation, not
always all of it: when a record's message is its own template's text (say the system prompt an
app sends before the user's question), the candidate replaces that message and the rest of the
conversation is kept; a candidate without ``{{variables}}`` on a record that holds no such
message is a system prompt (it replaces the record's leading system message, or goes first).
Only a template that rendered the whole input (a single message, or a completions prompt) is
replayed as the candidate's text alone. :func:`replay_key` hashes the endpoint and the request: an
earlier answer to the same request on the same record is reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmscope.collector.gateway.config import GatewayConfig
from llmscope.collector.gateway.evaluators import Evaluator
from llmscope.collector.gateway.extension import BadRequest, placeholders, render
from llmscope.evaluate.experiments.params import check_params

KINDS = {"llm/v1/chat": "chat", "llm/v1/completions": "completions"}
RESERVED_PARAMS = {"model", "messages", "prompt", "stream", "stream_options", "n", "llmscope"}
NO_FILES = (
    "template-file=PATH is read by the llmscope experiment command only: the collector never "
    "reads a path; send the candidate's text as a variant's template_text"
)


class SpecError(ValueError):
    """A SPEC (or what it names) that cannot be used: one line, exit 2."""


@dataclass(frozen=True)
class Variant:
    """One parsed and resolved SPEC."""

    name: str  # "1", "2", ... in the order given
    spec: str
    endpoint: str | None = None
    template: str | None = None  # registered name (or the record's, for a template file)
    version: str | None = None
    template_text: str | None = None
    template_file: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": self.endpoint or "the record's"}
        if self.template_file is not None:
            out["template_file"] = self.template_file
        elif self.version is not None and self.version.startswith("text-"):
            out["template_text"] = self.template_text
        elif self.template is not None:
            out["template"] = f"{self.template}@{self.version}"
        if self.params:
            out["params"] = self.params
        return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse(
    name: str, spec: str, config: GatewayConfig, read_file: Callable[[str], str] | None = None
) -> Variant:
    """``spec`` checked against ``config``; SpecError naming the bad part. ``read_file`` reads
    a ``template-file`` (the CLI's); without it, a ``template-file`` is refused unread."""
    fields: dict[str, Any] = {"params": {}}
    if not spec.strip():
        raise SpecError("--variant: empty SPEC")
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise SpecError(f"--variant {spec!r}: {part!r} is not key=value")
        if key.startswith("param."):
            pname = key[len("param.") :]
            if not pname or pname in RESERVED_PARAMS:
                raise SpecError(f"--variant {spec!r}: {key!r} cannot be set")
            fields["params"][pname] = _value(value)
        elif key in {"template", "template-file", "endpoint"}:
            if key in fields:
                raise SpecError(f"--variant {spec!r}: {key} given twice")
            fields[key] = value
        else:
            raise SpecError(
                f"--variant {spec!r}: unknown key {key!r} (template, template-file, endpoint, "
                "param.NAME)"
            )
    if "template" in fields and "template-file" in fields:
        raise SpecError(f"--variant {spec!r}: give template or template-file, not both")
    text: str | None = None
    if "template-file" in fields:
        if read_file is None:
            raise SpecError(f"variant {name}: {NO_FILES}")
        try:
            text = read_file(fields["template-file"])
        except ValueError as exc:
            raise SpecError(f"--variant {spec!r}: {exc}") from None
    return _resolve(
        name,
        spec,
        config,
        endpoint=fields.get("endpoint"),
        template=fields.get("template"),
        text=text,
        text_file=fields.get("template-file"),
        params=fields["params"],
    )


def structured(name: str, parts: dict[str, Any], config: GatewayConfig) -> Variant:
    """A variant from a mapping: ``template`` (``NAME@VERSION``) or ``template_text`` (a pasted
    candidate), ``endpoint``, ``params``; its SPEC is rebuilt for the report."""
    template, text = parts.get("template"), parts.get("template_text")
    endpoint, params = parts.get("endpoint"), dict(parts.get("params") or {})
    pieces = [] if endpoint is None else [f"endpoint={endpoint}"]
    if template is not None:
        pieces.insert(0, f"template={template}")
    if text is not None:
        pieces.insert(0, f"template-text={_digest(text)}")
    pieces += [f"param.{k}={json.dumps(v)}" for k, v in params.items()]
    spec = ",".join(pieces)
    if not spec:
        raise SpecError(f"variant {name}: give a template, template_text, endpoint or params")
    if template is not None and text is not None:
        raise SpecError(f"variant {spec!r}: give template or template_text, not both")
    if text is not None and not text.strip():
        raise SpecError(f"variant {name}: template_text is empty")
    for pname in params:
        if not pname or pname in RESERVED_PARAMS:
            raise SpecError(f"variant {spec!r}: 'param.{pname}' cannot be set")
    return _resolve(
        name, spec, config, endpoint=endpoint, template=template, text=text, params=params
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _resolve(
    name: str,
    spec: str,
    config: GatewayConfig,
    *,
    endpoint: str | None,
    template: str | None,
    text: str | None,
    params: dict[str, Any],
    text_file: str | None = None,
) -> Variant:
    """The parts checked against ``config`` (the endpoint or route, the registered template)."""
    problem = check_params(params)
    if problem is not None:
        raise SpecError(f"--variant {spec!r}: {problem}")
    variant = Variant(name=name, spec=spec, params=params)
    if endpoint is not None:
        check_endpoint(config, endpoint, f"--variant {spec!r}")
        variant = _with(variant, endpoint=endpoint)
    if template is not None:
        tname, _, version = template.partition("@")
        prompt = config.prompt(tname, version or None)
        if prompt is None:
            known = sorted({f"{p.name}@{p.version}" for p in config.prompts}) or ["none"]
            raise SpecError(
                f"--variant {spec!r}: no template {template!r} under prompts: "
                f"(known: {', '.join(known)})"
            )
        variant = _with(variant, template=prompt.name, version=prompt.version)
        variant = _with(variant, template_text=prompt.text)
    if text is not None:
        prefix = "file" if text_file is not None else "text"
        variant = _with(variant, template_file=text_file, template_text=text)
        variant = _with(variant, version=f"{prefix}-{_digest(text)}")
    return variant


def _with(variant: Variant, **changes: Any) -> Variant:
    return Variant(**{**variant.__dict__, **changes})


def check_endpoint(config: GatewayConfig, name: str, where: str) -> str:
    """The kind (chat or completions) of endpoint or traffic-split route ``name``; SpecError if
    it cannot answer."""
    endpoint, route = config.endpoint(name), config.route(name)
    if endpoint is not None:
        what, endpoint_type = "endpoint", endpoint.endpoint_type
    elif route is not None:
        what, endpoint_type = "route", route.task_type
    else:
        known = sorted([e.name for e in config.endpoints] + [r.name for r in config.routes])
        raise SpecError(
            f"{where}: no endpoint or route {name!r} in the gateway config "
            f"(known: {', '.join(known)})"
        )
    kind = KINDS.get(endpoint_type)
    if kind is None:
        raise SpecError(
            f"{where}: {what} {name!r} is {endpoint_type}: a candidate needs a chat "
            "or completions endpoint"
        )
    return kind


def select_evaluators(
    config: GatewayConfig, names: list[str] | None, where: str
) -> list[Evaluator]:
    """The config's evaluators, or only those ``names``; SpecError naming an unknown one."""
    evaluators = list(config.evaluators)
    if not evaluators:
        raise SpecError(f"{where} has no evaluators: section")
    if names:
        known = {e.name for e in evaluators}
        for name in names:
            if name not in known:
                raise SpecError(
                    f"--evaluator: no evaluator {name!r} in {where} (known: "
                    f"{', '.join(sorted(known))})"
                )
        evaluators = [e for e in evaluators if e.name in set(names)]
    return evaluators


@dataclass(frozen=True)
class Replay:
    """What one record's replay under one variant sends."""

    endpoint: str
    kind: str
    body: dict[str, Any]
    template: str | None
    version: str | None
    variables: dict[str, Any] | None
    template_text: str | None
    key: str


def request_for(
    variant: Variant,
    config: GatewayConfig,
    *,
    endpoint: str | None,
    prompt: str | None,
    messages: list[dict[str, Any]] | None,
    template: str | None,
    variables: dict[str, Any] | None,
    template_text: str | None = None,
) -> Replay:
    """The replay of one record (its endpoint, prompt, messages, template, the template's text
    and variables) under ``variant``; SpecError when the record cannot be replayed so."""
    target = variant.endpoint or endpoint
    if target is None:
        raise SpecError(f"--variant {variant.spec!r}: a record has no endpoint; give endpoint=NAME")
    kind = check_endpoint(config, target, f"--variant {variant.spec!r}")
    body: dict[str, Any] = {"model": target}
    if variant.template_text is not None:
        try:
            text = render(variant.template_text, variables or {})
        except BadRequest as exc:
            missing = str(exc).split(":", 1)[0].removeprefix("llmscope.variables.")
            raise SpecError(
                f"--variant {variant.spec!r}: the template needs the variable {missing!r}, "
                "which the cluster's records lack"
            ) from None
        if kind == "chat":
            body["messages"] = _conversation(
                variant.template_text, text, messages, template_text, variables or {}
            )
        else:
            body["prompt"] = text
    elif kind == "chat":
        if messages:
            body["messages"] = messages
        elif prompt is not None:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            raise SpecError("a record has neither messages nor a prompt to replay")
    else:
        plain = prompt
        if plain is None and messages:
            plain = "\n".join(str(m.get("content", "")) for m in messages)
        if plain is None:
            raise SpecError("a record has neither messages nor a prompt to replay")
        body["prompt"] = plain
    body.update(variant.params)
    return Replay(
        endpoint=target,
        kind=kind,
        body=body,
        template=variant.template or template,
        version=variant.version,
        variables=variables if variant.template_text is not None else None,
        template_text=variant.template_text,
        key=replay_key(target, body),
    )


def _conversation(
    candidate: str,
    rendered: str,
    messages: list[dict[str, Any]] | None,
    record_template: str | None,
    variables: dict[str, Any],
) -> list[dict[str, Any]]:
    """The record's messages with the template's part replaced by ``rendered`` (the rule in
    the module's docstring)."""
    if not messages:
        return [{"role": "user", "content": rendered}]
    if record_template is not None:
        try:
            original = render(record_template, variables)
        except BadRequest:
            original = None
        for index, message in enumerate(messages):
            if original is not None and message.get("content") == original:
                kept = [dict(m) for m in messages]
                kept[index] = {**message, "content": rendered}
                return kept
    if not placeholders(candidate) and any(m.get("role") != "system" for m in messages):
        rest = messages[1:] if messages[0].get("role") == "system" else messages
        return [{"role": "system", "content": rendered}, *(dict(m) for m in rest)]
    return [{"role": "user", "content": rendered}]


def replay_key(endpoint: str, body: dict[str, Any]) -> str:
    """Identical requests to the same endpoint share a key (and so an answer)."""
    canonical = json.dumps([endpoint, body], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
