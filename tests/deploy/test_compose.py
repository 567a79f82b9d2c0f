"""docker-compose.yml and the files it mounts fit together (no Docker engine runs here).

The compose file is checked against the Compose Specification's JSON schema
(shipped in check-jsonschema) and for its references: services it depends on,
files it mounts, the broker, Redis and metrics addresses the worker and
Prometheus use, the topics the worker needs, and the dashboard Grafana loads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Return container path -> host path of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[target] = source
    return found


def test_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    done = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_services_volumes_and_mounted_files_exist() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"redpanda", "topics", "redis", "worker", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in (compose.get("volumes") or {}), f"{name} uses undeclared volume {source}"
    assert (ROOT / services["worker"]["build"] / "Dockerfile").exists()


def test_worker_settings_are_valid_and_point_at_the_services() -> None:
    services = _compose()["services"]
    env = {k: str(v) for k, v in services["worker"]["environment"].items()}
    cfg = load_settings(env=env)  # the worker would accept them at start-up
    broker_host, broker_port = cfg.kafka.brokers.split(":")
    assert broker_host == "redpanda"
    assert f"internal://0.0.0.0:{broker_port}" in " ".join(services["redpanda"]["command"])
    assert cfg.redis.url.split("//")[1].split(":")[0] == "redis"
    # The topics service creates every topic the worker checks for at start-up.
    created = set(services["topics"]["environment"]["TOPICS"].split())
    wanted = {value for key, value in vars(cfg.kafka).items() if key.endswith("_topic")}
    assert wanted <= created, f"docker-compose.yml's topics service must also create {sorted(wanted - created)}"

    scrape = yaml.safe_load((ROOT / _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"]).read_text())
    targets = [t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"worker:{cfg.run.metrics_port}"]
    assert f"{cfg.run.metrics_port}:{cfg.run.metrics_port}" in services["worker"]["ports"]


def test_grafana_is_provisioned_with_the_dashboard_and_the_prometheus_source() -> None:
    services = _compose()["services"]
    grafana = _mounts(services["grafana"])
    provisioning = ROOT / grafana["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "9090:9090" in services["prometheus"]["ports"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/journeyflow.yml").read_text())["providers"]
    folder = ROOT / grafana[provider["options"]["path"]]
    assert (folder / "journeyflow.json").exists()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/journeyflow.json"
