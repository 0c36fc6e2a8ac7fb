"""deploy/: the Dockerfile, the compose trial and the Kubernetes manifests, checked offline.

Every YAML file is parsed with PyYAML; every Kubernetes object is validated against the Kubernetes
OpenAPI schemas bundled with `kubernetes-validate` (strict: unknown fields are errors). On top of the
schemas: the rules the gateway needs (gRPC probes on the served port, non-root, requests and limits,
PDB/HPA/Service/NetworkPolicy select the Deployment's pods, no allow-all ingress, placeholder-only
Secrets, known HALLGATE_* names), and the commands in the Dockerfile, compose and the Deployment
parse with the real `hallgate` CLI parser.
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
from gateway.runtime.settings import Settings, env_name
from hallgate_pb.v1 import kiosk_pb2

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
DEV_SECRETS = DEPLOY / "dev-secrets.sh"

K8S_VERSIONS = ("1.30",)  # the oldest Kubernetes the manifests promise to work on
NAMESPACE = "hallgate"
GRPC_PORT = 50051
HEALTH_PORT = 50052  # HALLGATE_HEALTH_LISTEN: plaintext grpc.health.v1 only, for kubelet and Docker probes
METRICS_PORT = 9464
RUNTIME_BASE = "python:3.11-slim"
KIOSK_SERVICE = kiosk_pb2.DESCRIPTOR.services_by_name["KioskService"].full_name
ADMITTED_NETWORKS = {"hall", "legal", "audit"}
NETWORK_LABEL = "hallgate/network"
PLACEHOLDER = re.compile(r"^REPLACE_ME\b")

# Settings that land with the scale-out and identity work; everything else must be a Settings field.
KNOWN_SETTINGS = frozenset({env_name(f.name) for f in fields(Settings)})


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


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects these labels."""
    if not selector:
        return False  # an empty selector selects everything: never what these manifests mean
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


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
    stage, buf = -1, ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        keyword, _, args = (buf + line).strip().partition(" ")
        buf = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage))
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
            "NetworkPolicy", "Secret", "ConfigMap"} <= set(checked)


def test_the_validator_rejects_what_it_should() -> None:
    """Guard against a validator that accepts anything (a schema that failed to load, say)."""
    import copy

    broken = copy.deepcopy(deployment())
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSIONS[0], strict=True)


def test_namespaced_objects_live_in_the_hallgate_namespace() -> None:
    assert the("Namespace")["metadata"]["name"] == NAMESPACE
    for obj in k8s_objects():
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']}/{obj['metadata']['name']}"


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    assert the("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kustomization_lists_every_manifest_but_no_secret_template() -> None:
    (kustomization,) = [doc for _, doc in k8s_documents() if doc["kind"] == "Kustomization"]
    manifests = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert kustomization["resources"] == manifests
    assert not any("secret" in r for r in kustomization["resources"])
    assert {i["name"] for i in kustomization["images"]} == {gateway_container()["image"].split(":")[0]}


# ---------------------------------------------------------------------------------------------------
# The Deployment


def test_deployment_runs_at_least_two_replicas_spread_over_nodes() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] >= 2
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
    # Readiness asks for the kiosk service, which goes NOT_SERVING while Redis is unreachable.
    assert container["readinessProbe"]["grpc"]["service"] == KIOSK_SERVICE


def test_metrics_port_is_declared_and_matches_the_setting() -> None:
    named = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
    assert named["metrics"] == METRICS_PORT
    assert the("ConfigMap", "hallgate-config")["data"]["HALLGATE_METRICS_LISTEN"].endswith(f":{METRICS_PORT}")


