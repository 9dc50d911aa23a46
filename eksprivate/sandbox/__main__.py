"""`python -m eksprivate.sandbox serve ...`: run a sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from eksprivate.sandbox.core.clock import Timing
from eksprivate.sandbox.faults import FaultConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eksprivate.sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the AWS stand-in on a loopback port")
    serve.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=Timing().time_scale,
        help="multiplier for real-world durations (default %(default)s)",
    )
    serve.add_argument("--throttle-rate", type=float, default=0.0, help="share of requests throttled")
    serve.add_argument("--unavailable-rate", type=float, default=0.0, help="share of requests given 503")
    serve.add_argument("--seed", type=int, default=None, help="seed for the fault RNG")
    serve.add_argument("--log-requests", action="store_true", help="log one line per request")
    return parser


def serve(args: argparse.Namespace) -> int:
    from eksprivate.sandbox.server import SandboxServer

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    sandbox = SandboxServer(
        host=args.host,
        port=args.port,
        timing=Timing(time_scale=args.time_scale),
        faults=FaultConfig(args.throttle_rate, args.unavailable_rate, args.seed),
        log_requests=args.log_requests,
    )
    with sandbox:
        print(f"sandbox listening on {sandbox.url} (time scale {args.time_scale})", flush=True)
        # Event.wait with a timeout, so signals are handled promptly on every platform.
        while not stopping.wait(1.0):
            pass
        print("sandbox stopping", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
