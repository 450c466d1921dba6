"""The gateway's HTTP surface: MLflow AI Gateway's paths and OpenAI-compatible ``/v1``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from llmscope.collector.gateway.config import Endpoint
from llmscope.collector.gateway.service import Gateway

mlflow_router = APIRouter(tags=["gateway (MLflow)"])
openai_router = APIRouter(prefix="/v1", tags=["gateway (OpenAI)"])


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _limit(endpoint: Endpoint) -> dict[str, Any] | None:
    if endpoint.limit is None:
        return None
    return endpoint.limit.model_dump()


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    # Only name and provider of the model: its config holds keys.
    return {
        "name": endpoint.name,
        "endpoint_type": endpoint.endpoint_type,
        "model": {"name": endpoint.model.name, "provider": endpoint.model.provider},
        "endpoint_url": f"/endpoints/{endpoint.name}/invocations",
        "limit": _limit(endpoint),
    }


def route_view(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "name": endpoint.name,
        "route_type": endpoint.endpoint_type,
        "model": {"name": endpoint.model.name, "provider": endpoint.model.provider},
        "route_url": f"/gateway/{endpoint.name}/invocations",
        "limit": _limit(endpoint),
    }


def _find(request: Request, name: str) -> Endpoint:
    endpoint = _gateway(request).config.endpoint(name)
    if endpoint is None:
        raise HTTPException(404, f"The endpoint '{name}' is not present or active on the server.")
    return endpoint


@mlflow_router.get("/api/2.0/endpoints/")
def list_endpoints(request: Request) -> dict[str, Any]:
    """MLflow deployments: every configured endpoint."""
    endpoints = _gateway(request).config.endpoints
    return {"endpoints": [endpoint_view(e) for e in endpoints], "next_page_token": None}


@mlflow_router.get("/api/2.0/endpoints/{name}")
def get_endpoint(name: str, request: Request) -> dict[str, Any]:
    """MLflow deployments: one endpoint."""
    return endpoint_view(_find(request, name))


@mlflow_router.get("/api/2.0/gateway/routes/")
def list_routes(request: Request) -> dict[str, Any]:
    """Legacy MLflow AI Gateway: every configured route."""
    endpoints = _gateway(request).config.endpoints
    return {"routes": [route_view(e) for e in endpoints], "next_page_token": None}


@mlflow_router.get("/api/2.0/gateway/routes/{name}")
def get_route(name: str, request: Request) -> dict[str, Any]:
    """Legacy MLflow AI Gateway: one route."""
    return route_view(_find(request, name))


@mlflow_router.post("/endpoints/{name}/invocations")
async def invoke_endpoint(name: str, request: Request) -> Response:
    """MLflow deployments: query an endpoint (chat, completions or embeddings)."""
    return await _gateway(request).invoke(request, name, None, "mlflow")


@mlflow_router.post("/gateway/{name}/invocations")
async def invoke_route(name: str, request: Request) -> Response:
    """Legacy MLflow AI Gateway: query a route."""
    return await _gateway(request).invoke(request, name, None, "mlflow")


@openai_router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI-compatible chat; ``model`` names the endpoint."""
    return await _gateway(request).invoke(request, None, "chat", "openai")


@openai_router.post("/completions")
async def completions(request: Request) -> Response:
    """OpenAI-compatible completions; ``model`` names the endpoint."""
    return await _gateway(request).invoke(request, None, "completions", "openai")


@openai_router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    """OpenAI-compatible embeddings; ``model`` names the endpoint."""
    return await _gateway(request).invoke(request, None, "embeddings", "openai")
