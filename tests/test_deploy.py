"""deploy/ checked offline: the image definition, the compose stack and the Kubernetes manifests.

No container engine, cluster or chart repository is needed (there is none on
the machines that run this): the Dockerfile goes through hadolint, the compose
file through the Compose Specification's JSON Schema (tests/data/), every
manifest through kubernetes-validate's bundled schemas for Kubernetes 1.30,
the NATS configuration through `nats-server -t`, and the worker's readiness
probe is run against sockets on loopback. What these cannot show (an image
that builds, a stack that starts) is listed in deploy/README.md.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import yaml

from actors.config import DEFAULT_CONFIG, load_config
from bus.credentials import Credential
from bus.embedded import nats_server_binary

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DATA = Path(__file__).resolve().parent / "data"

KUBERNETES_VERSION = "1.30.0"
"""The oldest Kubernetes the manifests are meant for (probes, PDBs and the rest are older than it)."""

MANIFESTS = sorted(path for path in K8S.glob("*.yaml") if path.name not in {"kustomization.yaml", "nats-values.yaml"})
NATS_URLS = "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"


def tool(name: str) -> str:
    """The console script `name` installed beside this interpreter (by a wheel of the test extras)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def resources() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def resource(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in resources() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(kind: str, name: str) -> dict[str, Any]:
    (only,) = resource(kind, name)["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = only
    return found


# The image


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"], cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package added to pyproject.toml but not copied into the image would be missing from it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set()
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= copied


def test_the_image_runs_agentbus_as_a_non_root_user_and_a_worker_by_default() -> None:
    final_stage = (DEPLOY / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    lines = final_stage.splitlines()
    assert lines[0] == "python:3.12-slim"
    assert "USER 10001:10001" in lines
    assert 'ENTRYPOINT ["agentbus"]' in lines
    assert lines[-1] == 'CMD ["worker"]'
    # The OTLP exporter is in (OTEL_* variables alone turn tracing on), the test tools are not.
    assert "pip install --no-cache-dir '.[otlp]'\n" in (DEPLOY / "Dockerfile").read_text()


# The configuration


def test_the_deployed_config_loads_with_three_replicas_of_the_command_stream() -> None:
    config = load_config(DEPLOY / "agentbus.toml")
    assert config.cluster.replicas == 3
    assert config.cluster.partitions == 12
    assert config.cluster.failover_seconds == 10


def test_the_deployed_config_is_the_packaged_default_but_for_the_cluster_section() -> None:
    """deploy/agentbus.toml replaces the packaged default entirely: it must keep up with it."""
    deployed = load_config(DEPLOY / "agentbus.toml")
    default = load_config(DEFAULT_CONFIG)
    assert msgspec.structs.replace(deployed, cluster=default.cluster) == default


def test_the_config_map_holds_deploy_agentbus_toml_verbatim() -> None:
    config_map = resource("ConfigMap", "agentbus-config")
    assert config_map["data"]["agentbus.toml"] == (DEPLOY / "agentbus.toml").read_text()


# The compose stack


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(compose())
    ]
    assert errors == []


def test_the_compose_file_refers_only_to_what_it_declares() -> None:
    """What the schema cannot see: services, volumes and configs named in a service exist, and config files too."""
    spec = compose()
    for name, service in spec["services"].items():
        assert set(service.get("depends_on", {})) <= set(spec["services"]), name
        named = {mount.split(":")[0] for mount in service.get("volumes", []) if not mount.startswith((".", "/"))}
        assert named <= set(spec["volumes"]), name
        assert {config["source"] for config in service.get("configs", [])} <= set(spec["configs"]), name
    for config in spec["configs"].values():
        assert (DEPLOY / config["file"]).is_file(), config


def test_the_compose_file_runs_a_three_node_nats_cluster_two_gateways_behind_a_proxy_and_three_workers() -> None:
    services = compose()["services"]
    nodes = [services[f"nats-{n}"] for n in (1, 2, 3)]
    for n, node in enumerate(nodes, start=1):
        image, tag = node["image"].split(":")
        assert image == "nats"
        assert tuple(int(part) for part in tag.split("-")[0].split(".")[:2]) >= (2, 10)
        assert node["command"][-2:] == ["--name", f"nats-{n}"]
        assert node["volumes"] == [f"nats-{n}:/data"]
        assert "healthcheck" in node
    assert services["postgres"]["image"] == "postgres:16"
    assert services["postgres"]["volumes"] == ["postgres:/var/lib/postgresql/data"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 3
    gateways = [name for name, service in services.items() if service.get("command", [None])[0] == "gateway"]
    assert gateways == ["gateway-1", "gateway-2"]
    assert set(services["proxy"]["depends_on"]) == set(gateways)
    assert services["proxy"]["ports"] == ["8080:8080"]


def test_agentbus_starts_after_the_migration_on_healthy_nats_nodes_and_postgresql() -> None:
    services = compose()["services"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    healthy = {"condition": "service_healthy"}
    for name in ("worker", "gateway-1", "gateway-2"):
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "nats-1": healthy,
            "nats-2": healthy,
            "nats-3": healthy,
            "postgres": healthy,
        }, name


def test_every_agentbus_process_is_configured_through_the_environment() -> None:
    services = compose()["services"]
    for name in ("migrate", "worker", "gateway-1", "gateway-2"):
        environment = services[name]["environment"]
        assert environment["AGENTBUS_NATS_URL"] == NATS_URLS, name
        assert environment["AGENTBUS_DATABASE_URL"].startswith("postgresql://agentbus:"), name
        assert environment["AGENTBUS_DATABASE_URL"].endswith("@postgres:5432/agentbus"), name
        assert environment["AGENTBUS_CONFIG"] == "/etc/agentbus/agentbus.toml", name
        assert services[name]["configs"] == [{"source": "agentbus-config", "target": "/etc/agentbus/agentbus.toml"}]
    for name in ("gateway-1", "gateway-2"):
        # Required, with no default: a stack started without a key fails instead of serving openly.
        assert services[name]["environment"]["AGENTBUS_API_KEY"].startswith("${AGENTBUS_API_KEY:?")
    assert "AGENTBUS_API_KEY" not in services["worker"]["environment"]


def test_the_proxy_balances_over_both_gateways_and_passes_websocket_upgrades() -> None:
    nginx = (DEPLOY / "nginx.conf").read_text()
    upstream = nginx.split("upstream agentbus_gateways {", 1)[1].split("}", 1)[0]
    servers = [line.split()[1] for line in upstream.splitlines() if line.strip().startswith("server ")]
    assert servers == ["gateway-1:8000", "gateway-2:8000"]
    for directive in (
        "proxy_pass http://agentbus_gateways;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
    ):
        assert directive in nginx


def test_the_nats_config_is_accepted_by_nats_server_and_routes_to_all_three_nodes() -> None:
    conf = DEPLOY / "nats.conf"
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf), "--name", "nats-1"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = conf.read_text()
    assert all(f"nats://nats-{n}:6222" in text for n in (1, 2, 3))
    assert "jetstream {" in text and "store_dir: /data" in text


# Kubernetes


def test_every_kubernetes_manifest_is_valid_for_kubernetes_1_30() -> None:
    """Strict: a misspelt field (`periodSecond`) fails, as `kubectl apply --validate=strict` would."""
    failures = []
    for path, document in resources():
        try:
            assert kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True) == "1.30"
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{path.name} {document['kind']}: {'.'.join(map(str, exc.path))}: {exc.message}")
    assert failures == []


def test_the_manifests_hold_the_expected_kinds() -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in resources())
    assert kinds == [
        ("ConfigMap", "agentbus-config"),
        ("ConfigMap", "agentbus-env"),
        ("Deployment", "agentbus-gateway"),
        ("Deployment", "agentbus-worker"),
        ("Job", "agentbus-migrate"),
        ("Namespace", "agentbus"),
        ("PodDisruptionBudget", "agentbus-gateway"),
        ("PodDisruptionBudget", "agentbus-worker"),
        ("Secret", "agentbus"),
        ("Service", "agentbus-gateway"),
        ("Service", "postgres"),
        ("StatefulSet", "postgres"),
    ]
    assert all(doc["metadata"].get("namespace") == "agentbus" for _, doc in resources() if doc["kind"] != "Namespace")
    assert resource("Deployment", "agentbus-worker")["spec"]["replicas"] == 3
    assert resource("Deployment", "agentbus-gateway")["spec"]["replicas"] == 2
    assert container("Job", "agentbus-migrate")["args"] == ["migrate"]


