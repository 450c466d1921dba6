"""Evaluator config (the issue's YAML, versions, sampling), built-in checks, verdict parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmscope.collector.gateway.config import ConfigError, load_config, parse_config
from llmscope.collector.gateway.evaluators import in_sample
from llmscope.evaluate.evaluations import checks
from llmscope.evaluate.evaluations.judge import BadVerdict, parse_verdict

ISSUE_YAML = """
endpoints:
  - name: judge
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: judge-bot}
  - name: support-chat
    endpoint_type: llm/v1/chat
    model: {provider: offline, name: support-bot}
evaluators:
  - name: correctness              # [a-z0-9_-]+, unique
    type: llm_judge
    endpoint: judge                # a chat endpoint of this gateway
    definition: Whether the answer states the policy in force today.
    grading_prompt: Score 1 when the answer states an outdated or wrong policy, 5 when correct.
    examples: [{input: a, output: b, score: 2, justification: c}]   # optional few-shot
    pass_threshold: 3              # score >= threshold passes; scores are 1..5
    sample_rate: 0.2               # share of records judged, decided by a hash of the record id
    filter: {endpoint: [support-chat], template: [refund-policy]}         # optional
  - {name: refusal, type: refusal}                    # built-in checks, no LLM:
  - {name: valid_json, type: json}                    #   refusal, json (optionally a JSON schema),
  - {name: no_pii, type: pii}                         #   regex (pattern, must_match), length
  - {name: slow, type: latency, max_ms: 5000}         #   (min/max words), pii, latency
  - {name: cites, type: regex, pattern: "policy", must_match: true}
  - {name: brief, type: length, min_words: 3, max_words: 200}
  - {name: shaped, type: json, schema: {type: object, required: [answer]}}
