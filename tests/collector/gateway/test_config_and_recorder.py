"""Config validation (one line naming endpoint and field), the CLI's exit 2, and the recorder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from llmscope.collector.gateway.config import ConfigError, load_config, parse_config
from llmscope.collector.ingest import Recorder
from llmscope.config import Settings
from llmscope.db import make_engine, make_sessionmaker
from llmscope.schema import RecordIn, record_row
from tests.collector.gateway.conftest import wait_for_records
from tests.conftest import cli_server

SECRET = "sk-live-VERYSECRETvalue0123456789"

MLFLOW_YAML = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: $OPENAI_API_KEY
    limit:
      renewal_period: minute
      calls: 10
"""


def endpoint(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "chat",
        "endpoint_type": "llm/v1/chat",
        "model": {"provider": "offline", "name": "m"},
    }
    base.update(overrides)
    return base


def test_mlflow_yaml_loads_and_resolves_env_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    path = tmp_path / "gateway.yaml"
    path.write_text(MLFLOW_YAML)
    config = load_config(path)
    (chat,) = config.endpoints
    assert chat.model.config["openai_api_key"].get_secret_value() == SECRET
    assert SECRET not in repr(config) and SECRET not in config.model_dump_json()
    assert chat.limit is not None and (chat.limit.calls, chat.limit.period_seconds) == (10, 60)
    legacy = MLFLOW_YAML.replace("endpoints:", "routes:").replace("endpoint_type", "route_type")
    path.write_text(legacy)
    assert load_config(path).endpoints[0].endpoint_type == "llm/v1/chat"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"endpoints": [endpoint(endpoint_type="llm/v2/chat")]}, "endpoint 'chat': endpoint_type:"),
        (
            {"endpoints": [endpoint(model={"provider": "nope", "name": "m"})]},
            "endpoint 'chat': model.provider:",
        ),
        (
            {"endpoints": [endpoint(model={"provider": "openai", "name": "m"})]},
            "endpoint 'chat': model.config.openai_api_key: field required for openai",
        ),
        (
            {"endpoints": [endpoint(), endpoint()]},
            "endpoint 'chat': name: more than one endpoint has this name",
        ),
        ({"endpoints": [endpoint(limit={"calls": 0})]}, "endpoint 'chat': limit.calls:"),
        ({"endpoints": [endpoint(colour="red")]}, "endpoint 'chat': colour: unknown field"),
        ({"endpoints": [{"endpoint_type": "llm/v1/chat"}]}, "endpoints[0]: name: Field required"),
        (
            {
                "endpoints": [
                    endpoint(model={"provider": "offline", "name": "m", "config": {"x": 1}})
                ]
            },
            "endpoint 'chat': model.config.x: unknown field for offline",
        ),
        (
            {
                "endpoints": [
                    endpoint(
                        endpoint_type="llm/v1/embeddings",
                        model={
                            "provider": "anthropic",
                            "name": "c",
                            "config": {"anthropic_api_key": "k"},
                        },
                    )
                ]
            },
            "endpoint 'chat': endpoint_type: anthropic does not support llm/v1/embeddings",
        ),
        ({"endpoints": []}, "endpoints: a non-empty list"),
        (
            {"endpoints": [endpoint()], "prompts": [{"name": "p"}]},
            "prompts[0]: text: Field required",
        ),
    ],
)
def test_invalid_config_names_endpoint_and_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_errors_never_show_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(ConfigError, match="environment variable MISSING_KEY is not set"):
        parse_config(
            {
                "endpoints": [
                    endpoint(
                        model={
                            "provider": "openai",
                            "name": "m",
                            "config": {"openai_api_key": "$MISSING_KEY"},
                        }
                    )
                ]
            }
        )
    with pytest.raises(ConfigError) as caught:
        # A key pasted where a mapping belongs: pydantic would echo the input; we must not.
        parse_config(
            {"endpoints": [endpoint(model={"provider": "openai", "name": "m", "config": SECRET})]}
        )
    assert str(caught.value).startswith("endpoint 'chat': model.config: Input should be")
    assert SECRET not in str(caught.value)