def test_workers_and_gateways_have_probes_and_resources() -> None:
    gateway = container("Deployment", "agentbus-gateway")
    assert gateway["args"] == ["gateway", "--host", "0.0.0.0", "--port", "8000"]
    assert gateway["ports"] == [{"name": "http", "containerPort": 8000}]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    worker = container("Deployment", "agentbus-worker")
    assert worker["args"] == ["worker"]
    assert worker["readinessProbe"]["exec"]["command"][:2] == ["python", "-c"]
    assert "livenessProbe" not in worker  # why: the comment above the probe in worker.yaml
    for name, spec in (("gateway", gateway), ("worker", worker), ("migrate", container("Job", "agentbus-migrate"))):
        assert set(spec["resources"]) == {"requests", "limits"}, name
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), name
        assert "memory" in spec["resources"]["limits"], name


def test_agentbus_pods_run_as_the_image_user_without_privileges() -> None:
    for kind, name in (
        ("Deployment", "agentbus-worker"),
        ("Deployment", "agentbus-gateway"),
        ("Job", "agentbus-migrate"),
    ):
        pod = resource(kind, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        (only,) = pod["containers"]
        assert only["securityContext"]["allowPrivilegeEscalation"] is False
        assert only["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_agentbus_reads_its_config_and_secrets_from_the_config_map_and_the_secret() -> None:
    env = resource("ConfigMap", "agentbus-env")["data"]
    assert env["AGENTBUS_CONFIG"] == "/etc/agentbus/agentbus.toml"
    assert env["AGENTBUS_NATS_URL"].split(",") == [f"nats://nats-{n}.nats-headless:4222" for n in range(3)]
    secret_keys = {
        "agentbus": set(resource("Secret", "agentbus")["stringData"]),
        # Made from what `agentbus credentials` writes (deploy/README.md), never kept in the repository.
        "agentbus-nats": {"worker.nk", "gateway.nk", "gateway-keys", "service-keys"},
    }
    for kind, name, expected in (
        ("Deployment", "agentbus-worker", {"AGENTBUS_DATABASE_URL", "AGENTBUS_GATEWAY_KEYS", "AGENTBUS_SERVICE_KEYS"}),
        ("Deployment", "agentbus-gateway", {"AGENTBUS_DATABASE_URL", "AGENTBUS_API_KEY"}),
        ("Job", "agentbus-migrate", {"AGENTBUS_DATABASE_URL"}),
    ):
        spec = container(kind, name)
        from_secret = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in spec["env"]}
        assert set(from_secret) == expected, name
        assert all(ref["key"] in secret_keys[ref["name"]] for ref in from_secret.values()), name
    for name in ("agentbus-worker", "agentbus-gateway"):
        pod = resource("Deployment", name)["spec"]["template"]["spec"]
        assert {"name": "config", "configMap": {"name": "agentbus-config"}} in pod["volumes"]
        assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "agentbus-env"}}]