"""


def test_the_issue_yaml_loads() -> None:
    config = parse_config(yaml.safe_load(ISSUE_YAML))
    names = [e.name for e in config.evaluators]
    assert names == [
        "correctness",
        "refusal",
        "valid_json",
        "no_pii",
        "slow",
        "cites",
        "brief",
        "shaped",
    ]
    judge = config.evaluators[0]
    assert judge.sample_rate == 0.2 and judge.pass_threshold == 3 and judge.examples[0].score == 2
    assert judge.filter.matches("support-chat", "refund-policy", "3", None)
    assert judge.filter.matches("support-chat", "refund-policy", None, "m")
    assert not judge.filter.matches("support-chat", "other", "1", None)
    assert not judge.filter.matches("chat", "refund-policy", "3", None)


def _with(change: str) -> dict:
    data = yaml.safe_load(ISSUE_YAML)
    data["evaluators"] = [yaml.safe_load(change)]
    return data


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{name: Bad Name, type: refusal}", "evaluator 'Bad Name': name:"),
        ("{name: x, type: telepathy}", "evaluator 'x': type: must be one of"),
        ("{name: x, type: latency}", "evaluator 'x': max_ms: Field required"),
        ("{name: x, type: refusal, sample_rate: 2}", "evaluator 'x': sample_rate:"),
        ("{name: x, type: regex, pattern: '('}", "evaluator 'x': pattern: RE2 cannot compile"),
        # backtracking-only syntax: refused with the reason, never run by a backtracking engine
        (r"{name: x, type: regex, pattern: '(a)\1'}", "pattern: RE2 cannot compile it (invalid"),
        ("{name: x, type: regex, pattern: 'a(?=b)'}", "lookarounds, backreferences"),
        ("{name: x, type: json, schema: {type: 7}}", "evaluator 'x': schema: not a valid JSON"),
        ("{name: x, type: length}", "min_words or max_words is required"),
        ("{name: x, type: refusal, colour: red}", "evaluator 'x': colour: unknown field"),
        (
            "{name: x, type: llm_judge, endpoint: nowhere, definition: d, grading_prompt: g}",
            "evaluator 'x': endpoint: no endpoint 'nowhere'",
        ),
        (
            "{name: x, type: llm_judge, endpoint: judge, definition: d, grading_prompt: g, "
            "pass_threshold: 9}",
            "evaluator 'x': pass_threshold:",
        ),
    ],
)
def test_a_bad_evaluator_is_one_line_naming_it_and_the_field(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with(entry))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_duplicate_names_and_non_chat_judges_are_refused() -> None:
    data = yaml.safe_load(ISSUE_YAML)
    data["evaluators"].append({"name": "refusal", "type": "refusal"})
    with pytest.raises(ConfigError, match="more than one evaluator"):
        parse_config(data)
    data = yaml.safe_load(ISSUE_YAML)
    data["endpoints"].append(
        {
            "name": "emb",
            "endpoint_type": "llm/v1/embeddings",
            "model": {"provider": "offline", "name": "e"},
        }
    )
    data["evaluators"][0]["endpoint"] = "emb"
    with pytest.raises(ConfigError, match="not llm/v1/chat"):
        parse_config(data)


def test_versions_change_with_prompt_examples_threshold_only() -> None:
    base = parse_config(yaml.safe_load(ISSUE_YAML)).evaluators[0]

    def version(**changes: object) -> str:
        data = yaml.safe_load(ISSUE_YAML)
        data["evaluators"][0].update(changes)
        return parse_config(data).evaluators[0].version

    assert version() == base.version  # stable across loads
    assert version(grading_prompt="Score 5 always.") != base.version
    assert version(definition="Politeness.") != base.version
    assert version(pass_threshold=4) != base.version
    assert version(examples=[]) != base.version
    assert version(sample_rate=0.5) == base.version
    assert version(filter=None) == base.version
    checks_ = parse_config(yaml.safe_load(ISSUE_YAML)).evaluators
    slow = [e for e in checks_ if e.name == "slow"][0]
    data = yaml.safe_load(ISSUE_YAML)
    data["evaluators"][4]["max_ms"] = 6000
    assert parse_config(data).evaluators[4].version != slow.version


def test_sampling_honours_the_rate_and_is_stable() -> None:
    ids = [f"rec-{i}" for i in range(2000)]
    for rate in (0.05, 0.2, 0.5, 0.9):
        share = sum(in_sample("correctness", i, rate) for i in ids) / len(ids)
        assert abs(share - rate) <= 0.03, (rate, share)
    first = [in_sample("correctness", i, 0.2) for i in ids]
    assert first == [in_sample("correctness", i, 0.2) for i in ids]
    # a lower rate's sample is inside a higher rate's (the hash is compared with the rate)
    assert all(in_sample("x", i, 0.5) for i in ids if in_sample("x", i, 0.1))
    assert all(in_sample("x", i, 1.0) for i in ids) and not any(in_sample("x", i, 0) for i in ids)


def test_evaluators_hot_reload_with_the_gateway_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(ISSUE_YAML)
    assert len(load_config(path).evaluators) == 8
    path.write_text(ISSUE_YAML.split("evaluators:")[0])
    assert load_config(path).evaluators == []


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ("I'm sorry, but I can't help with that request.", False),
        ("I cannot provide medical advice.", False),
        ("As an AI language model, I cannot browse the web.", False),
        ("You can reset it under Settings. I can't wait to hear back!", True),
        ("Sure: open Settings, then Security.", True),
    ],
)
def test_refusal(answer: str, passed: bool) -> None:
    assert checks.refusal(answer).passed is passed


def test_json_with_and_without_schema() -> None:
    assert checks.valid_json('{"a": 1}', None).passed
    assert checks.valid_json('```json\n{"a": 1}\n```', None).passed
    assert not checks.valid_json("{'a': 1}", None).passed
    schema = {
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string"}},
    }
    assert checks.valid_json('{"answer": "yes"}', schema).passed
    verdict = checks.valid_json('{"answer": 3}', schema)
    assert not verdict.passed and "answer" in (verdict.justification or "")
    assert not checks.valid_json("[]", schema).passed


def test_a_hostile_answer_gets_a_verdict_in_linear_time() -> None:
    # a backtracking engine takes 2^30 steps here (17 s at 28 characters, doubling each)
    verdict = checks.regex("a" * 30 + "!", r"^(\w+\s?)*$", True)
    assert verdict.passed is False
    # nested past the parser's recursion: a failed verdict, not an error stopping the checks
    deep = "[" * 100_000 + "]" * 100_000
    assert checks.valid_json(deep, None).passed is False
    assert checks.valid_json("[" * 900 + "]" * 900, {"type": "array"}).passed is not None


def test_regex_length_pii_latency() -> None:
    assert checks.regex("see policy 4", r"policy \d", True).passed
    assert not checks.regex("no match", r"policy \d", True).passed
    assert not checks.regex("call 555", r"\d{3}", False).passed
    assert checks.length("one two three", 2, 3).passed
    assert not checks.length("one", 2, None).passed
    assert not checks.length("a b c d", None, 3).passed
    verdict = checks.pii("Write to jane.doe@example.com or call +1 415-555-0132.")
    assert not verdict.passed and "email" in (verdict.justification or "")
    assert "phone" in (verdict.justification or "")
    assert checks.pii("Your order 1234 ships today.").passed
    assert not checks.pii("Card 4242 4242 4242 4242 on file").passed
    assert checks.latency(500, 500).passed and not checks.latency(500.1, 500).passed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4, "justification": "fine"}', (4, "fine")),
        ('Here: ```json\n{"score": "2", "justification": "old"}\n```', (2, "old")),
        ('{"score": 5.0, "justification": "ok"}', (5, "ok")),
    ],
)
def test_verdicts_that_parse(text: str, expected: tuple[int, str]) -> None:
    assert parse_verdict(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "great answer",
        '{"score": 7, "justification": "x"}',
        '{"score": 3}',
        '{"score": true, "justification": "x"}',
        '{"score": 3, "justification": "x"',
        '[{"score": 3}]',
    ],
)
def test_verdicts_that_do_not(text: str) -> None:
    with pytest.raises(BadVerdict):
        parse_verdict(text)
