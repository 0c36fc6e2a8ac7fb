"""deploy/: the Dockerfile, the compose trial and the Kubernetes manifests, checked offline.

Every YAML file is parsed with PyYAML; every Kubernetes object is validated against the Kubernetes
OpenAPI schemas bundled with `kubernetes-validate` (strict: unknown fields are errors). On top of the
schemas: the rules the gateway needs (gRPC probes on the served port, non-root, requests and limits,
PDB/HPA/Service/NetworkPolicy select the Deployment's pods, no allow-all ingress, placeholder-only
Secrets, secrets only as mounted files, known HALLGATE_* names, every production setting the docs
require), the audit jobs (their own service account, Pod Security "restricted", one run at a time),
and the commands in the Dockerfile, compose, the Deployment and the jobs parse with the real
`hallgate` CLI parser.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import kubernetes_validate as kv
import pytest
import yaml

from gateway.cli.main import build_parser
from gateway.runtime import billing_link
from gateway.runtime.settings import SECRETS, Settings, env_name, file_env_name, from_env
from gateway.transport.tls_files import read_ca, read_pair
from hallgate_pb.v1 import kiosk_pb2
from tests.support.manifests import (
    DEPLOY,
    DOCKERFILE,
    EDGE,
    K8S,
    K8S_VERSIONS,
    NAMESPACE,
    ROOT,
    dockerfile_instructions,
    selects,
)

COMPOSE = DEPLOY / "compose.yaml"
DEV_SECRETS = DEPLOY / "dev-secrets.sh"

GRPC_PORT = 50051
HEALTH_PORT = 50052  # HALLGATE_HEALTH_LISTEN: plaintext grpc.health.v1 only, for kubelet and Docker probes
METRICS_PORT = 9464
RUNTIME_BASE = "python:3.11-slim"
PROXY_PORT = 50053  # HALLGATE_PROXY_LISTEN: the edge's PROXY-protocol connections (deploy/k8s/edge/)
BROWSER_PROXY_PORT = 50054  # HALLGATE_BROWSER_PROXY_LISTEN: likewise, for the browser listener
POSTGRES_PORT = 5432
KIOSK_SERVICE = kiosk_pb2.DESCRIPTOR.services_by_name["KioskService"].full_name
READY_SERVICE = "hallgate.ready"  # the pod-level health name: Redis reachable and the deny-list loaded
EDGE_NAMESPACE = "hallgate-edge"
JOBS_ACCOUNT = "hallgate-jobs"
ADMITTED_NETWORKS = {"hall", "legal", "audit"}
NETWORK_LABEL = "hallgate/network"
PLACEHOLDER = re.compile(r"^REPLACE_ME\b")
BILLING_TLS = ("HALLGATE_BILLING_TLS_CA", "HALLGATE_BILLING_TLS_CERT", "HALLGATE_BILLING_TLS_KEY")
BILLING_TLS_SECRET = "hallgate-billing-tls"

# Every Settings field, and the _FILE form of every secret one.
KNOWN_SETTINGS = frozenset({env_name(f.name) for f in fields(Settings)} | {file_env_name(n) for n in SECRETS})


# ---------------------------------------------------------------------------------------------------
# Loading


def deploy_files() -> Iterator[Path]:
    """Every file in deploy/ that is part of the project (not the git-ignored development secrets)."""
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and ".dev-secrets" not in path.relative_to(DEPLOY).parts:
            yield path


@functools.cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(K8S.rglob("*.yaml")):
        if EDGE in path.parents:
            continue  # the edge: its own namespace and kustomization (tests/deploy/test_edge.py)
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((str(path.relative_to(DEPLOY)), doc))
    return tuple(docs)


def k8s_objects() -> list[dict[str, Any]]:
    return [doc for _, doc in k8s_documents() if doc.get("kind") != "Kustomization"]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] == kind]


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def deployment() -> dict[str, Any]:
    return the("Deployment", "hallgate")


def pod_spec() -> dict[str, Any]:
    return deployment()["spec"]["template"]["spec"]


def pod_labels() -> dict[str, str]:
    return deployment()["spec"]["template"]["metadata"]["labels"]


def all_containers() -> list[dict[str, Any]]:
    spec = pod_spec()
    return [*spec.get("initContainers", []), *spec["containers"]]


def gateway_container() -> dict[str, Any]:
    (container,) = [c for c in pod_spec()["containers"] if c["name"] == "gateway"]
    return container


def pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment or a CronJob."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


JOB_COMPONENTS = {"audit-job", "siem-shipper"}


def workloads() -> list[dict[str, Any]]:
    """Everything that runs pods in the gateway's namespace: the gateway, the SIEM shipper and the
    audit CronJobs (the edge in deploy/k8s/edge/ lives in its own namespace)."""
    return [o for o in k8s_objects() if o["kind"] in {"Deployment", "CronJob"}
            and o["metadata"].get("namespace") == NAMESPACE]


def jobs() -> list[dict[str, Any]]:
    """The audit jobs and the SIEM shipper."""
    found = [o for o in workloads() if pod_template(o)["metadata"]["labels"].get("app.kubernetes.io/component")
             in JOB_COMPONENTS]
    assert {o["metadata"]["name"] for o in workloads()} - {o["metadata"]["name"] for o in found} == {"hallgate"}
    return found


def label(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def containers_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def configmap() -> dict[str, str]:
    return the("ConfigMap", "hallgate-config")["data"]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """The HALLGATE_* environment a container sees: its ConfigMaps, then its own `env` (which wins)."""
    configmaps = {c["metadata"]["name"]: c["data"] for c in of_kind("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
    for e in container.get("env", []):
        env[e["name"]] = e.get("value", "<from elsewhere>")
    return env


def mounted_files(spec: dict[str, Any], container: dict[str, Any]) -> set[str]:
    """The paths of the Secret files a container has mounted."""
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    files: set[str] = set()
    for volume in spec.get("volumes", []):
        if volume["name"] not in mounts:
            continue
        sources = volume.get("projected", {}).get("sources", [])
        items = [i for src in sources for i in src.get("secret", {}).get("items", [])]
        items += volume.get("secret", {}).get("items", [])
        files |= {f"{mounts[volume['name']]}/{i['path']}" for i in items}
    return files


def volume_secrets(volume: dict[str, Any]) -> list[dict[str, Any]]:
    """The Secrets a volume projects, each {"name", "items"}: a `secret` volume or a projected one."""
    sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
    if "secret" in volume:
        sources.append({"name": volume["secret"]["secretName"], **volume["secret"]})
    return sources


def billing_settings(env: dict[str, str]) -> Settings:
    """Settings from the HALLGATE_BILLING_* part of an environment (the rest may name secret files
    this machine does not have)."""
    return from_env({k: v for k, v in env.items() if k.startswith("HALLGATE_BILLING_")})


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_gateways() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose()["services"].items()
            if "HALLGATE_LISTEN" in (svc.get("environment") or {})}


# ---------------------------------------------------------------------------------------------------
# The Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM this instruction belongs to (-1: before the first FROM)


@functools.cache
def dockerfile() -> tuple[Instruction, ...]:
    """Instructions with line continuations joined and comments dropped, as Docker reads them."""
    out: list[Instruction] = []
    stage = -1
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args, stage))
    return tuple(out)


def final_stage() -> list[Instruction]:
    last = max(i.stage for i in dockerfile())
    return [i for i in dockerfile() if i.stage == last]


def one(keyword: str, stage: list[Instruction] | None = None) -> Instruction:
    found = [i for i in (stage if stage is not None else dockerfile()) if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage of deploy/Dockerfile, found {len(found)}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD (shell form is refused)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), f"not an exec-form array: {args}"
    return value


def healthcheck_command() -> list[str]:
    hc = one("HEALTHCHECK", final_stage())
    m = re.fullmatch(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])", hc.args)
    assert m, f"HEALTHCHECK must be `[--options] CMD [exec form]`: {hc.args}"
    return exec_form(m[2])


def entrypoint_and_cmd() -> tuple[list[str], list[str]]:
    stage = final_stage()
    return exec_form(one("ENTRYPOINT", stage).args), exec_form(one("CMD", stage).args)


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in final_stage():
        if ins.keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", ins.args):
                env[key] = value
    return env


# ---------------------------------------------------------------------------------------------------
# The CLI


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """`hallgate ARGV` through the real parser; a parse error fails the test instead of exiting."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`hallgate {' '.join(argv)}` does not parse with gateway.cli.build_parser() (exit {exc.code})")


