"""Admission control: over the in-flight budget, 503 with Retry-After at once; then recovery."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llmscope.collector.api.admission import GAUGE_INTERVAL, Admission
from llmscope.metrics import Metrics


def slow_app(release: asyncio.Event, entered: list[int]) -> Starlette:
    async def work(request: Request) -> JSONResponse:
        await request.body()
        entered.append(1)
        await release.wait()
        return JSONResponse({"ok": True})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/work", work, methods=["POST"]), Route("/health", health)])


async def _flood(max_requests: int, max_body: int, bodies: list[bytes]) -> list[httpx.Response]:
    release = asyncio.Event()
    entered: list[int] = []
    app = Admission(
        slow_app(release, entered),
        max_requests=max_requests,
        max_body_bytes=max_body,
        largest_body=1_000_000,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        tasks = [asyncio.create_task(client.post("/work", content=b)) for b in bodies]
        while len(entered) + app.refused < len(bodies):
            await asyncio.sleep(0.01)
        # while the admitted ones are held, health still answers
        assert (await client.get("/health")).status_code == 200
        release.set()
        answers = list(await asyncio.gather(*tasks))
        # once the load is gone, requests are admitted again
        assert (await client.post("/work", content=b"x")).status_code == 200
    assert app.requests == 0 and app.body_bytes == 0
    return answers


def test_requests_over_the_count_are_refused_with_retry_after() -> None:
    answers = asyncio.run(_flood(3, 10_000_000, [b"x"] * 8))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 3 + [503] * 5
    refused = next(a for a in answers if a.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert "capacity" in refused.json()["message"]


def test_body_bytes_in_flight_are_bounded() -> None:
    # 10 bodies of 400 kB with a 1 MB budget: two fit at a time
    answers = asyncio.run(_flood(100, 1_000_000, [b"y" * 400_000] * 10))
    assert sorted(a.status_code for a in answers) == [200] * 2 + [503] * 8


def test_a_single_large_body_is_always_admitted_alone() -> None:
    answers = asyncio.run(_flood(100, 1_000, [b"z" * 5_000]))
    assert [a.status_code for a in answers] == [200]


def _gauge(metrics: Metrics, name: str) -> float:
    text = metrics.render().decode()
    return next(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    )


async def _gauges_while_held() -> tuple[float, float, float, float]:
    release = asyncio.Event()
    entered: list[int] = []
    metrics = Metrics()
    app = Admission(
        slow_app(release, entered),
        max_requests=10,
        max_body_bytes=10_000_000,
        largest_body=1_000_000,
        metrics=metrics,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        tasks = [asyncio.create_task(client.post("/work", content=b"x" * 10)) for _ in range(3)]
        while len(entered) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(GAUGE_INTERVAL * 3)
        held = (
            _gauge(metrics, "llmscope_inflight_requests"),
            _gauge(metrics, "llmscope_inflight_body_bytes"),
        )
        release.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(GAUGE_INTERVAL * 3)
        after = (
            _gauge(metrics, "llmscope_inflight_requests"),
            _gauge(metrics, "llmscope_inflight_body_bytes"),
        )
    return (*held, *after)


def test_the_inflight_gauges_follow_the_counts_within_the_interval() -> None:
    # written by a timer, not per request: the held calls show, and so does their end
    assert asyncio.run(_gauges_while_held()) == (3, 30, 0, 0)
