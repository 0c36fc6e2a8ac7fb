"""deploy/k8s/edge/: the ways in for kiosks, clerk terminals and browsers, checked offline.

The core objects (Namespace, ConfigMap, Deployment, Service, PodDisruptionBudget, NetworkPolicy) are
validated against the Kubernetes schemas as tests/deploy/test_manifests.py does; the Gateway API and
Envoy Gateway objects (CRDs, no schema offline) are checked field by field. On top: Envoy's own
configuration is a TCP proxy that passes TLS through and speaks PROXY protocol v2 to the gateway's
`proxy` port (gRPC) and `browser-proxy` port (the browser listener), and each port is the same in
Envoy, the TLSRoute, the gateway's Service, Deployment, ConfigMap (HALLGATE_PROXY_LISTEN,
HALLGATE_BROWSER_PROXY_LISTEN) and NetworkPolicy.
"""

from __future__ import annotations

import functools
import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate as kv
import pytest
import yaml

from gateway.runtime import browser
from gateway.runtime.edge import Edge
from gateway.runtime.settings import Settings
from gateway.transport.proxy_front import parse_trusted, split_listen
from tests.support.manifests import K8S, K8S_VERSIONS, NAMESPACE, selects

EDGE = K8S / "edge"
ENVOY = EDGE / "envoy"
GATEWAY_API = EDGE / "gateway-api"
EDGE_NAMESPACE = "hallgate-edge"
PROXY_PORT = 50053  # the gateway's `proxy` port: HALLGATE_PROXY_LISTEN in deploy/k8s/20-configmap.yaml
BROWSER_PROXY_PORT = 50054  # `browser-proxy`: HALLGATE_BROWSER_PROXY_LISTEN
GATEWAY_SERVICE_HOST = f"hallgate.{NAMESPACE}.svc.cluster.local"
CORE_GROUPS = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}
CRD_KINDS = {("gateway.networking.k8s.io/v1", "Gateway"), ("gateway.networking.k8s.io/v1alpha2", "TLSRoute"),
             ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
             ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy")}




@dataclass(frozen=True)
class Way:
    """One way in, named the same in every file it crosses."""

    envoy_listener: str  # Envoy's listener, and the Gateway API listener
    envoy_port: str  # Envoy's container port name
    balancer_port: int  # the edge Service's (load balancer's) port
    cluster: str  # Envoy's cluster
    route: str  # the TLSRoute
    gateway_port: int  # the gateway's Service and container port
    port_name: str  # ... by name
    setting: str  # the gateway's setting listening there


WAYS = [Way("terminals", "tls", 443, "hallgate", "hallgate", PROXY_PORT, "proxy", "HALLGATE_PROXY_LISTEN"),
        Way("browsers", "browsers", 8443, "hallgate-browsers", "hallgate-browsers", BROWSER_PROXY_PORT,
            "browser-proxy", "HALLGATE_BROWSER_PROXY_LISTEN")]
each_way = pytest.mark.parametrize("way", WAYS, ids=[w.envoy_listener for w in WAYS])


# ---------------------------------------------------------------------------------------------------
# Loading


def documents_in(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@functools.cache
def edge_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((str(p.relative_to(EDGE)), d) for p in sorted(EDGE.rglob("*.yaml")) for d in documents_in(p))


def objects(under: Path = EDGE) -> list[dict[str, Any]]:
    return [d for p in sorted(under.rglob("*.yaml")) for d in documents_in(p) if d["kind"] != "Kustomization"]


def one(kind: str, under: Path = EDGE, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects(under) if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} under {under.relative_to(K8S)}, found {len(found)}"
    return found[0]


def main_objects(kind: str) -> list[dict[str, Any]]:
    """Objects of the gateway's own manifests (deploy/k8s/*.yaml, not the edge)."""
    return [d for p in sorted(K8S.glob("*.yaml")) for d in documents_in(p) if d.get("kind") == kind]


def envoy_config() -> dict[str, Any]:
    configmap = one("ConfigMap", ENVOY)
    config = yaml.safe_load(configmap["data"]["envoy.yaml"])
    assert isinstance(config, dict)
    return config


def listener(name: str) -> dict[str, Any]:
    (found,) = [x for x in envoy_config()["static_resources"]["listeners"] if x["name"] == name]
    return found


def cluster(name: str) -> dict[str, Any]:
    (found,) = [c for c in envoy_config()["static_resources"]["clusters"] if c["name"] == name]
    return found


def filters(of: dict[str, Any]) -> list[dict[str, Any]]:
    (chain,) = of["filter_chains"]
    return list(chain["filters"])


def envoy_pod_spec() -> dict[str, Any]:
    return one("Deployment", ENVOY)["spec"]["template"]["spec"]


def envoy_container() -> dict[str, Any]:
    (container,) = envoy_pod_spec()["containers"]
    return container


def gateway_configmap() -> dict[str, str]:
    (configmap,) = [c for c in main_objects("ConfigMap") if c["metadata"]["name"] == "hallgate-config"]
    return dict(configmap["data"])


# ---------------------------------------------------------------------------------------------------
# Parsing, kustomizations, schemas


def test_every_edge_yaml_parses_into_named_objects() -> None:
    docs = edge_documents()
    assert len(docs) >= 12
    for path, doc in docs:
        assert isinstance(doc, dict) and {"apiVersion", "kind"} <= doc.keys(), path
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), f"{path}: {doc['kind']} without a name"


@pytest.mark.parametrize("directory", [EDGE, ENVOY, GATEWAY_API], ids=["edge", "envoy", "gateway-api"])
def test_each_kustomization_lists_every_manifest_of_its_directory(directory: Path) -> None:
    (kustomization,) = documents_in(directory / "kustomization.yaml")
    manifests = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    subdirs = sorted(r for r in kustomization["resources"] if (directory / r).is_dir())
    assert sorted(r for r in kustomization["resources"] if r not in subdirs) == manifests
    for sub in subdirs:
        assert (directory / sub / "kustomization.yaml").is_file()


def test_the_edge_applies_envoy_and_not_the_gateway_api_variant_too() -> None:
    """Two ways in at once would be two load balancers for one edge: one is applied, the other is opt-in."""
    (kustomization,) = documents_in(EDGE / "kustomization.yaml")
    assert kustomization["resources"] == ["00-namespace.yaml", "envoy"]
    images = {i["name"]: i for i in kustomization["images"]}
    assert envoy_container()["image"].split(":")[0] in images


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_against_the_kubernetes_schemas(version: str) -> None:
    checked = set()
    for path, doc in edge_documents():
        if doc["kind"] == "Kustomization" or (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        assert doc["apiVersion"] in CORE_GROUPS, f"{path}: {doc['apiVersion']} {doc['kind']} is neither core nor known"
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as err:
            where = ".".join(str(p) for p in err.path)
            pytest.fail(f"{path}: {doc['kind']}/{doc['metadata']['name']} at {where}: {err.message}")
        checked.add(doc["kind"])
    assert checked == {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}


def test_only_the_known_crds_are_used() -> None:
    crds = {(d["apiVersion"], d["kind"]) for _, d in edge_documents() if d["apiVersion"] not in CORE_GROUPS
            and d["kind"] != "Kustomization"}
    assert crds == CRD_KINDS


def test_kustomize_renders_both_variants() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl: kustomize rendering not checked")
    for directory, kinds in ((EDGE, {"Namespace", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                                     "NetworkPolicy"}),
                             (GATEWAY_API, {"Gateway", "TLSRoute", "ReferenceGrant", "BackendTrafficPolicy"})):
        out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                             check=True)
        rendered = [d for d in yaml.safe_load_all(out.stdout) if d]
        assert {d["kind"] for d in rendered} == kinds


def test_edge_objects_live_in_the_edge_namespace_which_is_restricted() -> None:
    namespace = one("Namespace")
    assert namespace["metadata"]["name"] == EDGE_NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects():
        if obj["kind"] == "Namespace":
            continue
        expected = NAMESPACE if obj["kind"] == "ReferenceGrant" else EDGE_NAMESPACE  # the grant lives by the Service
        assert obj["metadata"].get("namespace") == expected, f"{obj['kind']}/{obj['metadata']['name']}"


# ---------------------------------------------------------------------------------------------------
# Envoy: a TCP proxy, TLS passed through, PROXY protocol v2 to the gateway


@each_way
def test_envoy_relays_the_bytes_to_the_gateway_cluster(way: Way) -> None:
    found = listener(way.envoy_listener)
    assert "transport_socket" not in found["filter_chains"][0], "Envoy must not terminate the TLS it relays"
    assert not found.get("listener_filters"), "no listener filter: a client cannot send a header Envoy trusts"
    chain = filters(found)
    assert chain[-1]["name"] == "envoy.filters.network.tcp_proxy"
    tcp = chain[-1]["typed_config"]
    assert tcp["@type"] == "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    assert tcp["cluster"] == way.cluster
    assert {f["name"] for f in chain} <= {"envoy.filters.network.tcp_proxy", "envoy.filters.network.connection_limit"}


@each_way
def test_envoy_speaks_proxy_protocol_v2_to_the_gateways_port(way: Way) -> None:
    upstream = cluster(way.cluster)
    socket = upstream["transport_socket"]
    assert socket["name"] == "envoy.transport_sockets.upstream_proxy_protocol"
    typed = socket["typed_config"]
    assert typed["@type"] == ("type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3."
                              "ProxyProtocolUpstreamTransport")
    assert typed["config"]["version"] == "V2"
    inner = typed["transport_socket"]
    assert inner["name"] == "envoy.transport_sockets.raw_buffer", "no TLS of Envoy's own: the client's passes"
    assert inner["typed_config"]["@type"].endswith("raw_buffer.v3.RawBuffer")
    ((endpoint,),) = [[e["endpoint"]["address"]["socket_address"] for e in group["lb_endpoints"]]
                      for group in upstream["load_assignment"]["endpoints"]]
    assert endpoint == {"address": GATEWAY_SERVICE_HOST, "port_value": way.gateway_port}
    assert upstream["load_assignment"]["cluster_name"] == way.cluster


def test_envoy_has_exactly_these_listeners_and_clusters() -> None:
    config = envoy_config()["static_resources"]
    assert {x["name"] for x in config["listeners"]} == {w.envoy_listener for w in WAYS} | {"ready"}
    assert {c["name"] for c in config["clusters"]} == {w.cluster for w in WAYS}


def test_envoys_admin_is_on_loopback_and_its_listener_ports_are_the_containers() -> None:
    assert ipaddress.ip_address(envoy_config()["admin"]["address"]["socket_address"]["address"]).is_loopback
    ports = {p["name"]: p["containerPort"] for p in envoy_container()["ports"]}
    for way in WAYS:
        assert listener(way.envoy_listener)["address"]["socket_address"]["port_value"] == ports[way.envoy_port]
    assert listener("ready")["address"]["socket_address"]["port_value"] == ports["ready"]
    ready = filters(listener("ready"))[0]["typed_config"]
    health = [f for f in ready["http_filters"] if f["name"] == "envoy.filters.http.health_check"]
    assert health and health[0]["typed_config"]["headers"][0]["string_match"]["exact"] == "/ready"
    assert envoy_container()["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ready"}


def test_envoy_reads_the_configmap_it_is_given() -> None:
    container, spec = envoy_container(), envoy_pod_spec()
    args = container["args"]
    config_path = args[args.index("--config-path") + 1]
    (mount,) = [m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == one("ConfigMap", ENVOY)["metadata"]["name"]
    assert {i["path"] for i in volume["configMap"]["items"]} == {config_path.rsplit("/", 1)[1]}


def test_envoy_runs_unprivileged_read_only_with_limits() -> None:
    spec, container = envoy_pod_spec(), envoy_container()
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert spec["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys() <= container["resources"]["limits"].keys()
    assert one("Deployment", ENVOY)["spec"]["replicas"] >= 2


def test_the_terminals_service_keeps_their_addresses() -> None:
    service = one("Service", ENVOY)
    labels = one("Deployment", ENVOY)["spec"]["template"]["metadata"]["labels"]
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local", "with Cluster the header would name a node"
    assert service["spec"]["loadBalancerSourceRanges"], "the halls' networks only"
    ports = {p["targetPort"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {w.envoy_port: w.balancer_port for w in WAYS}
    assert selects(one("PodDisruptionBudget", ENVOY)["spec"]["selector"], labels)


def test_envoys_network_policy_admits_the_halls_and_reaches_only_dns_and_the_proxy_port() -> None:
    policies = [o for o in objects(ENVOY) if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny[0]["spec"]
    (policy,) = [p for p in policies if p["spec"]["podSelector"]]
    labels = one("Deployment", ENVOY)["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], labels)
    listening = {p["name"]: p["containerPort"] for p in envoy_container()["ports"]}
    for rule in policy["spec"]["ingress"]:
        assert sorted(p["port"] for p in rule["ports"]) == sorted(listening[w.envoy_port] for w in WAYS)
        for peer in rule["from"]:
            assert "ipBlock" in peer and ipaddress.ip_network(peer["ipBlock"]["cidr"]).prefixlen > 0
    ports = sorted(p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"])
    assert ports == [53, 53, PROXY_PORT, BROWSER_PROXY_PORT]
    (to_gateway,) = [r for r in policy["spec"]["egress"] if r["ports"][0]["port"] == PROXY_PORT]
    assert [p["port"] for p in to_gateway["ports"]] == [PROXY_PORT, BROWSER_PROXY_PORT]
    (peer,) = to_gateway["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NAMESPACE}
    (gateway,) = [d for d in main_objects("Deployment") if d["metadata"]["name"] == "hallgate"]
    assert selects(peer["podSelector"], gateway["spec"]["template"]["metadata"]["labels"])


# ---------------------------------------------------------------------------------------------------
# Gateway API: TLS passthrough to the same port (CRDs: checked by hand)


def test_gateway_listeners_pass_tls_through() -> None:
    gateway = one("Gateway", GATEWAY_API)
    listeners = {x["name"]: x for x in gateway["spec"]["listeners"]}
    assert set(listeners) == {w.envoy_listener for w in WAYS}
    for way in WAYS:
        found = listeners[way.envoy_listener]
        assert found["port"] == way.balancer_port
        assert found["protocol"] == "TLS" and found["tls"]["mode"] == "Passthrough"
        assert "certificateRefs" not in found["tls"], "Passthrough: the gateway's own certificate answers"
        assert found["allowedRoutes"]["kinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert gateway["spec"]["gatewayClassName"]


@each_way
def test_tls_route_sends_to_the_gateways_port_with_a_proxy_header(way: Way) -> None:
    gateway, route = one("Gateway", GATEWAY_API), one("TLSRoute", GATEWAY_API, way.route)
    (section,) = [x for x in gateway["spec"]["listeners"] if x["name"] == way.envoy_listener]
    (parent,) = route["spec"]["parentRefs"]
    assert (parent["kind"], parent["name"], parent["sectionName"]) == ("Gateway", gateway["metadata"]["name"],
                                                                      section["name"])
    assert route["spec"]["hostnames"] == [section["hostname"]]
    (rule,) = route["spec"]["rules"]
    (backend,) = rule["backendRefs"]
    assert (backend["kind"], backend["name"], backend["namespace"], backend["port"]) == (
        "Service", "hallgate", NAMESPACE, way.gateway_port)
    grant = one("ReferenceGrant", GATEWAY_API)
    assert grant["spec"]["from"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute",
                                      "namespace": EDGE_NAMESPACE}]
    assert grant["spec"]["to"] == [{"group": "", "kind": "Service", "name": "hallgate"}]
    policy = one("BackendTrafficPolicy", GATEWAY_API)
    assert {"group": "gateway.networking.k8s.io", "kind": "TLSRoute", "name": way.route} in policy["spec"]["targetRefs"]
    assert len(policy["spec"]["targetRefs"]) == len(WAYS)
    assert policy["spec"]["proxyProtocol"] == {"version": "V2"}


# ---------------------------------------------------------------------------------------------------
# The gateway's side (deploy/k8s/*.yaml): the same port everywhere, and the settings parse


@each_way
def test_the_gateways_port_is_the_same_everywhere(way: Way) -> None:
    config = gateway_configmap()
    _, port = split_listen(config[way.setting])
    assert port == way.gateway_port
    assert parse_trusted(config["HALLGATE_PROXY_TRUSTED"]), "a front without trusted proxies closes everything"
    name = way.setting.removeprefix("HALLGATE_").lower()
    assert getattr(Settings(**{name: config[way.setting]}), name)  # a known setting
    (deployment,) = [d for d in main_objects("Deployment") if d["metadata"]["name"] == "hallgate"]
    (gateway,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"]
    assert {"name": way.port_name, "containerPort": way.gateway_port, "protocol": "TCP"} in gateway["ports"]
    (service,) = [s for s in main_objects("Service") if s["metadata"]["name"] == "hallgate"]
    (found,) = [p for p in service["spec"]["ports"] if p["name"] == way.port_name]
    assert found["port"] == way.gateway_port and found["targetPort"] == way.port_name


def test_the_browser_listener_is_reached_only_through_its_front() -> None:
    """Its own address is the pod's loopback: a browser reaching it any other way would be recorded
    with the proxy's address, or not be proxied at all."""
    host, _ = split_listen(gateway_configmap()["HALLGATE_BROWSER_LISTEN"])
    assert ipaddress.ip_address(host).is_loopback
    assert "HALLGATE_WEB_CHANNEL" not in gateway_configmap(), "the website needs the operator's bot-challenge keys"


def test_the_gateway_admits_its_proxy_ports_from_the_edge_namespace_only() -> None:
    (policy,) = [p for p in main_objects("NetworkPolicy") if p["metadata"]["name"] == "hallgate-gateway"]
    edge_ports = {w.gateway_port for w in WAYS}
    rules = [r for r in policy["spec"]["ingress"] if any(p["port"] in edge_ports for p in r["ports"])]
    assert rules
    for rule in rules:
        assert sorted(p["port"] for p in rule["ports"]) == sorted(edge_ports)
        assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                                       EDGE_NAMESPACE}}}]


def test_the_configmaps_edge_and_browser_settings_pass_the_gateways_checks() -> None:
    config = gateway_configmap()
    names = ("HALLGATE_PROXY_LISTEN", "HALLGATE_PROXY_TRUSTED", "HALLGATE_BROWSER_LISTEN",
             "HALLGATE_BROWSER_PROXY_LISTEN")
    settings = Settings(tls_cert="/etc/hallgate/tls/tls.crt",
                        **{n.removeprefix("HALLGATE_").lower(): config[n] for n in names})
    browser.check(settings)  # raises ValueError naming what is wrong
    assert Edge.of(settings) is not None and Edge.for_browsers(settings) is not None