def hallgate_argv(command: list[str]) -> list[str]:
    """The arguments after `hallgate` in a full command (`hallgate serve` -> ["serve"])."""
    assert command[:1] == ["hallgate"], f"not a hallgate command: {command}"
    return command[1:]


# ---------------------------------------------------------------------------------------------------
# Parsing and schema validation


def test_every_yaml_file_in_deploy_parses() -> None:
    files = [p for p in deploy_files() if p.suffix in {".yaml", ".yml"}]
    assert COMPOSE in files
    assert len([p for p in files if K8S in p.parents]) >= 9
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} holds no YAML document"
        assert all(isinstance(d, dict) for d in docs), f"{path}: every document must be a mapping"


def test_every_k8s_object_has_api_version_kind_and_name() -> None:
    for path, doc in k8s_documents():
        assert {"apiVersion", "kind"} <= doc.keys(), path
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_objects_validate_against_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for path, doc in k8s_documents():
        if doc["kind"] == "Kustomization":
            continue
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            pytest.fail(f"{path}: {doc['kind']}/{doc['metadata']['name']} at {where}: {err.message}")
        except kv.SchemaNotFoundError as err:
            pytest.fail(f"{path}: {err.message}")
        checked.append(doc["kind"])
    assert {"Namespace", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler",
            "NetworkPolicy", "Secret", "ConfigMap", "ServiceAccount", "CronJob"} <= set(checked)


def test_the_validator_rejects_what_it_should() -> None:
    """Guard against a validator that accepts anything (a schema that failed to load, say)."""
    import copy

    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSIONS[0], strict=True)


