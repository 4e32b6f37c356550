"""Serve a WSGI app with waitress, stopping cleanly on SIGTERM (``python -m tidegate_conformance.wsgi``).

Why waitress: it is a production WSGI server (a bounded pool of worker threads, unlike werkzeug's
thread-per-request dev server), pure Python, streams an app's chunks as they come (``send_bytes``
is 1) and bounds its own output buffer (``outbuf_high_watermark``), so a slow client blocks the
worker thread, which in turn holds back tidegate's bounded stream queue. ``waitress-serve`` only
stops on SIGINT; servers under process managers get SIGTERM, so this runner maps SIGTERM to the
same clean stop: worker threads finish, then interpreter exit runs the Flask extension's
``atexit`` close (gateway drained, sessions closed).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any


def load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"Expected `module:attribute`, got `{target}`")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidegate_conformance.wsgi")
    parser.add_argument("app", help="module:attribute of the WSGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" chatter
    sys.path.insert(0, ".")
    app = load(args.app)
    from waitress import create_server

    server = create_server(app, host=args.host, port=args.port, threads=args.threads)
    signal.signal(signal.SIGTERM, _stop)
    server.run()  # returns on SystemExit / KeyboardInterrupt after stopping its worker threads
    return 0


if __name__ == "__main__":
    sys.exit(main())
