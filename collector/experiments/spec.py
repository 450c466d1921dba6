"""A variant's SPEC, parsed and resolved into the exact request each record's replay sends.

A SPEC is comma-separated ``key=value``: ``template=NAME@VERSION`` (a template under
``prompts:``; without ``@VERSION``, the last one listed), ``template-file=PATH`` (a candidate
text not yet registered), ``endpoint=NAME`` (default: the endpoint that answered the record),
``param.NAME=VALUE`` (``temperature``, ``max_tokens``, ...; the value read as JSON when it is
JSON, else as text). Everything is checked before anything is called: :class:`SpecError` says
what is wrong in one line.

:func:`request_for` builds a record's replay request: the variant's template rendered with the
record's template variables, or else the record's original messages (chat) or prompt
(completions), plus the parameters. :func:`replay_key` hashes the endpoint and the request: an
earlier answer to the same request on the same record is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmscope.collector.gateway.config import GatewayConfig
from llmscope.collector.gateway.extension import BadRequest, render

KINDS = {"llm/v1/chat": "chat", "llm/v1/completions": "completions"}
RESERVED_PARAMS = {"model", "messages", "prompt", "stream", "stream_options", "n", "llmscope"}


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


def parse(name: str, spec: str, config: GatewayConfig) -> Variant:
    """``spec`` checked against ``config``; SpecError naming the bad part."""
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
    variant = Variant(name=name, spec=spec, params=fields["params"])
    endpoint = fields.get("endpoint")
    if endpoint is not None:
        check_endpoint(config, endpoint, f"--variant {spec!r}")
        variant = _with(variant, endpoint=endpoint)
    if "template" in fields:
        tname, _, version = fields["template"].partition("@")
        prompt = config.prompt(tname, version or None)
        if prompt is None:
            known = sorted({f"{p.name}@{p.version}" for p in config.prompts}) or ["none"]
            raise SpecError(
                f"--variant {spec!r}: no template {fields['template']!r} under prompts: "
                f"(known: {', '.join(known)})"
            )
        variant = _with(variant, template=prompt.name, version=prompt.version)
        variant = _with(variant, template_text=prompt.text)
    if "template-file" in fields:
        path = Path(fields["template-file"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(
                f"--variant {spec!r}: cannot read template-file {str(path)!r}: "
                f"{exc.strerror or exc}"
            ) from None
        if not text.strip():
            raise SpecError(f"--variant {spec!r}: template-file {str(path)!r} is empty")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        variant = _with(variant, template_file=str(path), template_text=text)
        variant = _with(variant, version=f"file-{digest}")
    return variant


def _with(variant: Variant, **changes: Any) -> Variant:
    return Variant(**{**variant.__dict__, **changes})


def check_endpoint(config: GatewayConfig, name: str, where: str) -> str:
    """The kind (chat or completions) of endpoint ``name``; SpecError if it cannot answer."""
    endpoint = config.endpoint(name)
    if endpoint is None:
        known = ", ".join(sorted(e.name for e in config.endpoints))
        raise SpecError(f"{where}: no endpoint {name!r} in the gateway config (known: {known})")
    kind = KINDS.get(endpoint.endpoint_type)
    if kind is None:
        raise SpecError(
            f"{where}: endpoint {name!r} is {endpoint.endpoint_type}: a candidate needs a chat "
            "or completions endpoint"
        )
    return kind


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
) -> Replay:
    """The replay of one record (its endpoint, prompt, messages, template and variables) under
    ``variant``; SpecError when the record cannot be replayed so."""
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
            body["messages"] = [{"role": "user", "content": text}]
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


def replay_key(endpoint: str, body: dict[str, Any]) -> str:
    """Identical requests to the same endpoint share a key (and so an answer)."""
    canonical = json.dumps([endpoint, body], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