def test_namespaced_objects_live_in_the_hallgate_namespace() -> None:
    """Everything but the edge (deploy/k8s/edge/, its own namespace: k8s_documents leaves it out)."""
    assert the("Namespace", NAMESPACE)
    for path, obj in k8s_documents():
        if obj["kind"] not in {"Namespace", "Kustomization"}:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{path}: {obj['kind']}/{obj['metadata']['name']}"


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    assert the("Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kustomization_lists_every_manifest_but_no_secret_template() -> None:
    (kustomization,) = [doc for path, doc in k8s_documents() if path == "k8s/kustomization.yaml"]
    manifests = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert kustomization["resources"] == manifests
    assert not any("secret" in r for r in kustomization["resources"])
    assert {i["name"] for i in kustomization["images"]} == {gateway_container()["image"].split(":")[0]}


# ---------------------------------------------------------------------------------------------------
# The Deployment


def test_the_autoscaler_owns_the_replica_count_of_at_least_two_spread_over_nodes() -> None:
    """No `replicas` in the Deployment: every apply would reset what the HPA chose."""
    spec = deployment()["spec"]
    assert "replicas" not in spec, "the HorizontalPodAutoscaler owns the replica count"
    assert the("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert selects(spec["selector"], pod_labels())
    spread = pod_spec().get("topologySpreadConstraints", [])
    hostname = [c for c in spread if c["topologyKey"] == "kubernetes.io/hostname"]
    anti = pod_spec().get("affinity", {}).get("podAntiAffinity")
    assert hostname or anti, "replicas must be spread over nodes (topology spread or anti-affinity)"
    for c in spread:
        assert selects(c["labelSelector"], pod_labels())


def test_probes_are_grpc_on_the_served_health_port() -> None:
    """The kubelet cannot present a client certificate, so the probes use the plaintext health
    listener, which shares the gateway's health state."""
    container = gateway_container()
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["grpc"] == GRPC_PORT and named["health"] == HEALTH_PORT
    config = the("ConfigMap", "hallgate-config")["data"]
    assert config["HALLGATE_LISTEN"] == f"0.0.0.0:{GRPC_PORT}"
    assert config["HALLGATE_HEALTH_LISTEN"] == f"0.0.0.0:{HEALTH_PORT}"
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container.get(kind)
        if kind == "startupProbe" and probe is None:
            continue
        assert probe is not None, f"the gateway container has no {kind}"
        assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, f"{kind} must be a native gRPC probe"
        assert probe["grpc"]["port"] == HEALTH_PORT, f"{kind} must probe the health port {HEALTH_PORT}"
    # Readiness asks for the pod-level status (Redis reachable, deny-list loaded), not a service that
    # also follows billing; liveness for the process itself ("" or no service).
    assert container["readinessProbe"]["grpc"]["service"] == READY_SERVICE != KIOSK_SERVICE
    assert container["livenessProbe"]["grpc"].get("service", "") == ""


def test_metrics_port_is_declared_and_matches_the_setting() -> None:
    named = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
    assert named["metrics"] == METRICS_PORT
    assert the("ConfigMap", "hallgate-config")["data"]["HALLGATE_METRICS_LISTEN"].endswith(f":{METRICS_PORT}")


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def test_every_workload_runs_as_non_root_with_a_read_only_root_and_meets_pod_security_restricted() -> None:
    """The gateway, the shipper and every CronJob: Pod Security "restricted" (which the namespace
    enforces, so a violation would only show at apply time) plus a read-only root and no token."""
    for obj in workloads():
        spec = pod_template(obj)["spec"]
        pod = spec["securityContext"]
        where = label(obj)
        assert pod["runAsNonRoot"] is True, where
        assert pod.get("runAsUser", 1) != 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        assert not {"hostNetwork", "hostPID", "hostIPC", "hostUsers"} & {k for k, v in spec.items() if v}, where
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']}"
        for c in containers_of(spec):
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", pod["runAsNonRoot"]) is True, (where, c["name"])
            assert sc.get("runAsUser", pod.get("runAsUser", 1)) != 0, (where, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert sc.get("privileged", False) is False, (where, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
            assert not sc["capabilities"].get("add"), (where, c["name"])
            assert not any("hostPort" in port for port in c.get("ports", [])), (where, c["name"])


def test_pod_user_is_the_image_user() -> None:
    user = one("USER", final_stage()).args.split(":")
    assert str(pod_spec()["securityContext"]["runAsUser"]) == user[0]
    if len(user) > 1:
        assert str(pod_spec()["securityContext"]["runAsGroup"]) == user[1]


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity as a number (enough of the grammar for these manifests)."""
    units = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value))
    assert m and (not m[2] or m[2] in units), f"unexpected quantity {value!r}"
    return float(m[1]) * units.get(m[2], 1)


def test_every_container_has_requests_and_limits() -> None:
    for c in [c for obj in workloads() for c in containers_of(pod_template(obj)["spec"])]:
        res = c.get("resources", {})
        for resource in ("cpu", "memory"):
            request, limit = res.get("requests", {}).get(resource), res.get("limits", {}).get(resource)
            assert request is not None and limit is not None, f"{c['name']}: {resource} request and limit"
            assert quantity(request) <= quantity(limit), f"{c['name']}: {resource} request above its limit"


def test_writable_paths_are_volumes() -> None:
    """With a read-only root, the data directory and /tmp must be mounted."""
    mounts = {m["mountPath"] for m in gateway_container()["volumeMounts"]}
    data_dir = the("ConfigMap", "hallgate-config")["data"]["HALLGATE_DATA_DIR"]
    assert {data_dir, "/tmp"} <= mounts
    assert dockerfile_env()["HALLGATE_DATA_DIR"] == data_dir


def test_secret_key_and_audit_key_are_shared_by_all_replicas_as_mounted_files() -> None:
    """Each replica generating its own server secret would make codes fail on the other replicas. The
    keys and the URLs with passwords reach the gateway as files from Secrets (HALLGATE_*_FILE), never
    as environment values."""
    env = container_env(gateway_container())
    files = mounted_files(pod_spec(), gateway_container())
    for name in ("secret_key", "audit_hmac_key", "redis_url", "audit_archive_url", "legal_document_url",
                 "staff_secret_key"):
        assert env.get(file_env_name(name)) in files, f"{file_env_name(name)} must name a mounted Secret file"
        assert env_name(name) not in env, f"{env_name(name)}: a secret as a value"
    for c in all_containers():
        for e in c.get("env", []):
            assert "secretKeyRef" not in e.get("valueFrom", {}), f"{e['name']}: a Secret in the environment"
        assert not any("secretRef" in source for source in c.get("envFrom", [])), c["name"]


def test_no_secret_is_ever_an_environment_value() -> None:
    """In no workload, neither as a ConfigMap value nor from a Secret."""
    secret_vars = {env_name(n) for n in SECRETS}
    assert not secret_vars & set(configmap()), "secrets do not belong in a ConfigMap"
    for obj in workloads():
        for c in containers_of(pod_template(obj)["spec"]):
            assert not secret_vars & set(container_env(c)), (label(obj), c["name"])
            for e in c.get("env", []):
                assert "secretKeyRef" not in e.get("valueFrom", {}), (label(obj), e["name"])
            assert not any("secretRef" in source for source in c.get("envFrom", [])), (label(obj), c["name"])


def secret_keys() -> dict[str, set[str]]:
    return {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in of_kind("Secret")}


def test_every_secret_and_config_reference_resolves() -> None:
    secrets, configmaps = secret_keys(), {c["metadata"]["name"] for c in of_kind("ConfigMap")}
    for obj in workloads():
        spec = pod_template(obj)["spec"]
        for c in containers_of(spec):
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, label(obj)
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, label(obj)
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), \
                        f"{label(obj)} {e['name']}: no key {ref['key']} in {ref['name']}"
        for volume in spec.get("volumes", []):
            for s in volume_secrets(volume):
                for item in s.get("items", []):
                    where = f"{label(obj)} volume {volume['name']}: {s['name']}/{item['key']}"
                    assert item["key"] in secrets.get(s["name"], set()), where


def test_file_settings_point_into_mounted_secret_volumes() -> None:
    """HALLGATE_TLS_* and the signing key name files that the Deployment actually mounts."""
    files: set[str] = set()
    mounts = {m["name"]: m["mountPath"] for m in gateway_container()["volumeMounts"]}
    for volume in pod_spec()["volumes"]:
        sources = volume.get("projected", {}).get("sources", [])
        items = [i for s in sources for i in s.get("secret", {}).get("items", [])]
        items += volume.get("secret", {}).get("items", [])
        files |= {f"{mounts[volume['name']]}/{i['path']}" for i in items}
    config = the("ConfigMap", "hallgate-config")["data"]
    for name in ("HALLGATE_TLS_CERT", "HALLGATE_TLS_KEY", "HALLGATE_TLS_CLIENT_CA", "HALLGATE_LEGAL_SIGNING_KEY"):
        assert config[name] in files, f"{name}={config[name]} is not a mounted file"


def test_every_secret_file_a_container_is_told_about_is_mounted_in_its_pod() -> None:
    """A HALLGATE_*_FILE naming a file the pod does not have stops the process at start ("cannot
    read"): every non-empty one a container sees (ConfigMap and env) is mounted. A job blanks the
    secrets it does not need instead of mounting them."""
    file_vars = {file_env_name(n) for n in SECRETS}
    for obj in workloads():
        spec = pod_template(obj)["spec"]
        for c in containers_of(spec):
            files = mounted_files(spec, c)
            for name, value in container_env(c).items():
                if name in file_vars and value:
                    assert value in files, f"{label(obj)}: {name}={value} is not mounted"


def test_billing_tls_files_are_mounted_read_only_from_their_secret() -> None:
    """HALLGATE_BILLING_TLS_* name files under one read-only mount of a volume fed by the Secret
    hallgate-billing-tls alone (mode 0440), each an item that Secret provides."""
    config, spec = configmap(), pod_spec()
    mounts = {m["name"]: m for m in gateway_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    keys = secret_keys()[BILLING_TLS_SECRET]
    for name in BILLING_TLS:
        path = config[name]
        found = [m for m in mounts.values() if path.startswith(m["mountPath"].rstrip("/") + "/")]
        assert len(found) == 1, f"{name}={path}: under no volume mount (or several)"
        mount, volume = found[0], volumes[found[0]["name"]]
        assert mount.get("readOnly") is True, f"{name}: volume {mount['name']} is writable"
        [source] = volume_secrets(volume)
        assert source["name"] == BILLING_TLS_SECRET, f"{name}: volume {mount['name']} is not {BILLING_TLS_SECRET}"
        assert volume.get("secret", volume.get("projected", {})).get("defaultMode") == 0o440, mount["name"]
        items = {f"{mount['mountPath'].rstrip('/')}/{i['path']}": i["key"] for i in source["items"]}
        assert path in items, f"{name}={path}: no item of {BILLING_TLS_SECRET} there"
        assert items[path] in keys, f"{name}: {BILLING_TLS_SECRET} has no key {items[path]}"
    assert len({config[n] for n in BILLING_TLS}) == len(BILLING_TLS), "three different files"


def test_configmap_billing_link_passes_the_gateways_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hallgate serve` refuses a plaintext link to a billing on another host (billing_link.check, at
    start). The ConfigMap's billing is another host, so its link is TLS, mutual, and not declared
    plaintext. The files are the pod's: reading them is left out here (the compose test reads real ones)."""
    s = billing_settings(configmap())
    assert not billing_link.on_this_host(s.billing_target), s.billing_target
    assert s.billing_tls_ca and not s.billing_plaintext, "TLS to a billing on another host"
    assert s.billing_tls_cert and s.billing_tls_key, "mutual TLS: the gateway's client certificate"
    monkeypatch.setattr(billing_link, "credentials", lambda _settings: None)
    billing_link.check(s)


def test_deployment_command_parses_with_the_cli() -> None:
    entrypoint, _ = entrypoint_and_cmd()
    container = gateway_container()
    argv = hallgate_argv(container.get("command", entrypoint) + container.get("args", []))
    assert parse_cli(argv).run.__name__ == "cmd_serve"


def test_graceful_shutdown_fits_in_the_termination_grace_period() -> None:
    config = the("ConfigMap", "hallgate-config")["data"]
    grace = float(config.get("HALLGATE_GRACE_PERIOD", Settings().grace_period))
    pre_stop = gateway_container().get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_seconds = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    assert pod_spec()["terminationGracePeriodSeconds"] > grace + pre_stop_seconds


# ---------------------------------------------------------------------------------------------------
# Service, PodDisruptionBudget, HorizontalPodAutoscaler


def test_service_selects_the_pods_and_exposes_grpc_the_edge_port_and_metrics() -> None:
    svc = the("Service", "hallgate")
    assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels())
    container_ports = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["port"] == GRPC_PORT and ports["metrics"]["port"] == METRICS_PORT
    assert ports["proxy"]["port"] == container_ports["proxy"] == PROXY_PORT
    assert configmap()["HALLGATE_PROXY_LISTEN"] == f"0.0.0.0:{PROXY_PORT}"
    assert ports["browser-proxy"]["port"] == container_ports["browser-proxy"] == BROWSER_PROXY_PORT
    assert configmap()["HALLGATE_BROWSER_PROXY_LISTEN"] == f"0.0.0.0:{BROWSER_PROXY_PORT}"
    assert configmap()["HALLGATE_PROXY_TRUSTED"], "the edge proxies' addresses"
    assert "health" not in ports and HEALTH_PORT not in {p["port"] for p in ports.values()}, \
        "the plaintext health port is for the kubelet only"
    for p in ports.values():
        target = p.get("targetPort", p["port"])
        assert target in container_ports or target in container_ports.values(), f"service port {p['name']}"


def test_pod_disruption_budget_selects_the_pods_and_leaves_one_up() -> None:
    pdb = the("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"], pod_labels())
    hpa_min = the("HorizontalPodAutoscaler")["spec"]["minReplicas"]
    if "maxUnavailable" in pdb["spec"]:
        assert int(pdb["spec"]["maxUnavailable"]) < hpa_min
    else:
        assert 1 <= int(pdb["spec"]["minAvailable"]) < hpa_min


def test_horizontal_pod_autoscaler_scales_the_deployment() -> None:
    hpa = the("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    dep = deployment()
    assert (target["apiVersion"], target["kind"], target["name"]) == (dep["apiVersion"], "Deployment",
                                                                      dep["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert "replicas" not in dep["spec"], "the HPA owns the count"
    # CPU utilisation is measured against requests: every container needs a CPU request (tested above).
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])


# ---------------------------------------------------------------------------------------------------
# NetworkPolicy


def is_allow_all_peer(peer: dict[str, Any]) -> bool:
    if not peer:
        return True
    cidr = peer.get("ipBlock", {}).get("cidr")
    if cidr in {"0.0.0.0/0", "::/0"}:
        return True
    ns, pods = peer.get("namespaceSelector"), peer.get("podSelector")
    # {} as namespaceSelector means every namespace; as the only podSelector, every pod of this namespace.
    return "ipBlock" not in peer and not ns and (ns is not None or not pods)


def test_network_policies_deny_by_default() -> None:
    default = [p for p in of_kind("NetworkPolicy") if p["spec"]["podSelector"] == {}]
    assert default, "a default-deny NetworkPolicy for the namespace"
    for p in default:
        assert set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert not p["spec"].get("ingress") and not p["spec"].get("egress")


def test_no_network_policy_admits_everything() -> None:
    for policy in of_kind("NetworkPolicy"):
        name = policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{name}: an ingress rule without `from` admits every source"
            assert rule.get("ports"), f"{name}: an ingress rule without `ports` admits every port"
            assert not any(is_allow_all_peer(p) for p in rule["from"]), f"{name}: allow-all ingress peer"
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{name}: an egress rule without `to` reaches everything"
            assert rule.get("ports"), f"{name}: an egress rule without `ports` reaches every port"
            assert not any(is_allow_all_peer(p) for p in rule["to"]), f"{name}: allow-all egress peer"


def gateway_policy() -> dict[str, Any]:
    (policy,) = [p for p in of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], pod_labels())]
    return policy


def admitted(rule: dict[str, Any]) -> set[str]:
    """The values of the network label a rule's namespace selectors admit."""
    values: set[str] = set()
    for peer in rule["from"]:
        selector = peer.get("namespaceSelector", {})
        if NETWORK_LABEL in selector.get("matchLabels", {}):
            values.add(selector["matchLabels"][NETWORK_LABEL])
        for e in selector.get("matchExpressions", []):
            if e["key"] == NETWORK_LABEL and e["operator"] == "In":
                values |= set(e["values"])
    return values


def test_gateway_admits_grpc_only_from_hall_legal_and_audit_and_metrics_from_monitoring() -> None:
    policy = gateway_policy()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    by_port: dict[int, set[str]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            assert port.get("protocol", "TCP") == "TCP"
            by_port.setdefault(port["port"], set()).update(admitted(rule))
        assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"]), "admit by namespace label only"
    # Nothing is admitted to the plaintext health port: kubelet probes are not subject to the policy.
    assert by_port == {GRPC_PORT: ADMITTED_NETWORKS, METRICS_PORT: {"monitoring"}, PROXY_PORT: set(),
                       BROWSER_PROXY_PORT: set()}


def test_the_edge_port_admits_only_the_edge_namespace() -> None:
    """Whoever reaches 50053 may name any client address in its PROXY header: only the edge's own
    namespace, by its name (a label Kubernetes sets and nobody can give another namespace)."""
    edge_ports = {PROXY_PORT, BROWSER_PROXY_PORT}
    rules = [r for r in gateway_policy()["spec"]["ingress"] if any(p["port"] in edge_ports for p in r["ports"])]
    assert len(rules) == 1 and [p["port"] for p in rules[0]["ports"]] == [PROXY_PORT, BROWSER_PROXY_PORT]
    assert rules[0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": EDGE_NAMESPACE}}}]


def test_gateway_reaches_only_dns_redis_postgres_billing_and_the_smsc() -> None:
    rules = gateway_policy()["spec"]["egress"]
    ports = {(p.get("protocol", "TCP"), p["port"]) for rule in rules for p in rule["ports"]}
    config = the("ConfigMap", "hallgate-config")["data"]
    billing_port = int(config["HALLGATE_BILLING_TARGET"].rsplit(":", 1)[1])
    smsc_port = int(config["HALLGATE_SMS_URL"].rsplit(":", 1)[1])
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 26379), ("TCP", billing_port),
                     ("TCP", smsc_port), ("TCP", POSTGRES_PORT)}
    # The SMSC is outside the cluster: reached by address, and only on its SMPP port.
    [smsc] = [r for r in rules if any(p["port"] == smsc_port for p in r["ports"])]
    assert [list(t) for t in smsc["to"]] == [["ipBlock"]] and len(smsc["ports"]) == 1


# ---------------------------------------------------------------------------------------------------
# The audit jobs (80-audit-jobs.yaml)

JOB_COMMANDS = {"cmd_archive", "cmd_dispose", "cmd_trim", "cmd_ship", "cmd_run"}  # cmd_run: `retention run`


def job_argv(obj: dict[str, Any]) -> list[str]:
    entrypoint, _ = entrypoint_and_cmd()
    (container,) = pod_template(obj)["spec"]["containers"]
    return hallgate_argv(container.get("command", entrypoint) + container.get("args", []))


def test_every_job_command_parses_with_the_cli() -> None:
    """Retention, the archive mover, disposal and the SIEM shipper, each the real `hallgate audit` command."""
    found = {}
    for obj in jobs():
        args = parse_cli(job_argv(obj))
        found[args.run.__name__] = obj
        assert args.run.__name__ in JOB_COMMANDS, f"{label(obj)}: {job_argv(obj)}"
    assert set(found) == JOB_COMMANDS
    assert found["cmd_ship"]["kind"] == "Deployment", "the shipper follows the chain: a long-running process"
    ship = parse_cli(job_argv(found["cmd_ship"]))
    assert not ship.once and ship.consumer == "siem-shipper", "a fixed consumer name: its pending entries are its own"


def test_jobs_run_one_at_a_time() -> None:
    for obj in jobs():
        if obj["kind"] == "CronJob":
            assert obj["spec"]["concurrencyPolicy"] == "Forbid", label(obj)
            assert obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] in {"Never", "OnFailure"}
        else:
            assert obj["spec"]["replicas"] == 1 and obj["spec"]["strategy"]["type"] == "Recreate", label(obj)


def test_trim_is_suspended_while_an_archive_is_configured() -> None:
    """With an archive the archive job trims Redis after each move; a retention trim besides it could
    drop events the archive has not taken yet."""
    [trim] = [o for o in jobs() if parse_cli(job_argv(o)).run.__name__ == "cmd_trim"]
    archiving = bool(configmap().get("HALLGATE_AUDIT_ARCHIVE_URL_FILE"))
    assert trim["spec"].get("suspend", False) is archiving


def test_jobs_use_their_own_account_without_token_or_rbac() -> None:
    account = the("ServiceAccount", JOBS_ACCOUNT)
    assert account["automountServiceAccountToken"] is False
    for obj in jobs():
        spec = pod_template(obj)["spec"]
        assert spec["serviceAccountName"] == JOBS_ACCOUNT, label(obj)
        assert spec["automountServiceAccountToken"] is False, label(obj)
    # Jobs talk to Redis and PostgreSQL only: no role is bound to anyone.
    assert not [o for o in k8s_objects() if o["kind"] in {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}]
    assert pod_spec()["serviceAccountName"] != JOBS_ACCOUNT


def test_jobs_mount_only_the_secrets_they_need() -> None:
    needs = {"cmd_ship": {"redis-url"}, "cmd_trim": {"redis-url", "audit-hmac-key", "audit-retired-keys"},
             "cmd_archive": {"redis-url", "audit-hmac-key", "audit-retired-keys", "archive-url"},
             "cmd_dispose": {"redis-url", "audit-hmac-key", "audit-retired-keys", "archive-url"},
             "cmd_run": {"redis-url", "audit-hmac-key", "audit-retired-keys", "archive-url", "secret-key",
                         "letters-url"}}
    for obj in jobs():
        spec = pod_template(obj)["spec"]
        (container,) = spec["containers"]
        files = {f.rsplit("/", 1)[1] for f in mounted_files(spec, container)}
        assert files == needs[parse_cli(job_argv(obj)).run.__name__], label(obj)


def jobs_policy() -> dict[str, Any]:
    labels = [pod_template(o)["metadata"]["labels"] for o in jobs()]
    policies = [p for p in of_kind("NetworkPolicy") if p["spec"]["podSelector"]
                and all(selects(p["spec"]["podSelector"], lb) for lb in labels)]
    assert len(policies) == 1, "one NetworkPolicy for the jobs"
    assert not selects(policies[0]["spec"]["podSelector"], pod_labels()), "not the gateway's pods"
    return policies[0]


def test_jobs_admit_nothing_and_reach_only_dns_redis_and_postgres() -> None:
    policy = jobs_policy()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not policy["spec"].get("ingress")
    ports = {(p.get("protocol", "TCP"), p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 26379), ("TCP", POSTGRES_PORT)}


# ---------------------------------------------------------------------------------------------------
# Secrets


def test_secrets_hold_only_placeholders() -> None:
    secrets = of_kind("Secret")
    assert {s["metadata"]["name"] for s in secrets} >= {
        "hallgate-hall-ca", "hallgate-server-tls", "hallgate-signing-key", "hallgate-app-keys", "hallgate-redis",
        "hallgate-smsc", "hallgate-archive", "hallgate-letters", "hallgate-retired-keys"}
    for s in secrets:
        name = s["metadata"]["name"]
        assert "data" not in s, f"{name}: base64 `data` could hide a real key; templates use stringData"
        assert s["stringData"], name
        for key, value in s["stringData"].items():
            assert PLACEHOLDER.match(value), f"{name}/{key} is not a REPLACE_ME placeholder"


def test_no_key_material_anywhere_in_deploy() -> None:
    pem = re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----")
    hexkey = re.compile(r"(?<!sha256:)\b[0-9a-fA-F]{64}\b")  # an image digest is no key
    for path in deploy_files():
        text = path.read_text()
        assert not pem.search(text), f"{path} contains PEM material"
        assert not hexkey.search(text), f"{path} contains what looks like a 256-bit hex key"


def test_secret_templates_live_apart_from_the_applied_manifests() -> None:
    for path, doc in k8s_documents():
        if doc["kind"] == "Secret":
            assert path.startswith("k8s/secrets/"), f"{path}: Secret templates belong in k8s/secrets/"


# ---------------------------------------------------------------------------------------------------
# HALLGATE_* names


def test_every_hallgate_variable_in_deploy_is_a_known_setting() -> None:
    unknown = {}
    for path in deploy_files():
        for name in set(re.findall(r"\bHALLGATE_[A-Z0-9_]+\b", path.read_text())):
            if name not in KNOWN_SETTINGS:
                unknown.setdefault(name, []).append(str(path.relative_to(DEPLOY)))
    assert not unknown, f"HALLGATE_* names that are neither Settings fields nor coming settings: {unknown}"


# Settings production needs, whatever the docs say besides (deploy/README.md's table adds to these).
PRODUCTION_SETTINGS = frozenset({
    "HALLGATE_LISTEN", "HALLGATE_HEALTH_LISTEN", "HALLGATE_METRICS_LISTEN", "HALLGATE_BILLING_TARGET",
    "HALLGATE_BILLING_TLS_CA", "HALLGATE_BILLING_TLS_CERT", "HALLGATE_BILLING_TLS_KEY",
    "HALLGATE_TRUST_DOMAIN", "HALLGATE_TLS_CERT", "HALLGATE_TLS_KEY", "HALLGATE_TLS_CLIENT_CA",
    "HALLGATE_LEGAL_SIGNING_KEY", "HALLGATE_SECRET_KEY_FILE", "HALLGATE_AUDIT_HMAC_KEY_FILE", "HALLGATE_REDIS_URL_FILE",
    "HALLGATE_SMS_URL", "HALLGATE_SMS_SYSTEM_ID", "HALLGATE_SMS_PASSWORD_FILE", "HALLGATE_SMS_SOURCE_ADDR",
    "HALLGATE_AUDIT_REPLICAS", "HALLGATE_AUDIT_DURABILITY", "HALLGATE_AUDIT_ARCHIVE_URL_FILE",
    "HALLGATE_AUDIT_HOT_DAYS", "HALLGATE_AUDIT_RETENTION_MONTHS", "HALLGATE_LEGAL_DOCUMENT_URL_FILE",
    "HALLGATE_STAFF_SECRET_KEY_FILE", "HALLGATE_STAFF_SECRET_RETIRED_KEYS_FILE", "HALLGATE_AUDIT_RETIRED_KEYS_FILE",
    "HALLGATE_MAX_CONNECTION_AGE", "HALLGATE_MAX_CONNECTION_AGE_GRACE", "HALLGATE_TLS_RELOAD",
    "HALLGATE_PROXY_LISTEN", "HALLGATE_PROXY_TRUSTED", "HALLGATE_LOG_FORMAT", "HALLGATE_DATA_DIR",
    "HALLGATE_WORKERS", "HALLGATE_GRACE_PERIOD", "HALLGATE_TIMEZONE",
})
# Settings a production ConfigMap must not set: development switches, and the per-pod letter directory.
NOT_IN_PRODUCTION = frozenset({"HALLGATE_DEV", "HALLGATE_INSECURE_DEV", "HALLGATE_LEGAL_DOCUMENT_DIR"})


def documented_production_settings() -> set[str]:
    """The HALLGATE_* names deploy/README.md's section "Settings required in production" lists, and those
    on any line of docs/scale-out.md or deploy/README.md that calls a setting required in production."""
    readme = (DEPLOY / "README.md").read_text()
    m = re.search(r"^## Settings required in production\n(.*?)(?=^## )", readme, re.S | re.M)
    assert m, 'deploy/README.md has a section "## Settings required in production"'
    names = set(re.findall(r"\bHALLGATE_[A-Z0-9_]+\b", m[1]))
    for text in (readme, (ROOT / "docs" / "scale-out.md").read_text()):
        for line in text.splitlines():
            if re.search(r"required in production", line, re.I):
                names |= set(re.findall(r"\bHALLGATE_[A-Z0-9_]+\b", line))
    return names


def test_configmap_has_every_production_setting() -> None:
    config = configmap()
    documented = documented_production_settings() - NOT_IN_PRODUCTION  # named there as what is not set
    assert PRODUCTION_SETTINGS <= documented, f"undocumented: {sorted(PRODUCTION_SETTINGS - documented)}"
    missing = sorted(n for n in documented | PRODUCTION_SETTINGS if not config.get(n))
    assert not missing, f"required in production, missing from the ConfigMap: {missing}"
    assert not NOT_IN_PRODUCTION & set(config)
    assert int(config["HALLGATE_AUDIT_REPLICAS"]) >= 1 and config["HALLGATE_AUDIT_DURABILITY"] == "strict"
    assert float(config["HALLGATE_MAX_CONNECTION_AGE"]) > 0 and float(config["HALLGATE_TLS_RELOAD"]) > 0
    assert config["HALLGATE_LOG_FORMAT"] == "json"


def test_configured_settings_are_known() -> None:
    """The structured places settings are set: ConfigMap keys, container env, compose env, Dockerfile ENV."""
    names = set(the("ConfigMap", "hallgate-config")["data"])
    names |= {e["name"] for obj in workloads() for c in containers_of(pod_template(obj)["spec"])
              for e in c.get("env", [])}
    for svc in compose()["services"].values():
        names |= set(svc.get("environment") or {})
    names |= set(dockerfile_env())
    hallgate = {n for n in names if n.startswith("HALLGATE_")}
    assert hallgate, "no HALLGATE_* settings found"
    assert hallgate <= KNOWN_SETTINGS, sorted(hallgate - KNOWN_SETTINGS)


# ---------------------------------------------------------------------------------------------------
# The Dockerfile


def test_dockerfile_is_multi_stage_on_the_slim_runtime() -> None:
    args = {}
    for ins in dockerfile():
        if ins.keyword == "ARG" and ins.stage == -1 and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key] = value
    froms = [ins for ins in dockerfile() if ins.keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    stage_names = [ins.args.split()[-1] for ins in froms if " AS " in ins.args.upper()]
    base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], froms[-1].args.split()[0])
    image, _, digest = base.partition("@")
    assert image.startswith(RUNTIME_BASE), "the slim Python 3.11 image"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), "the base image is pinned by digest, not by tag alone"
    copies = [ins.args for ins in final_stage() if ins.keyword == "COPY"]
    assert any(re.match(rf"--from={re.escape(stage_names[0])}\s", c) for c in copies), \
        "the runtime stage copies the builder's result"
    assert not any(ins.keyword == "RUN" and re.search(r"\b(gcc|build-essential)\b", ins.args)
                   for ins in final_stage()), "no compiler in the runtime image"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [ins for ins in final_stage() if ins.keyword == "USER"]
    assert users, "the runtime stage must set USER"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot without a passwd lookup"


