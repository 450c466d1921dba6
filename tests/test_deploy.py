"""deploy/ is checked against the code: what the files name must exist and agree.

No container engine runs here, so the files are read, not run: every YAML parses; every
``llmscope`` command they run parses with the real CLI; every ``LLMSCOPE_*`` variable is a
setting; ports agree with the commands; health checks hit routes the apps serve; the image the
Dockerfile builds is the one the manifests run, from files that exist; the gateway config loads
with the real loader.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmscope.app.cli import build_parser
from llmscope.app.server import create_app
from llmscope.collector.gateway.config import load_config
from llmscope.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
IMAGE = "llmscope:latest"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return data


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def containers() -> list[dict[str, Any]]:
    found = []
    for doc in manifests():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or (
            spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
        )
        found += pod.get("containers", []) if pod else []
    return found


def llmscope_commands() -> list[list[str]]:
    """Every llmscope command line the deploy files run."""
    commands = []
    for service in compose()["services"].values():
        if service.get("image") == IMAGE and "command" in service:
            commands.append(list(service["command"]))
        for part in service.get("entrypoint", []):
            commands += [shlex.split(m)[1:] for m in re.findall(r"llmscope [a-z][^;|&]*", part)]
    commands += [list(c["args"]) for c in containers() if c.get("image") == IMAGE]
    docker_cmd = re.search(r"^CMD (\[.*\])", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert docker_cmd, "the Dockerfile has no CMD"
    commands.append(yaml.safe_load(docker_cmd.group(1)))
    return commands


def test_every_yaml_file_parses() -> None:
    for path in DEPLOY.rglob("*.y*ml"):
        assert list(yaml.safe_load_all(path.read_text())), path


def test_every_command_parses_with_the_real_cli() -> None:
    parser = build_parser()
    commands = llmscope_commands()
    assert {c[0] for c in commands} >= {"serve", "dashboard", "analyze"}
    for command in commands:
        parser.parse_args(command)  # exits (SystemExit) on anything the CLI does not take


def test_every_llmscope_variable_is_a_setting() -> None:
    known = {f"LLMSCOPE_{name.upper()}" for name in Settings.model_fields}
    texts = [p.read_text() for p in DEPLOY.rglob("*") if p.is_file()]
    named = set(re.findall(r"\bLLMSCOPE_[A-Z_]+\b", "\n".join(texts)))
    assert named, "the deploy files configure nothing?"
    assert named <= known, f"not settings: {sorted(named - known)}"


def test_images_are_the_one_the_dockerfile_builds() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"-t {IMAGE}" in dockerfile
    assert len(re.findall(r"^FROM ", dockerfile, re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M), "runs as a non-root user"
    services = compose()["services"]
    own = [s for name, s in services.items() if name != "postgres" and not s.get("profiles")]
    assert own and all(s["image"] == IMAGE for s in own)
    assert containers() and all(c["image"] == IMAGE for c in containers())


def test_the_dockerfile_copies_what_exists_and_what_the_build_needs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (?!--)(.+) \S+$", dockerfile, re.M)
    sources = {source for line in copies for source in line.split()}
    root = DEPLOY.parent
    assert [s for s in sorted(sources) if not (root / s).exists()] == []
    assert {"sdk", "pyproject.toml", "setup.py", "README.md", "llmscope"} <= sources


def _port_of(command: list[str], default: int) -> int:
    return int(command[command.index("--port") + 1]) if "--port" in command else default


def test_ports_agree_with_the_commands() -> None:
    services = compose()["services"]
    for name, default in (("collector", 5000), ("dashboard", 8050)):
        port = _port_of(services[name]["command"], default)
        assert any(p.endswith(f":{port}") for p in services[name]["ports"]), name
    worker_port = _port_of(services["worker"]["command"], 5100)  # scraped inside the network
    assert f"127.0.0.1:{worker_port}/health" in " ".join(services["worker"]["healthcheck"]["test"])
    defaults = {"serve": 5000, "dashboard": 8050, "worker": 5100}
    for container in containers():
        if container.get("args", [None])[0] in defaults:
            default = defaults[container["args"][0]]
            declared = {p["containerPort"] for p in container["ports"]}
            assert _port_of(container["args"], default) in declared, container["name"]


def _grpc_port_of(command: list[str]) -> int:
    flag = "--otlp-grpc-port"
    return int(command[command.index(flag) + 1]) if flag in command else 4317


def test_the_otlp_grpc_port_is_published_wherever_the_collector_runs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    docker_cmd = re.search(r"^CMD (\[.*\])", dockerfile, re.M)
    assert docker_cmd
    exposed = re.search(r"^EXPOSE (.+)$", dockerfile, re.M)
    assert exposed and str(_grpc_port_of(yaml.safe_load(docker_cmd.group(1)))) in exposed.group(1)
    collector = compose()["services"]["collector"]
    port = _grpc_port_of(collector["command"])
    assert port != 0 and f"127.0.0.1:{port}:{port}" in collector["ports"]
    serving = [c for c in containers() if c["args"][0] == "serve"]
    assert serving
    for container in serving:
        port = _grpc_port_of(container["args"])
        (named,) = [p["name"] for p in container["ports"] if p["containerPort"] == port]
        services = [d for d in manifests() if d["kind"] == "Service"]
        targets = {p["targetPort"] for d in services for p in d["spec"]["ports"]}
        assert named in targets, f"no Service publishes {container['name']}'s OTLP/gRPC port"


def test_health_checks_hit_routes_that_exist(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path)
    collector_paths = set(create_app(settings).openapi()["paths"])
    assert "/health" in collector_paths
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "HEALTHCHECK" in dockerfile and "127.0.0.1:5000/health" in dockerfile
    collector_check = " ".join(compose()["services"]["collector"]["healthcheck"]["test"])
    assert "127.0.0.1:5000/health" in collector_check
    for container in containers():
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container and container["args"][0] == "serve":
                assert container[probe]["httpGet"]["path"] in collector_paths


def test_the_example_gateway_config_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    config = load_config(DEPLOY / "gateway.example.yaml")
    assert {e.name for e in config.endpoints} == {"chat", "embeddings"}
    configmap = next(d for d in manifests() if d["kind"] == "ConfigMap")
    inline = tmp_path / "gateway.yaml"
    inline.write_text(configmap["data"]["gateway.yaml"])
    assert [e.name for e in load_config(inline).endpoints] == ["chat"]


def test_secrets_come_from_a_secret() -> None:
    for container in containers():
        sources = container.get("envFrom", [])
        assert any("secretRef" in s for s in sources), container["name"]
    secret = next(d for d in manifests() if d["kind"] == "Secret")
    assert "LLMSCOPE_DATABASE_URL" in secret["stringData"]


def test_the_dockerfile_bakes_in_a_model_function_that_exists() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    found = re.search(r"from (llmscope[\w.]*) import (\w+)", dockerfile)
    assert found, "the Dockerfile does not load the embedding model at build time"
    module = __import__(found.group(1), fromlist=[found.group(2)])
    assert callable(getattr(module, found.group(2)))


MONITORING = DEPLOY / "monitoring"


def exposed_metric_names(tmp_path: Path) -> set[str]:
    """Every sample name the collector's and the worker's /metrics can expose."""
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.testclient import TestClient

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "endpoints:\n  - {name: a, endpoint_type: llm/v1/chat, model: {provider: offline, "
        "name: m}}\nbudgets:\n  - {name: b, endpoint: a, limit_usd: 1}\n"
    )
    from llmscope.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(database_url=url, data_dir=tmp_path, gateway_config=config)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + end for end in suffixes.get(family.type, ("",)))
    return names


def queried_metric_names() -> dict[str, set[str]]:
    """The llmscope_* names in the Grafana dashboard's and the alert rules' queries."""
    import json

    found: dict[str, set[str]] = {}
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "llmscope.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"]]
    found["dashboard"] = set(re.findall(r"\bllmscope_[a-z_]+", " ".join(exprs)))
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    found["alerts"] = set(re.findall(r"\bllmscope_[a-z_]+", " ".join(exprs)))
    return found


def test_every_metric_the_dashboard_and_rules_query_exists(tmp_path: Path) -> None:
    exposed = exposed_metric_names(tmp_path)
    assert "llmscope_calls_total" in exposed and "llmscope_cluster_share" in exposed
    for where, names in queried_metric_names().items():
        assert names, f"{where} queries no llmscope metric?"
        assert names <= exposed, (
            f"{where} queries metrics nobody exposes: {sorted(names - exposed)}"
        )
    # the dashboard shows every family of the issue: calls, latency, ttft, tokens, cost, feedback,
    # the recorder and admission internals, the clusters and the evaluations
    shown = queried_metric_names()["dashboard"]
    families = ("calls", "call_latency", "ttft", "tokens", "cost_usd", "feedback", "cluster")
    for family in (*families, "evaluations", "evaluator"):
        assert any(n.startswith(f"llmscope_{family}") for n in shown), family


def test_prometheus_scrapes_the_services_that_serve_metrics() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    services = compose()["services"]
    expected = {
        f"collector:{_port_of(services['collector']['command'], 5000)}",
        f"worker:{_port_of(services['worker']['command'], 5100)}",
    }
    assert targets == expected
    assert all(job["metrics_path"] == "/metrics" for job in config["scrape_configs"])
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    monitoring = {n: s for n, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert set(monitoring) == {"prometheus", "grafana"}
    mounted = " ".join(v for s in monitoring.values() for v in s["volumes"])
    for path in ("prometheus.yml", "alerts.yml", "grafana/provisioning", "grafana/dashboards"):
        assert f"./monitoring/{path}" in mounted
        assert (MONITORING / path).exists()


def test_compose_and_kubernetes_run_the_worker() -> None:
    assert compose()["services"]["worker"]["command"][0] == "worker"
    workers = [c for c in containers() if c["args"][0] == "worker"]
    assert len(workers) == 1 and workers[0]["readinessProbe"]["httpGet"]["path"] == "/health"
    cronjob = next(d for d in manifests() if d["kind"] == "CronJob")
    assert cronjob["spec"]["suspend"] is True  # the option, off while the worker runs