def test_containers_run_as_non_root_with_a_read_only_root() -> None:
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod.get("runAsUser", 1) != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod_spec()["automountServiceAccountToken"] is False
    for c in all_containers():
        sc = c.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod["runAsNonRoot"]) is True, c["name"]
        assert sc.get("runAsUser", pod.get("runAsUser", 1)) != 0, c["name"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc.get("privileged", False) is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert not sc["capabilities"].get("add"), c["name"]


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
    for c in all_containers():
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


def test_secret_key_and_audit_key_are_shared_by_all_replicas() -> None:
    """Each replica generating its own server secret would make codes fail on the other replicas."""
    env = {e["name"]: e for e in gateway_container()["env"]}
    for name in ("HALLGATE_SECRET_KEY", "HALLGATE_AUDIT_HMAC_KEY", "HALLGATE_REDIS_URL"):
        assert "secretKeyRef" in env[name].get("valueFrom", {}), f"{name} must come from a Secret"
    config = the("ConfigMap", "hallgate-config")["data"]
    assert not {"HALLGATE_SECRET_KEY", "HALLGATE_AUDIT_HMAC_KEY"} & set(config), "keys do not belong in a ConfigMap"


def secret_keys() -> dict[str, set[str]]:
    return {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in of_kind("Secret")}


def test_every_secret_and_config_reference_resolves() -> None:
    secrets, configmaps = secret_keys(), {c["metadata"]["name"] for c in of_kind("ConfigMap")}
    c = gateway_container()
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] in configmaps
        if "secretRef" in source:
            assert source["secretRef"]["name"] in secrets
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["key"] in secrets.get(ref["name"], set()), f"{e['name']}: no key {ref['key']} in {ref['name']}"
    for volume in pod_spec()["volumes"]:
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        if "secret" in volume:
            sources.append({"name": volume["secret"]["secretName"], **volume["secret"]})
        for s in sources:
            for item in s.get("items", []):
                where = f"volume {volume['name']}: {s['name']}/{item['key']}"
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


def test_service_selects_the_pods_and_exposes_grpc_and_metrics() -> None:
    svc = the("Service", "hallgate")
    assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels())
    container_ports = {p["name"]: p["containerPort"] for p in gateway_container()["ports"]}
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["port"] == GRPC_PORT and ports["metrics"]["port"] == METRICS_PORT
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
    assert dep["spec"]["replicas"] >= hpa["spec"]["minReplicas"]
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
    assert by_port == {GRPC_PORT: ADMITTED_NETWORKS, METRICS_PORT: {"monitoring"}}


def test_gateway_reaches_only_dns_redis_billing_and_the_smsc() -> None:
    rules = gateway_policy()["spec"]["egress"]
    ports = {(p.get("protocol", "TCP"), p["port"]) for rule in rules for p in rule["ports"]}
    config = the("ConfigMap", "hallgate-config")["data"]
    billing_port = int(config["HALLGATE_BILLING_TARGET"].rsplit(":", 1)[1])
    smsc_port = int(config["HALLGATE_SMS_URL"].rsplit(":", 1)[1])
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 26379), ("TCP", billing_port),
                     ("TCP", smsc_port)}
    # The SMSC is outside the cluster: reached by address, and only on its SMPP port.
    [smsc] = [r for r in rules if any(p["port"] == smsc_port for p in r["ports"])]
    assert [list(t) for t in smsc["to"]] == [["ipBlock"]] and len(smsc["ports"]) == 1


# ---------------------------------------------------------------------------------------------------
# Secrets


def test_secrets_hold_only_placeholders() -> None:
    secrets = of_kind("Secret")
    assert {s["metadata"]["name"] for s in secrets} >= {
        "hallgate-hall-ca", "hallgate-server-tls", "hallgate-signing-key", "hallgate-app-keys"}
    for s in secrets:
        name = s["metadata"]["name"]
        assert "data" not in s, f"{name}: base64 `data` could hide a real key; templates use stringData"
        assert s["stringData"], name
        for key, value in s["stringData"].items():
            assert PLACEHOLDER.match(value), f"{name}/{key} is not a REPLACE_ME placeholder"


def test_no_key_material_anywhere_in_deploy() -> None:
    pem = re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----")
    hexkey = re.compile(r"\b[0-9a-fA-F]{64}\b")
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


def test_configured_settings_are_known() -> None:
    """The structured places settings are set: ConfigMap keys, container env, compose env, Dockerfile ENV."""
    names = set(the("ConfigMap", "hallgate-config")["data"])
    names |= {e["name"] for c in all_containers() for e in c.get("env", [])}
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


def test_dev_secrets_script_makes_every_file_compose_reads(tmp_path: Path) -> None:
    out = tmp_path / "dev-secrets"
    subprocess.run(["bash", str(DEV_SECRETS), str(out)], check=True, capture_output=True, timeout=30)
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