def test_dockerfile_exposes_grpc_and_metrics_and_listens_on_all_interfaces() -> None:
    exposed = {int(p.split("/")[0]) for ins in final_stage() if ins.keyword == "EXPOSE" for p in ins.args.split()}
    assert exposed == {GRPC_PORT, HEALTH_PORT, METRICS_PORT}
    assert dockerfile_env()["HALLGATE_LISTEN"] == f"0.0.0.0:{GRPC_PORT}"
    assert dockerfile_env()["HALLGATE_HEALTH_LISTEN"] == f"0.0.0.0:{HEALTH_PORT}"
    assert dockerfile_env()["HALLGATE_LOG_FORMAT"] == "json"


def test_dockerfile_entrypoint_and_cmd_parse_with_the_cli() -> None:
    entrypoint, cmd = entrypoint_and_cmd()
    assert entrypoint == ["hallgate"] and cmd == ["serve"]
    assert parse_cli(hallgate_argv(entrypoint + cmd)).run.__name__ == "cmd_serve"


def test_dockerfile_healthcheck_probes_the_health_port() -> None:
    command = healthcheck_command()
    assert command == ["hallgate", "health", "--plaintext", "--target", f"127.0.0.1:{HEALTH_PORT}"]
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", one("HEALTHCHECK", final_stage()).args))
    assert {"interval", "timeout", "retries"} <= options.keys()


