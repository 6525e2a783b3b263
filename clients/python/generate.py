#!/usr/bin/env python3
"""Generates the Python stubs of the doorstep API from proto/doorstep/v1/*.proto into generated/.

Run it after installing requirements.txt, and again whenever the protos change:

    python generate.py

The stubs are importable as `doorstep.v1.ticket_pb2`, `doorstep.v1.ticket_pb2_grpc` and so on once
generated/ is on sys.path (file_ticket.py puts it there).
"""

import pathlib
import shutil
import sys

from grpc_tools import protoc
import grpc_tools

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
OUT = HERE / "generated"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "doorstep" / "v1").glob("*.proto"))
    if not protos:
        print(f"generate.py: no .proto files under {PROTO_ROOT / 'doorstep' / 'v1'}", file=sys.stderr)
        return 1
    # Start clean so that a message or file removed from the protos does not linger as a stale stub.
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    # google/protobuf/*.proto ship inside grpcio-tools; the protobuf runtime has their Python modules.
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"generate.py: protoc failed (exit {code})", file=sys.stderr)
        return code
    print(f"generated {', '.join(protos)} into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