def test_serve_with_invalid_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps({"endpoints": [endpoint(endpoint_type="llm/v1/chatt")]}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmscope",
            "serve",
            "--config",
            str(path),
            "--database-url",
            f"sqlite:///{tmp_path / 's.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("llmscope serve: error: --config: endpoint 'chat': endpoint_type:")


def _rows(n: int, prefix: str) -> list[dict[str, object]]:
    return [
        record_row(RecordIn(id=f"{prefix}-{i}", prompt="q"), source="gateway") for i in range(n)
    ]


def test_recorder_drains_queue_on_stop(settings: Settings, engine: Engine) -> None:
    recorder = Recorder(make_sessionmaker(engine), settings.data_dir / "spool", batch_size=100)
    recorder.start()
    for row in _rows(1000, "d"):
        recorder.submit(row)
    recorder.stop()
    assert len(wait_for_records(engine, 1000, timeout=0)) == 1000


def test_full_queue_overflows_to_spool_and_orphans_are_replayed(
    settings: Settings, engine: Engine
) -> None:
    spool = settings.data_dir / "spool"
    spool.mkdir(parents=True)
    # A spool left by a process that is gone (pid 2**22 + 1 is beyond any pid_max default).
    orphan = spool / f"records-{2**22 + 1}.jsonl"
    orphan.write_text(
        "".join(
            json.dumps(
                {
                    **r,
                    "timestamp": r["timestamp"].isoformat(),
                    "received_at": r["received_at"].isoformat(),
                }
            )
            + "\n"
            for r in _rows(5, "o")
        )
        + '{"torn line'
    )
    recorder = Recorder(make_sessionmaker(engine), spool, max_queue=3)
    for row in _rows(10, "q"):
        recorder.submit(row)  # not started yet: 3 queued, 7 spooled
    assert recorder.spooled == 7
    recorder.start()
    stored = wait_for_records(engine, 15)
    recorder.stop()
    assert sorted(r.id for r in stored) == sorted(
        [f"o-{i}" for i in range(5)] + [f"q-{i}" for i in range(10)]
    )
    assert not recorder.spool_pending() and not orphan.exists()


def test_replay_is_idempotent(settings: Settings, database_url: str) -> None:
    engine = make_engine(database_url)
    rows = _rows(3, "i")
    recorder = Recorder(make_sessionmaker(engine), settings.data_dir / "spool", max_queue=1)
    recorder.submit(rows[0])
    for row in rows:  # rows[0] twice: queued once and spooled once
        recorder.submit(row)
    recorder.start()
    recorder.stop()
    assert len(wait_for_records(engine, 3, timeout=5)) == 3
    engine.dispose()


@pytest.mark.e2e
def test_serve_with_config_records_calls_and_drains_on_shutdown(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "endpoints:\n  - name: demo\n    endpoint_type: llm/v1/chat\n"
        "    model: {provider: offline, name: support-bot, config: {latency_ms: 1}}\n"
    )
    ids = []
    # leaving the block stops the server right away: the queue must drain before it exits
    with cli_server(
        ["serve", "--config", str(config), "--database-url", settings.database_url],
        env={"LLMSCOPE_DATA_DIR": str(settings.data_dir)},
        stop_timeout=30,
    ) as base:
        for question in ("How do I reset my password?", "Where is my parcel?"):
            answer = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "demo", "messages": [{"role": "user", "content": question}]},
            )
            assert answer.status_code == 200
            ids.append(answer.headers["x-llmscope-record-id"])
    stored = wait_for_records(engine, 2, timeout=0)
    assert sorted(r.id for r in stored) == sorted(ids)
    assert {r.source for r in stored} == {"gateway"}
