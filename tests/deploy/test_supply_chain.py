"""The pinned supply chain (deploy/README.md, Supply chain): the hash-locked requirement files generated
from pyproject.toml, the venv CI tests in, the image's digest-pinned base and hash-checked install,
pyproject's ranges against the committed generated code, and the SBOM."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.manifests import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
PB = ROOT / "hallgate_pb"
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


@functools.cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements(*groups: str) -> list[Requirement]:
    """pyproject's runtime dependencies, plus the named optional-dependency groups."""
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for group in groups:
        lines += project["optional-dependencies"][group]
    return [Requirement(line) for line in lines]


def build_requirements() -> list[Requirement]:
    return [Requirement(line) for line in pyproject()["build-system"]["requires"]]


def entries(lock: Path) -> list[str]:
    """The requirement entries of a lock file, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for raw in lock.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    assert not buf, f"{lock.name} ends inside a continued line"
    return out


@functools.cache
def pins(lock: Path) -> dict[str, Version]:
    out: dict[str, Version] = {}
    for entry in entries(lock):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)\s", entry + " ")
        assert match, f"{lock.name}: not an exact pin: {entry[:80]}"
        name = canonicalize_name(match[1])
        assert name not in out, f"{lock.name}: {name} pinned twice"
        out[name] = Version(match[2])
    return out


def closure(roots: list[Requirement], lock: Path) -> set[str]:
    """Every distribution the roots need on this interpreter (CPython 3.11 on Linux, like the lock),
    following the installed metadata of each pin; each must be pinned at a version its specifier allows."""
    pinned, todo = pins(lock), [(r, "pyproject.toml") for r in roots]
    seen: set[str] = set()
    wanted: dict[str, set[str]] = {}
    while todo:
        req, parent = todo.pop()
        name = canonicalize_name(req.name)
        assert name in pinned, f"{lock.name} lacks {req} (needed by {parent})"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"{lock.name}: {name}=={pinned[name]} is outside {req} (needed by {parent})"
        extras = wanted.setdefault(name, set())
        if name in seen and set(req.extras) <= extras:
            continue
        seen.add(name)
        extras |= set(req.extras)
        for line in metadata.requires(name) or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append((dep, f"{name}=={pinned[name]}"))
    return seen


# --- the lock files --------------------------------------------------------------------------------


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_lock_entry_is_an_exact_pin_with_hashes(lock: Path) -> None:
    found = entries(lock)
    assert len(found) >= 15
    for entry in found:
        assert re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==[^\s;]+\s", entry + " "), f"not pinned with ==: {entry[:80]}"
        assert HASH.search(entry), f"no sha256 hash: {entry[:80]}"
        assert not re.search(r"^-|\s-e\s|git\+|https?://|file:", entry), f"not a plain index pin: {entry[:80]}"
    head = lock.read_text().splitlines()[:3]
    assert any("make lock" in line for line in head), "the header says how the file is made"


def test_runtime_lock_is_exactly_what_pyproject_needs_at_versions_its_ranges_allow() -> None:
    needed = closure(requirements() + build_requirements(), RUNTIME_LOCK)
    stale = set(pins(RUNTIME_LOCK)) - needed
    assert not stale, f"requirements.lock pins what nothing needs (run `make lock`): {sorted(stale)}"
    assert {"grpcio", "protobuf", "redis", "hiredis", "psycopg-binary", "setuptools"} <= needed


def test_dev_lock_is_the_runtime_lock_plus_the_dev_extra() -> None:
    runtime, dev = pins(RUNTIME_LOCK), pins(DEV_LOCK)
    differing = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differing, f"requirements-dev.lock pins the runtime set differently: {differing}"
    needed = closure(requirements("dev") + build_requirements(), DEV_LOCK)
    stale = set(dev) - needed
    assert not stale, f"requirements-dev.lock pins what nothing needs (run `make lock`): {sorted(stale)}"


def test_the_venv_under_test_is_the_locked_set() -> None:
    """CI runs `make test` in a venv made from requirements-dev.lock: what it tests is what is locked."""
    wrong: dict[str, tuple[str, str | None]] = {}
    for name, version in pins(DEV_LOCK).items():
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (str(version), None)
            continue
        if installed != version:
            wrong[name] = (str(version), str(installed))
    assert not wrong, f"installed versions differ from requirements-dev.lock (locked, installed): {wrong}"


# --- pyproject's ranges against what the code relies on -------------------------------------------


def spec(name: str, *groups: str) -> SpecifierSet:
    [req] = [r for r in requirements(*groups) if canonicalize_name(r.name) == name]
    return req.specifier


def test_protobuf_and_grpc_ranges_fit_the_committed_generated_code() -> None:
    gencode = {m for p in PB.rglob("*_pb2.py") for m in re.findall(r"Protobuf Python Version: (\S+)", p.read_text())}
    grpc = {m for p in PB.rglob("*_pb2_grpc.py")
            for m in re.findall(r"GRPC_GENERATED_VERSION = '(\S+)'", p.read_text())}
    assert len(gencode) == 1 and len(grpc) == 1, (gencode, grpc)
    protobuf, generated = spec("protobuf"), Version(gencode.pop())
    # The runtime check of the generated code: same major, not older than the generator.
    assert protobuf.contains(generated) and not protobuf.contains(Version(f"{generated.major + 1}.0.0"))
    assert not protobuf.contains(Version(f"{generated.major}.{generated.minor - 1}.99"))
    grpc_generated = Version(grpc.pop())
    for name in ("grpcio", "grpcio-status", "grpcio-health-checking", "grpcio-reflection"):
        assert spec(name).contains(grpc_generated), name
        assert not spec(name).contains(Version(f"{grpc_generated.major}.{grpc_generated.minor - 1}.0")), name
    assert str(spec("grpcio-tools", "dev")) == f"=={grpc_generated}", "the generator of hallgate_pb/, exactly"


def test_redis_is_held_to_the_minor_the_cluster_corrections_are_written_against() -> None:
    redis = spec("redis")
    assert redis.contains(Version("8.1.0")) and redis.contains(Version("8.1.9"))
    assert not redis.contains(Version("8.2.0")) and not redis.contains(Version("8.0.9"))
    assert "redis-py 8.1" in (ROOT / "adapters" / "redis_client.py").read_text()


# --- the image --------------------------------------------------------------------------------------


def test_every_stage_starts_from_the_digest_pinned_base() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    froms = [a.split()[0] for k, a in instructions if k == "FROM"]
    assert froms and all(f == "${PYTHON_IMAGE}" for f in froms), froms
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])


def test_the_image_installs_the_lock_with_hashes_and_hallgate_without_dependencies() -> None:
    runs = [a for k, a in dockerfile_instructions() if k == "RUN"]
    installs = [cmd for run in runs for cmd in re.split(r"&&|;", run) if re.search(r"\bpip\s+install\b", cmd)]
    assert len(installs) == 2, installs
    locked, own = installs
    assert "--require-hashes" in locked and "--only-binary=:all:" in locked
    assert re.search(r"-r\s+requirements\.lock\b", locked)
    assert "--no-deps" in own and "--no-build-isolation" in own and own.split()[-1] == "."
    copies = [a for k, a in dockerfile_instructions() if k == "COPY"]
    assert any(c.split()[0] == "requirements.lock" for c in copies)


# --- the SBOM ---------------------------------------------------------------------------------------


def test_make_sbom_describes_the_runtime_lock() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = subprocess.run(["make", "-n", "sbom"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    commands = [line for line in out.stdout.replace("\\\n", " ").splitlines() if "cyclonedx-py" in line]
    assert len(commands) == 1, out.stdout
    assert re.search(r"cyclonedx-py requirements .*\bdist/sbom\.cdx\.json\b.*\brequirements\.lock\s*$", commands[0])


def test_the_sbom_lists_every_pin_of_the_runtime_lock(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "cyclonedx-py"
    if not cli.exists():
        pytest.skip("cyclonedx-py is not installed next to this interpreter (dev extra)")
    out = tmp_path / "sbom.cdx.json"
    subprocess.run([str(cli), "requirements", "--pyproject", str(ROOT / "pyproject.toml"), "--output-reproducible",
                    "--of", "JSON", "-o", str(out), str(RUNTIME_LOCK)],
                   cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["metadata"]["component"]["name"] == "hallgate"
    components: dict[str, Any] = {canonicalize_name(c["name"]): c for c in bom["components"]}
    assert components["grpcio"]["version"] == str(pins(RUNTIME_LOCK)["grpcio"])
    assert components["grpcio"]["purl"] == f"pkg:pypi/grpcio@{pins(RUNTIME_LOCK)['grpcio']}"
    assert {name: Version(c["version"]) for name, c in components.items()} == pins(RUNTIME_LOCK)
