"""Regenerate the Python code for proto/ into hallgate_pb/ (committed; never edited by hand).

protoc writes absolute imports such as ``from hallgate.v1 import x_pb2``; they are rewritten into
the ``hallgate_pb`` package so the generated code imports itself, not a top-level ``hallgate``.
The public API (hallgate/v1) also gets connectrpc's ``*_connect.py`` (protoc-gen-connectrpc with
``protobuf=google``), so the browser listener serves the very ``*_pb2`` messages gRPC does.
Usage: python scripts/gen_protos.py [OUTPUT_DIR]   (default: the repository's hallgate_pb/)
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PLUGIN = Path(sys.executable).parent / "protoc-gen-connectrpc"

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
IMPORT_RE = re.compile(r"^from hallgate(\.[\w.]+)? import", re.MULTILINE)


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        public = [p for p in protos if p.startswith("hallgate/v1/")]
        if protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--plugin=protoc-gen-connectrpc={PLUGIN}",
                        f"--connectrpc_out={tmp}", "--connectrpc_opt=protobuf=google", *public]) != 0:
            raise SystemExit("protoc-gen-connectrpc failed")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(tmp) / "hallgate", out)
    for path in out.rglob("*"):
        if path.is_dir():
            (path / "__init__.py").touch()
        elif path.suffix in {".py", ".pyi"}:
            text = IMPORT_RE.sub(lambda m: f"from hallgate_pb{m.group(1) or ''} import", path.read_text())
            path.write_text(text)
    (out / "__init__.py").write_text('"""Generated from proto/ by scripts/gen_protos.py. Do not edit."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "hallgate_pb")
