"""The gateway's HTTP surface: MLflow AI Gateway's paths and OpenAI-compatible ``/v1``.

Traffic-split routes are named wherever an endpoint is: they are invoked on the same paths,
listed after the endpoints (``model.provider: "route"``, the destinations under ``route``) and
in ``/v1/models``; MLflow's own ``GET /api/3.0/gateway/route/{name}`` answers the route's config.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from llmscope.collector.gateway.config import Endpoint, Route
from llmscope.collector.gateway.service import Gateway
from llmscope.collector.gateway.shapes import error_body

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


def _route_model(route: Route) -> dict[str, Any]:
    return {"name": None, "provider": "route"}


def route_config_view(route: Route) -> dict[str, Any]:
    """A traffic route as MLflow's ``/api/3.0/gateway/route/{name}`` answers it."""
    return {
        "name": route.name,
        "task_type": route.task_type,
        "destinations": [d.model_dump() for d in route.destinations],
        "routing_strategy": route.routing_strategy,
        "fallbacks": list(route.fallbacks),
    }


def traffic_endpoint_view(route: Route) -> dict[str, Any]:
    return {
        "name": route.name,
        "endpoint_type": route.task_type,
        "model": _route_model(route),
        "endpoint_url": f"/endpoints/{route.name}/invocations",
        "limit": None,
        "route": route_config_view(route),
    }


def traffic_route_view(route: Route) -> dict[str, Any]:
    return {
        "name": route.name,
        "route_type": route.task_type,
        "model": _route_model(route),
        "route_url": f"/gateway/{route.name}/invocations",
        "limit": None,
    }


def _find(request: Request, name: str) -> dict[str, Any]:
    config = _gateway(request).config
    endpoint = config.endpoint(name)
    if endpoint is not None:
        return endpoint_view(endpoint)
    route = config.route(name)
    if route is not None:
        return traffic_endpoint_view(route)
    raise HTTPException(404, f"The endpoint '{name}' is not present or active on the server.")


@mlflow_router.get("/api/2.0/endpoints/")
def list_endpoints(request: Request) -> dict[str, Any]:
    """MLflow deployments: every configured endpoint."""
    config = _gateway(request).config
    views = [endpoint_view(e) for e in config.endpoints]
    views += [traffic_endpoint_view(r) for r in config.routes]
    return {"endpoints": views, "next_page_token": None}


@mlflow_router.get("/api/2.0/endpoints/{name}")
def get_endpoint(name: str, request: Request) -> dict[str, Any]:
    """MLflow deployments: one endpoint (or traffic route)."""
    return _find(request, name)


@mlflow_router.get("/api/2.0/gateway/routes/")
def list_routes(request: Request) -> dict[str, Any]:
    """Legacy MLflow AI Gateway: every configured route."""
    config = _gateway(request).config
    views = [route_view(e) for e in config.endpoints]
    views += [traffic_route_view(r) for r in config.routes]
    return {"routes": views, "next_page_token": None}


@mlflow_router.get("/api/2.0/gateway/routes/{name}")
def get_route(name: str, request: Request) -> dict[str, Any]:
    """Legacy MLflow AI Gateway: one route."""
    config = _gateway(request).config
    endpoint, route = config.endpoint(name), config.route(name)
    if endpoint is not None:
        return route_view(endpoint)
    if route is not None:
        return traffic_route_view(route)
    raise HTTPException(404, f"The route '{name}' is not present or active on the server.")


@mlflow_router.get("/api/3.0/gateway/endpoint/{name}")
def get_endpoint_v3(name: str, request: Request) -> dict[str, Any]:
    """MLflow >= 3.6: one endpoint."""
    endpoint = _gateway(request).config.endpoint(name)
    if endpoint is None:
        raise HTTPException(404, f"The endpoint '{name}' is not present or active on the server.")
    return endpoint_view(endpoint)


@mlflow_router.get("/api/3.0/gateway/route/{name}")
def get_route_v3(name: str, request: Request) -> dict[str, Any]:
    """MLflow >= 3.6: one traffic-split route's config."""
    route = _gateway(request).config.route(name)
    if route is None:
        raise HTTPException(404, f"The route '{name}' is not present or active on the server.")
    return route_config_view(route)


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


@openai_router.post("/responses")
async def responses(request: Request) -> Response:
    """OpenAI's Responses API on a chat endpoint or route (``model``)."""
    return await _gateway(request).invoke(request, None, "chat", "responses")


def model_view(name: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": owned_by}


def _models(request: Request) -> dict[str, dict[str, Any]]:
    gateway = _gateway(request)
    created = gateway.loaded_at
    views = {
        e.name: model_view(e.name, created, e.model.provider) for e in gateway.config.endpoints
    }
    for route in gateway.config.routes:
        views[route.name] = model_view(route.name, created, "route")
    return views


@openai_router.get("/models")
def list_models(request: Request) -> dict[str, Any]:
    """OpenAI's model list: every endpoint and route, by name."""
    return {"object": "list", "data": list(_models(request).values())}


@openai_router.get("/models/{model_id:path}")
def get_model(model_id: str, request: Request) -> Response:
    """One endpoint or route, OpenAI-shaped; 404 in OpenAI's error shape."""
    found = _models(request).get(model_id)
    if found is None:
        message = f"The model '{model_id}' does not exist"
        return JSONResponse(error_body("openai", 404, message), 404)
    return JSONResponse(found)