def test_the_secret_holds_only_marked_placeholders_and_is_not_applied_by_the_kustomization() -> None:
    secret = resource("Secret", "agentbus")
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS if p.name != "secret.yaml")


def _listening() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def _refusing() -> socket.socket:
    """A port held but not listening: connecting to it is refused, and nothing else can take it meanwhile."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


def _worker_ready(nats_url: str, database_url: str) -> bool:
    command = container("Deployment", "agentbus-worker")["readinessProbe"]["exec"]["command"]
    env = {**os.environ, "AGENTBUS_NATS_URL": nats_url, "AGENTBUS_DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_the_worker_is_ready_while_postgresql_and_one_nats_node_answer_and_not_otherwise() -> None:
    with _listening() as nats, _refusing() as dead_nats, _listening() as pg, _refusing() as dead_pg:
        nats_port, dead_nats_port = nats.getsockname()[1], dead_nats.getsockname()[1]
        one_node = f"nats://127.0.0.1:{dead_nats_port},nats://127.0.0.1:{nats_port}"
        no_node = f"nats://127.0.0.1:{dead_nats_port}"
        database = f"postgresql://agentbus:secret@127.0.0.1:{pg.getsockname()[1]}/agentbus"
        no_database = f"postgresql://agentbus:secret@127.0.0.1:{dead_pg.getsockname()[1]}/agentbus"
        assert _worker_ready(one_node, database)
        assert not _worker_ready(one_node, no_database)
        assert not _worker_ready(no_node, database)


def _unknown_keys(ours: Any, chart: Any, path: str = "") -> Iterator[str]:
    if not isinstance(ours, dict) or not isinstance(chart, dict) or not chart:
        return  # a leaf, or a map the chart leaves open (merge: {}, resources: {}, ...)
    for key, value in ours.items():
        if key not in chart:
            yield f"{path}{key}"
        else:
            yield from _unknown_keys(value, chart[key], f"{path}{key}.")


def test_the_nats_chart_values_run_a_cluster_of_three_with_jetstream_file_storage() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    chart = yaml.safe_load((DATA / "nats-chart-values.yaml").read_text())
    assert list(_unknown_keys(values, chart)) == []
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    jetstream = values["config"]["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True
    assert load_config(DEPLOY / "agentbus.toml").cluster.replicas == values["config"]["cluster"]["replicas"]


# NATS credentials


def test_each_agentbus_pod_and_container_gets_only_its_own_nats_seed() -> None:
    assert resource("ConfigMap", "agentbus-env")["data"]["AGENTBUS_NATS_CREDENTIALS"] == "/etc/agentbus-nats/nats.nk"
    for name, seed in (("agentbus-worker", "worker.nk"), ("agentbus-gateway", "gateway.nk")):
        pod = resource("Deployment", name)["spec"]["template"]["spec"]
        [volume] = [volume for volume in pod["volumes"] if volume["name"] == "nats-credential"]
        assert volume["secret"]["items"] == [{"key": seed, "path": "nats.nk"}], name
        assert volume["secret"]["defaultMode"] == 0o400, name
    services = compose()["services"]
    for name, secret in (("worker", "nats-worker"), ("gateway-1", "nats-gateway"), ("gateway-2", "nats-gateway")):
        assert services[name]["secrets"] == [{"source": secret, "target": "nats.nk"}], name
        assert services[name]["environment"]["AGENTBUS_NATS_CREDENTIALS"] == "/run/secrets/nats.nk", name
    for keys in ("AGENTBUS_GATEWAY_KEYS", "AGENTBUS_SERVICE_KEYS"):
        assert services["worker"]["environment"][keys].startswith("${" + keys + ":?"), keys
    assert "secrets" not in services["migrate"]
    for n in (1, 2, 3):
        assert {"source": "nats-auth", "target": "/etc/nats/credentials/nats-auth.conf"} in services[f"nats-{n}"][
            "configs"
        ]
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert values["config"]["merge"] == {"$include": "./agentbus-auth/nats-auth.conf"}


def test_agentbus_credentials_writes_seeds_of_their_owner_and_an_include_nats_server_accepts(tmp_path: Path) -> None:
    """The placeholder in the repository and the file `agentbus credentials` writes are both valid server configs."""
    out = tmp_path / "credentials"
    agentbus = str(Path(sys.executable).parent / "agentbus")
    result = subprocess.run(
        [agentbus, "credentials", str(out), "--service", "billing", "--service", "crm"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    seeds = sorted(path.name for path in out.glob("*.nk"))
    assert seeds == ["billing.nk", "crm.nk", "gateway.nk", "worker.nk"]
    assert all((out / name).stat().st_mode & 0o777 == 0o600 for name in seeds)
    env = dict(line.split("=", 1) for line in (out / "agentbus.env").read_text().splitlines())
    assert env["AGENTBUS_GATEWAY_KEYS"] == Credential(out / "gateway.nk").public_key
    named = {name: Credential(out / f"{name}.nk").public_key for name in ("billing", "crm")}
    assert env["AGENTBUS_SERVICE_KEYS"] == ",".join(f"{name}={key}" for name, key in named.items())
    include = (out / "nats-auth.conf").read_text()
    assert include.count('"nkey"') == 4
    assert not any((out / name).read_text().strip() in include for name in seeds)  # public keys only
    conf = tmp_path / "nats.conf"
    conf.write_text((DEPLOY / "nats.conf").read_text())
    check = [nats_server_binary(), "-t", "-c", str(conf), "--name", "nats-1"]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    assert "deny" in (DEPLOY / "credentials" / "nats-auth.conf").read_text()  # the placeholder lets no one in
    for bad in ("../escape", "worker"):
        refused = subprocess.run([agentbus, "credentials", str(out), "--service", bad], capture_output=True, timeout=60)
        assert refused.returncode != 0 and not (tmp_path / "escape.nk").exists(), bad
