"""deploy/kubernetes and deploy/systemd/cluster as a user meets them: every manifest parses, the single instance
stays one replica recreated, the cluster runs several instances whose probes ask routes the daemon serves, whose
journal URL comes from a Secret, whose disruption budget and network policy cover exactly its pods, and every
configuration shipped passes `marginguard check-config` with the environment its manifest gives it."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from daemon.app.http import Metrics, build_app
from daemon.app.settings import SettingsError, settings_from_document
from tests.unit.settings_samples import REPO, check_config

KUBERNETES = REPO / "deploy" / "kubernetes"
CLUSTER = KUBERNETES / "cluster"
SYSTEMD_CLUSTER = REPO / "deploy" / "systemd" / "cluster"
JOURNAL_URL_VARIABLE = "MARGINGUARD_DAEMON__JOURNAL_URL"
INSTANCE_NAME_VARIABLE = "MARGINGUARD_CLUSTER__INSTANCE_NAME"
# What the downward API gives a pod of the Deployment as metadata.name.
POD_NAME = "marginguard-5d8f7c9b6-x2k4q"
# The image's environment (deploy/Dockerfile's ENV), which a container's own env may override.
IMAGE_ENV = dict(
    re.findall(r"\b(STATE_DIRECTORY)=(\S+)", (REPO / "deploy" / "Dockerfile").read_text(encoding="utf-8"))
)

Manifest = dict[str, Any]


def manifests(under: Path = KUBERNETES, pattern: str = "**/*.y*ml") -> list[tuple[Path, Manifest]]:
    """Every YAML document under `under` (kustomization files included), with the file it came from."""
    found = []
    for path in sorted(under.glob(pattern)):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                found.append((path, document))
    return found


def in_directory(directory: Path) -> list[Manifest]:
    """The documents of the files in `directory` itself: what one `kubectl apply -f` of it applies."""
    return [document for _path, document in manifests(directory, "*.y*ml")]


def objects(kind: str, under: Path = KUBERNETES) -> list[Manifest]:
    return [document for _path, document in manifests(under) if document["kind"] == kind]


def only(kind: str, under: Path) -> Manifest:
    [found] = objects(kind, under)
    return found


def selects(selector: Manifest, labels: Manifest) -> bool:
    """Whether a label selector (matchLabels only: the manifests use no matchExpressions) picks `labels`."""
    assert set(selector) <= {"matchLabels"}, selector
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def containers(deployment: Manifest) -> list[Manifest]:
    spec: list[Manifest] = deployment["spec"]["template"]["spec"]["containers"]
    return spec


def served_routes() -> set[str]:
    """The paths the daemon serves whatever it was given (probes must not depend on the optional ones)."""
    app = build_app(Metrics(), lambda: (True, {}))
    return {resource.canonical for resource in app.router.resources()}


def config_maps(directory: Path) -> Iterator[tuple[Manifest, Manifest, str]]:
    """(Deployment, ConfigMap, key) for each Deployment of `directory` (not below it): what its container runs
    with, found as the kubelet finds it (--config, the volume mounted there, the ConfigMap of that volume)."""
    for deployment in in_directory(directory):
        if deployment["kind"] != "Deployment":
            continue
        [container] = containers(deployment)
        argv = [*container.get("command", []), *container.get("args", [])]
        config = PurePosixPath(argv[argv.index("--config") + 1])
        mount = next(m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent)
        volume = next(
            v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
        )
        siblings = [doc for doc in in_directory(directory) if doc["kind"] == "ConfigMap"]
        config_map = next(c for c in siblings if c["metadata"]["name"] == volume["configMap"]["name"])
        yield deployment, config_map, config.name


def toml_of(config_map: Manifest, key: str = "marginguard.toml") -> dict[str, Any]:
    return tomllib.loads(config_map["data"][key])


def secret_values(directory: Path) -> dict[tuple[str, str], str]:
    """(Secret, key) -> the value the Secret shipped in `directory` holds (a placeholder of the right form)."""
    return {
        (secret["metadata"]["name"], key): value
        for secret in in_directory(directory)
        if secret["kind"] == "Secret"
        for key, value in secret.get("stringData", {}).items()
    }


def cluster_deployment() -> Manifest:
    return only("Deployment", CLUSTER)


def pod_labels(deployment: Manifest) -> Manifest:
    labels: Manifest = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


# ---- every manifest parses and is applied ----


def test_every_manifest_parses_names_its_kind_and_the_kustomization_lists_them_all() -> None:
    found = manifests()
    assert {KUBERNETES, CLUSTER} <= {path.parent for path, _ in found}
    for path, document in found:
        assert document.get("apiVersion") and document.get("kind"), path
        if document["kind"] != "Kustomization":
            assert document["metadata"]["name"], path
    # A manifest left out of the kustomization would silently never be applied.
    kustomization = only("Kustomization", CLUSTER)
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in CLUSTER.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_single_instance_stays_one_replica_recreated_on_its_volume() -> None:
    [deployment] = [d for d in in_directory(KUBERNETES) if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert any("persistentVolumeClaim" in v for v in volumes)  # its SQLite journal outlives the pod


# ---- the cluster's Deployment ----


def test_the_cluster_runs_several_instances_rolled_one_at_a_time_on_different_nodes() -> None:
    deployment = cluster_deployment()
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert selects(spec["selector"], pod_labels(deployment))
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] <= 1
    [preferred] = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["labelSelector"], pod_labels(deployment))


@pytest.mark.parametrize("under", [KUBERNETES, CLUSTER], ids=["single", "cluster"])
def test_probes_ask_routes_the_daemon_serves_on_the_port_it_binds(under: Path) -> None:
    routes = served_routes()
    assert list(config_maps(under))
    for deployment, config_map, key in config_maps(under):
        [container] = containers(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        bind_port = int(toml_of(config_map, key)["daemon"]["http_bind"].rpartition(":")[2])
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        probes = [
            container[name]
            for name in ("startupProbe", "livenessProbe", "readinessProbe")
            if name in container
        ]
        for probe in probes:
            assert probe["httpGet"]["path"] in routes, probe
            port = probe["httpGet"]["port"]
            assert ports.get(port, port) == bind_port, probe


def test_the_journal_url_comes_from_a_secret_and_the_instance_name_from_the_pod() -> None:
    deployment = cluster_deployment()
    [container] = containers(deployment)
    env = {entry["name"]: entry for entry in container["env"]}
    journal = env[JOURNAL_URL_VARIABLE]
    assert "value" not in journal
    reference = journal["valueFrom"]["secretKeyRef"]
    assert (reference["name"], reference["key"]) in secret_values(CLUSTER)
    assert env[INSTANCE_NAME_VARIABLE]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Never a literal: neither in the configuration nor anywhere in the pod's own environment.
    for _deployment, config_map, key in config_maps(CLUSTER):
        assert "journal_url" not in toml_of(config_map, key)["daemon"]
    for entry in container["env"]:
        assert "postgres" not in str(entry.get("value", "")), entry


def test_a_handover_on_sigterm_fits_in_the_grace_period() -> None:
    for deployment, config_map, key in [*config_maps(KUBERNETES), *config_maps(CLUSTER)]:
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        shutdown = toml_of(config_map, key)["daemon"].get("shutdown_timeout_s", 10.0)
        # The accounts stop within shutdown_timeout_s; the leases' release and the outbox's last flush need more.
        assert grace >= shutdown + 10, deployment["metadata"]["name"]


def test_cluster_pods_are_unprivileged_and_write_only_to_volumes_of_their_own() -> None:
    deployment = cluster_deployment()
    pod = deployment["spec"]["template"]["spec"]
    [container] = containers(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Replicas share nothing but PostgreSQL: one claim mounted by every replica would be a shared SQLite file.
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    state = {e["name"]: e.get("value") for e in container["env"]}.get("STATE_DIRECTORY")
    assert (state or IMAGE_ENV["STATE_DIRECTORY"]) in writable  # the lock file of `marginguard run`


# ---- what surrounds the cluster's pods ----


def test_the_disruption_budget_and_the_service_select_the_cluster_pods() -> None:
    labels = pod_labels(cluster_deployment())
    budget = only("PodDisruptionBudget", CLUSTER)["spec"]
    assert selects(budget["selector"], labels)
    replicas = cluster_deployment()["spec"]["replicas"]
    # A drain takes one instance at a time and leaves at least two.
    assert budget.get("maxUnavailable") == 1 or 2 <= budget.get("minAvailable", 0) < replicas
    service = only("Service", CLUSTER)["spec"]
    assert service.get("type", "ClusterIP") == "ClusterIP"
    assert selects({"matchLabels": service["selector"]}, labels)
    [container] = containers(cluster_deployment())
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [named.get(p["targetPort"], p["targetPort"]) for p in service["ports"]] == [9108]


def test_the_network_policy_admits_only_this_namespace_on_9108_and_lets_out_dns_postgresql_https() -> None:
    policy = only("NetworkPolicy", CLUSTER)["spec"]
    assert selects(policy["podSelector"], pod_labels(cluster_deployment()))
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["ingress"], "no ingress rule: the probes pass but nothing in the namespace reaches /metrics"
    for rule in policy["ingress"]:
        # Every source is "any pod of this namespace": no namespaceSelector, no ipBlock, no missing `from`.
        assert rule["from"] and all(peer == {"podSelector": {}} for peer in rule["from"]), rule
        assert rule["ports"] == [{"protocol": "TCP", "port": 9108}], rule
    allowed = {
        (port.get("protocol", "TCP"), port["port"]) for rule in policy["egress"] for port in rule["ports"]
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 443)} <= allowed


# ---- every configuration shipped passes check-config with the environment it is given ----


def in_pod(text: str, mounts: list[str], root: Path) -> str:
    """`text` with the pod's mount paths moved under `root`: the pod's volumes exist; on this machine, there.
    One pass, longest mount first, so a path already moved (under a root in /tmp) is never moved again."""
    alternatives = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w/])(?:{alternatives})(?=/|\"|$)", flags=re.M)
    return pattern.sub(lambda match: f"{root}{match.group(0)}", text)


def pod_environment(deployment: Manifest, under: Path, mounts: list[str], root: Path) -> dict[str, str]:
    """The environment the container starts with: the image's, its env (Secret values as shipped, the pod's
    name from the downward API) and every key of the Secrets it takes whole."""
    [container] = containers(deployment)
    secrets = secret_values(under)
    env = dict(IMAGE_ENV)
    for source in container.get("envFrom", []):
        name = source["secretRef"]["name"]
        env |= {key: value for (secret, key), value in secrets.items() if secret == name}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            reference = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(reference["name"], reference["key"])]
        else:
            assert entry["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", entry
            env[entry["name"]] = POD_NAME
    return {name: in_pod(value, mounts, root) for name, value in env.items()}


def kubernetes_cases() -> list[Any]:
    return [
        pytest.param(deployment, config_map, key, under, id=under.relative_to(REPO).as_posix())
        for under in (KUBERNETES, CLUSTER)
        for deployment, config_map, key in config_maps(under)
    ]


@pytest.mark.parametrize(("deployment", "config_map", "key", "under"), kubernetes_cases())
def test_each_config_map_passes_check_config_in_its_pod(
    deployment: Manifest, config_map: Manifest, key: str, under: Path, tmp_path: Path
) -> None:
    [container] = containers(deployment)
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for mount in mounts:
        (tmp_path / mount.lstrip("/")).mkdir(parents=True, exist_ok=True)
    argv = [*container.get("command", []), *container.get("args", [])]
    config = tmp_path / argv[argv.index("--config") + 1].lstrip("/")
    config.write_text(in_pod(config_map["data"][key], mounts, tmp_path), encoding="utf-8")

    result = check_config(config, env=pod_environment(deployment, under, mounts, tmp_path))

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    effective = tomllib.loads(result.stdout)
    if under == CLUSTER:
        assert effective["cluster"]["enabled"] is True
        assert effective["cluster"]["instance_name"] == POD_NAME
        assert effective["daemon"]["journal_url"] == "***"
    else:
        assert effective["cluster"]["enabled"] is False
        assert "journal_url" not in effective["daemon"]


def systemd_environment() -> dict[str, str]:
    """What the drop-in gives the service on host-a: its Environment= lines (%H: the host name) and the
    variables of the cluster environment file it loads."""
    env: dict[str, str] = {}
    drop_in = (SYSTEMD_CLUSTER / "marginguard.service.d" / "cluster.conf").read_text(encoding="utf-8")
    for line in drop_in.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value.replace("%H", "host-a")
    assert "EnvironmentFile=/etc/marginguard/cluster.env" in drop_in.splitlines()
    for line in (SYSTEMD_CLUSTER / "marginguard-cluster.env").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def test_the_two_host_systemd_example_passes_check_config(tmp_path: Path) -> None:
    config = SYSTEMD_CLUSTER / "marginguard.toml"
    document = tomllib.loads(config.read_text(encoding="utf-8"))
    # The API keys and webhook URLs come from secrets.env, which each host keeps to itself: dummies here.
    referenced = {
        value
        for table in [*document.get("accounts", []), *document.get("sinks", [])]
        for key, value in table.items()
        if key.endswith("_env")
    }
    env = {name: "https://hooks.example.com/dummy" for name in referenced}
    env |= systemd_environment() | {"STATE_DIRECTORY": str(tmp_path)}

    result = check_config(config, env=env)

    assert result.returncode == 0, result.stderr
    effective = tomllib.loads(result.stdout)
    assert effective["cluster"]["enabled"] is True
    assert effective["cluster"]["instance_name"] == "host-a"
    assert effective["daemon"]["journal_url"] == "***"


# ---- the advice the manifests and the README give about signed windows holds ----


@pytest.mark.parametrize(("exchange", "enough"), [("okx", 35.0), ("gate", 65.0)])
def test_top_ups_on_a_long_signed_window_need_the_lease_the_comments_name(
    exchange: str, enough: float, tmp_path: Path
) -> None:
    document = toml_of(only("ConfigMap", CLUSTER))
    document["daemon"]["journal_url"] = "postgresql://marginguard:pw@db:5432/marginguard"
    document["accounts"] = [
        {"id": "venue", "exchange": exchange, "mode": "demo", "api_key": "k", "secret": "s", "password": "p"}
    ]
    document["sinks"] = []
    document["topup"] = {"enabled": True, "max_per_action": 100, "max_per_account_per_day": 500}

    def with_lease(ttl: float) -> dict[str, Any]:
        return {**document, "cluster": {**document["cluster"], "lease_ttl_s": ttl}}

    settings_from_document(with_lease(enough), env={}, base_dir=tmp_path)
    with pytest.raises(SettingsError, match=r"accounts\[0\]\.topup"):
        settings_from_document(with_lease(enough - 1), env={}, base_dir=tmp_path)
