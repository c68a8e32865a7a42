"""Generate the Python stubs for every .proto under protos/taskmesh into protos/gen/python.

Run through `make proto` (also a prerequisite of `make run` and `make test`). The output
directory is wiped first so a removed or renamed proto leaves no stale module behind.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
OUT = PROTO_ROOT / "gen" / "python"


def main() -> int:
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "taskmesh").rglob("*.proto")
    )
    if not protos:
        sys.stderr.write("no .proto files under protos/taskmesh\n")
        return 1
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.stderr.write("protoc failed\n")
        return 1
    for directory in [OUT / "taskmesh", *(p for p in (OUT / "taskmesh").rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (OUT / "taskmesh" / "py.typed").touch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
