#!/usr/bin/env python3
"""Files one ticket with doorstep's TicketService.CreateTicket, the way a hotline integration does.

    python file_ticket.py --server 127.0.0.1:50051 --external-ref 12345-20261201-0001
    DOORSTEP_TOKEN=dst_... python file_ticket.py --server doorstep.example:50051 --tls ...

On success it prints one line, `ticket ID created=true|false ...`, and exits 0. `created=false` means
the work-order number (source, external ref) was filed before: the reply is that earlier ticket, and
no second ticket was made, so a retry after a timeout is always safe. On failure it prints the gRPC
status code and message (and any field violations) on stderr and exits 1; UNAVAILABLE is retried a few
times first, since intake is idempotent.

Run generate.py once first (see README.md).
"""

import argparse
import datetime
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "generated"))

try:
    import grpc
    from google.protobuf import timestamp_pb2
    from doorstep.v1 import ticket_pb2, ticket_pb2_grpc
except ImportError as e:  # pragma: no cover - the message is the point
    sys.exit(
        f"file_ticket.py: {e}\n"
        "install the requirements and generate the stubs first:\n"
        "  pip install -r requirements.txt && python generate.py"
    )

# The Lixia example district that `doorstep serve --demo` loads.
DEFAULT_NODE = "lixia/jiefanglu/jiefangqiao/yard-129"
DEFAULT_CATEGORY = "lighting.stairwell"
DEFAULT_CONTENT = "2号楼3单元楼道灯坏了，晚上看不见台阶"  # the stairwell light in building 2 is out

# Worth retrying with the same request: the service is restarting or its database is failing over.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="File a ticket with doorstep (TicketService.CreateTicket) and print its id.",
    )
    p.add_argument("--server", required=True, metavar="HOST:PORT", help="the service, e.g. 127.0.0.1:50051")
    p.add_argument(
        "--token",
        default=os.environ.get("DOORSTEP_TOKEN") or None,
        help="bearer token (dst_...); default $DOORSTEP_TOKEN; none against an unauthenticated service",
    )
    p.add_argument("--tls", action="store_true", help="connect with TLS (the server's tls feature or a proxy)")
    p.add_argument("--ca-cert", metavar="FILE", help="with --tls: trust this CA instead of the system roots")
    p.add_argument(
        "--source",
        default="HOTLINE_12345",
        choices=[n for n in ticket_pb2.Channel.keys() if n != "CHANNEL_UNSPECIFIED"],
        help="the channel the request came in by (default HOTLINE_12345)",
    )
    p.add_argument(
        "--external-ref",
        help="your own work-order number; a retry must send the same one (default: a new PY-... number)",
    )
    p.add_argument("--category", default=DEFAULT_CATEGORY, help=f"catalogue code (default {DEFAULT_CATEGORY})")
    p.add_argument("--node", default=DEFAULT_NODE, help=f"jurisdiction node (default {DEFAULT_NODE})")
    p.add_argument("--content", default=DEFAULT_CONTENT, help="what the resident said")
    p.add_argument("--address", default="", help="free-text address")
    p.add_argument("--caller-name", default="", help="the resident's name")
    p.add_argument("--caller-phone", default="", help="the resident's phone")
    p.add_argument(
        "--confidential", action="store_true", help="the caller asked that handling units not see name or phone"
    )
    p.add_argument(
        "--level-hint",
        choices=[n for n in ticket_pb2.Level.keys() if n != "LEVEL_UNSPECIFIED"],
        help="start the ticket at this level (default: the catalogue's, else ROUTINE)",
    )
    p.add_argument("--occurred-at", metavar="RFC3339", help="when it happened, e.g. 2026-12-01T08:30:00+08:00")
    p.add_argument("--attachment", action="append", default=[], metavar="URL", help="attachment URL (repeatable)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per attempt (default 10)")
    p.add_argument("--retries", type=int, default=3, help="extra attempts on UNAVAILABLE (default 3)")
    args = p.parse_args(argv)
    # HOST:PORT is what gRPC clients take; a URL as `doorstep report sla --server` takes it works too.
    if args.server.startswith("http://"):
        args.server = args.server[len("http://") :]
    elif args.server.startswith("https://"):
        args.server, args.tls = args.server[len("https://") :], True
    if "://" in args.server or not args.server.rpartition(":")[2].isdigit():
        p.error(f"--server takes HOST:PORT, e.g. 127.0.0.1:50051, not {args.server!r}")
    if args.ca_cert and not args.tls:
        p.error("--ca-cert needs --tls")
    return args


