"""Try a fix spends with the dashboard's own collector key, so the dashboard's server decides
who may press Run: once keys exist, an admin sign-in only. A read sign-in that posts the Run
callback itself (``/_dash-update-component``, as a script would) starts nothing; the form's
numbers are checked on the server whatever the browser sends. ``llmscope serve --config`` and
``llmscope dashboard`` each run in their own process over one store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmscope.db import make_engine, make_sessionmaker, session_scope, upgrade
from llmscope.db.models import Experiment
from llmscope.keys import create_key
from tests.conftest import cli_server
from tests.dashboard.test_tryfix_browser import seed
from tests.evaluate.experiments.support import RUN_ID
from tests.evaluate.experiments.world import World, world
from tests.evaluate.experiments.world import rows as stored

FIX = "Answer the customer question {{question}} with the refund policy in force today."
RUN = "tryfix-job.data"  # the Run-or-poll callback is the one whose outputs start so


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The seeded store and its keys: a reader, an admin, and the dashboard's own admin key."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(make_sessionmaker(engine)) as session:
        keys = {
            name: create_key(session, name=name, scope=scope)
            for name, scope in [("reader", "read"), ("admin", "admin"), ("dashboard", "admin")]
        }
    engine.dispose()
    seed(url)
    yield url, keys


def signed_in(dash: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=dash, timeout=30)
    answer = client.post("/login", data={"key": key, "next": "/"})
    assert answer.status_code == 302 and answer.headers["location"] == "/", answer.text
    return client


def post_callback(
    client: httpx.Client, starts: str, inputs: list[dict[str, Any]], **state: Any
) -> httpx.Response:
    """Post the callback whose output starts with ``starts`` as the browser would."""
    (dep,) = [
        d
        for d in client.get("/_dash-dependencies").json()
        if d["output"].lstrip(".").startswith(starts)
    ]
    parts = dep["output"].strip(".").split("...")
    outputs = [dict(zip(("id", "property"), p.split(".", 1), strict=True)) for p in parts]
    body = {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"],
        "state": [
            {"id": s["id"], "property": s["property"], "value": state.get(s["id"])}
            for s in dep["state"]
        ],
    }
    return client.post("/_dash-update-component", json=body)


def press_run(client: httpx.Client, sample: Any) -> dict[str, Any]:
    """Press Run with a pasted candidate; the callback's outputs by component id."""
    answer = post_callback(
        client,
        RUN,
        [
            {"id": "tryfix-run", "property": "n_clicks", "value": 1},
            {"id": "tryfix-poll", "property": "n_intervals", "value": None},
        ],
        **{
            "tryfix-context": {"cluster_id": 0, "run_id": RUN_ID},
            "tryfix-text": FIX,
            "tryfix-evaluators": ["correctness"],
            "tryfix-sample": sample,
        },
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()["response"]
    return found


def form(client: httpx.Client) -> str:
    context = {"cluster_id": 0, "run_id": RUN_ID}
    inputs = [{"id": "tryfix-context", "property": "data", "value": context}]
    answer = post_callback(client, "tryfix-form.children", inputs)
    assert answer.status_code == 200, answer.text
    return answer.text


def started(w: World) -> list[Experiment]:
    return stored(w.url, Experiment)


def test_only_an_admin_sign_in_starts_an_experiment_and_the_sample_is_bounded(
    store: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, keys = store
    api_env = {"LLMSCOPE_DATA_DIR": str(tmp_path / "data")}
    dash_env = {
        "LLMSCOPE_COLLECTOR_API_KEY": keys["dashboard"],
        "LLMSCOPE_DASHBOARD_SECRET_KEY": "test-secret",
        "LLMSCOPE_DATA_DIR": str(tmp_path / "dash"),
    }
    with (
        world(url, tmp_path) as w,
        cli_server(["serve", "--config", str(w.config), "--database-url", url], env=api_env) as api,
        cli_server(
            ["dashboard", "--database-url", url, "--collector-url", api], env=dash_env
        ) as dash,
    ):
        reader = signed_in(dash, keys["reader"])
        assert "needs a sign-in with an admin key" in form(reader)
        assert "tryfix-run" not in form(reader)  # no Run button to press
        for sample in (3, 10**9, "lots"):
            refused = press_run(reader, sample)
            assert refused["tryfix-job"]["data"] is None
            assert "needs a sign-in with an admin key" in str(refused["tryfix-message"])
        assert started(w) == [] and w.provider.requests == []

        admin = signed_in(dash, keys["admin"])
        assert "tryfix-run" in form(admin)
        for wrong in (10_001, 0, 2.5, "lots"):
            refused = press_run(admin, wrong)
            assert refused["tryfix-job"]["data"] is None, refused
            assert "Records: must be a whole number from 1 to 10000" in str(refused)
        assert started(w) == [] and w.provider.requests == []

        job = press_run(admin, 3)["tryfix-job"]["data"]
        assert isinstance(job, str) and job.startswith("exp-")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and started(w)[0].status == "running":
            time.sleep(0.1)
        assert [(e.id, e.status) for e in started(w)] == [(job, "done")]
    assert len(w.provider.requests) == 3
