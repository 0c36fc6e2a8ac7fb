"""What the offline checks of deploy/k8s share: where the manifests are, which Kubernetes versions they
promise, the gateway's namespace, and how a LabelSelector selects (tests/deploy/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
EDGE = K8S / "edge"  # its own namespace and kustomization, checked by tests/deploy/test_edge.py
K8S_VERSIONS = ("1.30",)  # the oldest Kubernetes the manifests promise to work on
NAMESPACE = "hallgate"


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


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of deploy/Dockerfile, line continuations joined and comments dropped, as
    Docker reads them."""
    out, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        keyword, _, args = (buf + line).strip().partition(" ")
        buf = ""
        out.append((keyword.upper(), args.strip()))
    return out