def build_request(args):
    request = ticket_pb2.CreateTicketRequest(
        source=ticket_pb2.Channel.Value(args.source),
        external_ref=args.external_ref,
        caller=ticket_pb2.Caller(name=args.caller_name, phone=args.caller_phone, confidential=args.confidential),
        category=args.category,
        content=args.content,
        address=args.address,
        node=args.node,
        attachment_urls=args.attachment,
    )
    if args.level_hint:
        request.level_hint = ticket_pb2.Level.Value(args.level_hint)
    if args.occurred_at:
        try:
            # Python before 3.11 does not read a trailing Z.
            when = datetime.datetime.fromisoformat(args.occurred_at.replace("Z", "+00:00"))
        except ValueError:
            raise SystemExit(f"file_ticket.py: --occurred-at {args.occurred_at!r} is not an RFC 3339 time")
        if when.tzinfo is None:
            raise SystemExit("file_ticket.py: --occurred-at needs a UTC offset, e.g. +08:00")
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(when)
        request.occurred_at.CopyFrom(stamp)
    return request


def open_channel(args):
    if not args.tls:
        return grpc.insecure_channel(args.server)
    root = pathlib.Path(args.ca_cert).read_bytes() if args.ca_cert else None
    return grpc.secure_channel(args.server, grpc.ssl_channel_credentials(root_certificates=root))


def field_violations(error):
    """The google.rpc.BadRequest field violations an error carries, as printable lines."""
    try:
        from google.rpc import error_details_pb2, status_pb2
    except ImportError:
        return []
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not details:
        return []
    status = status_pb2.Status.FromString(details)
    lines = []
    for any_detail in status.details:
        bad = error_details_pb2.BadRequest()
        if any_detail.Unpack(bad):
            for v in bad.field_violations:
                reason = f" [{v.reason}]" if v.reason else ""
                lines.append(f"  field {v.field}{reason}: {v.description}")
    return lines


def create_ticket(stub, request, args):
    """CreateTicket, retried on UNAVAILABLE with the very same request (intake is idempotent)."""
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    delay = 0.5
    for attempt in range(args.retries + 1):
        try:
            return stub.CreateTicket(request, metadata=metadata, timeout=args.timeout)
        except grpc.RpcError as error:
            if error.code() not in RETRYABLE or attempt == args.retries:
                raise
            print(f"file_ticket.py: {error.code().name}, retrying in {delay:.1f} s", file=sys.stderr)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def main(argv=None):
    args = parse_args(argv)
    if not args.external_ref:
        # Stands in for the hotline's own work-order number; printed so a retry can reuse it.
        args.external_ref = "PY-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S%f")
    request = build_request(args)
    with open_channel(args) as channel:
        stub = ticket_pb2_grpc.TicketServiceStub(channel)
        try:
            reply = create_ticket(stub, request, args)
        except grpc.RpcError as error:
            print(f"file_ticket.py: {error.code().name}: {error.details()}", file=sys.stderr)
            for line in field_violations(error):
                print(line, file=sys.stderr)
            return 1
    ticket = reply.ticket
    # `created` is false for a repeat of a work order filed before: the reply is that ticket.
    print(
        f"ticket {ticket.id} created={'true' if reply.created else 'false'}"
        f" external_ref={ticket.external_ref}"
        f" status={ticket_pb2.Status.Name(ticket.status)}"
        f" level={ticket_pb2.Level.Name(ticket.level)}"
        f" lead_unit={ticket.lead_unit or '-'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