def test_dockerfile_healthcheck_parses_with_the_cli() -> None:
    args = parse_cli(hallgate_argv(healthcheck_command()))
    assert args.run.__name__ == "cmd_health"
    assert args.target == f"127.0.0.1:{HEALTH_PORT}" and args.plaintext is True


def test_dockerfile_copies_what_pip_install_needs() -> None:
    """The builder copies pyproject, its readme and every package pyproject installs, and the
    .dockerignore next to the Dockerfile lets exactly those through."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    builder = [ins for ins in dockerfile() if ins.stage == 0]
    copied: set[str] = set()
    for ins in builder:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            copied |= {src.rstrip("/") for src in ins.args.split()[:-1]}
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert {"pyproject.toml", "requirements.lock", pyproject["project"]["readme"]} | packages <= copied
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: no such path in the repository"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert copied <= allowed, f"excluded from the build context: {sorted(copied - allowed)}"


# ---------------------------------------------------------------------------------------------------
# compose


def test_compose_runs_redis_with_an_fsynced_append_only_file() -> None:
    redis = compose()["services"]["redis"]
    assert redis["image"].startswith("redis:") and "alpine" not in redis["image"], "the Debian-based redis image"
    command = redis["command"]
    assert command[0] == "redis-server"
    assert " ".join(command[1:]).count("--appendonly yes") == 1
    assert " ".join(command[1:]).count("--appendfsync always") == 1
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_compose_runs_two_gateways_on_one_network() -> None:
    gateways = compose_gateways()
    assert len(gateways) >= 2
    services = compose()["services"]
    networks = {frozenset(svc.get("networks", ["default"])) for svc in services.values()}
    assert len(networks) == 1, "every service on one network"
    host_ports = [p.rsplit(":", 1)[0] for svc in gateways.values() for p in svc.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "each gateway publishes its own host ports"
    assert all(p.startswith("127.0.0.1:") for p in host_ports), "published on loopback only"
    for name, svc in gateways.items():
        env = svc["environment"]
        assert env["HALLGATE_REDIS_URL"].startswith("redis://redis:"), name
        assert env["HALLGATE_LISTEN"] == f"0.0.0.0:{GRPC_PORT}", name
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        if "healthcheck" not in svc:  # the image's HEALTHCHECK must find the health listener
            listen = env.get("HALLGATE_HEALTH_LISTEN", dockerfile_env()["HALLGATE_HEALTH_LISTEN"])
            assert listen.rsplit(":", 1)[1] == healthcheck_command()[-1].rsplit(":", 1)[1], name


def test_compose_gateways_share_their_keys() -> None:
    gateways = list(compose_gateways().values())
    assert all(g["env_file"] == gateways[0]["env_file"] for g in gateways)
    assert all(g["environment"] == gateways[0]["environment"] for g in gateways)
    assert all(g["secrets"] == gateways[0]["secrets"] for g in gateways)


def test_compose_commands_parse_with_the_cli_and_billing_target_matches() -> None:
    entrypoint, cmd = entrypoint_and_cmd()
    services = compose()["services"]
    sim = services["billing-sim"]
    sim_args = parse_cli(hallgate_argv(entrypoint + sim["command"]))
    assert sim_args.run.__name__ == "cmd_billing_sim"
    sim_port = sim_args.listen.rsplit(":", 1)[1]
    for name, svc in compose_gateways().items():
        args = parse_cli(hallgate_argv(entrypoint + svc.get("command", cmd)))
        assert args.run.__name__ == "cmd_serve", name
        assert svc["environment"]["HALLGATE_BILLING_TARGET"] == f"billing-sim:{sim_port}", name
    for svc in services.values():
        if svc.get("image", "").startswith("hallgate"):
            assert (ROOT / "deploy" / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE


def test_compose_file_settings_name_its_secrets() -> None:
    declared = compose()["secrets"]
    for name, svc in compose_gateways().items():
        mounted = {f"/run/secrets/{s}" for s in svc["secrets"]}
        assert set(svc["secrets"]) <= set(declared), name
        for key in ("HALLGATE_TLS_CERT", "HALLGATE_TLS_KEY", "HALLGATE_TLS_CLIENT_CA", "HALLGATE_LEGAL_SIGNING_KEY"):
            assert svc["environment"][key] in mounted, f"{name}: {key}"


def test_compose_billing_link_is_mutual_tls_over_compose_secrets() -> None:
    """billing-sim serves TLS and asks for a client certificate (`--tls-*`, parsed by the real CLI);
    the gateways give the CA, certificate and key. Every one of these files is a compose secret
    mounted in the service that reads it."""
    entrypoint, _ = entrypoint_and_cmd()
    declared = compose()["secrets"]
    sim = compose()["services"]["billing-sim"]
    args = parse_cli(hallgate_argv(entrypoint + sim["command"]))
    assert args.run.__name__ == "cmd_billing_sim"
    assert set(sim.get("secrets", [])) <= set(declared)
    sim_files = {f"/run/secrets/{s}" for s in sim.get("secrets", [])}
    for flag in ("tls_cert", "tls_key", "tls_client_ca"):
        assert getattr(args, flag) in sim_files, f"billing-sim --{flag.replace('_', '-')}={getattr(args, flag)}"
    for name, svc in compose_gateways().items():
        env = svc["environment"]
        mounted = {f"/run/secrets/{s}" for s in svc["secrets"]}
        for key in BILLING_TLS:
            assert env.get(key) in mounted, f"{name}: {key}={env.get(key)} is not a mounted compose secret"
        assert not billing_settings(env).billing_plaintext, name


@pytest.fixture(scope="module")
def dev_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What deploy/dev-secrets.sh makes, in a fresh directory."""
    out = tmp_path_factory.mktemp("dev") / "dev-secrets"
    subprocess.run(["bash", str(DEV_SECRETS), str(out)], check=True, capture_output=True, timeout=30)
    return out


def compose_secret_file(out: Path, path: str) -> Path:
    """The file of `out` (dev-secrets.sh's output) that compose mounts at /run/secrets/NAME."""
    name = path.removeprefix("/run/secrets/")
    assert name != path, f"{path} is not a compose secret"
    return out / Path(compose()["secrets"][name]["file"]).name


def test_compose_billing_certificates_chain_name_and_pass_the_gateways_check(dev_secrets: Path) -> None:
    """With dev-secrets.sh's files at the paths compose mounts: billing-sim's certificate chains to
    the gateways' HALLGATE_BILLING_TLS_CA and names the target's host, the gateways' client
    certificate chains to billing-sim's --tls-client-ca, both sides' files load as they do at start,
    and the gateways pass billing_link.check reading the real files."""
    entrypoint, _ = entrypoint_and_cmd()
    sim = parse_cli(hallgate_argv(entrypoint + compose()["services"]["billing-sim"]["command"]))
    read_pair(compose_secret_file(dev_secrets, sim.tls_cert), compose_secret_file(dev_secrets, sim.tls_key))
    read_ca(compose_secret_file(dev_secrets, sim.tls_client_ca))
    for name, svc in compose_gateways().items():
        env = {k: str(compose_secret_file(dev_secrets, v)) if k in BILLING_TLS else v
               for k, v in svc["environment"].items()}
        host = env["HALLGATE_BILLING_TARGET"].rsplit(":", 1)[0]
        checks = [(env["HALLGATE_BILLING_TLS_CA"], compose_secret_file(dev_secrets, sim.tls_cert), "sslserver",
                   ["-verify_hostname", host]),
                  (compose_secret_file(dev_secrets, sim.tls_client_ca), env["HALLGATE_BILLING_TLS_CERT"],
                   "sslclient", [])]
        for ca, cert, purpose, extra in checks:
            verify = subprocess.run(["openssl", "verify", "-purpose", purpose, *extra, "-CAfile", str(ca), str(cert)],
                                    capture_output=True, text=True, timeout=30)
            assert verify.returncode == 0, f"{name}: {cert} ({purpose}): {verify.stdout}{verify.stderr}"
        billing_link.check(billing_settings(env))


def test_dev_secrets_script_makes_every_file_compose_reads(dev_secrets: Path) -> None:
    out = dev_secrets
    for spec in compose()["secrets"].values():
        assert (out / Path(spec["file"]).name).is_file(), spec["file"]
    for svc in compose_gateways().values():
        for env_file in svc["env_file"]:
            path = out / Path(env_file).name
            names = {line.split("=", 1)[0] for line in path.read_text().splitlines() if line}
            assert names == {"HALLGATE_SECRET_KEY", "HALLGATE_AUDIT_HMAC_KEY"}
            assert names <= KNOWN_SETTINGS
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(out / "ca.crt"), str(out / "server.crt"),
                             str(out / "kiosk-H001-K01.crt")], capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert (out / "ca.key").stat().st_mode & 0o077 == 0, "the development CA key stays private"



