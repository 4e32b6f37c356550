"""``tidegate simulate``: run the LLM simulator as a process until SIGINT or SIGTERM.

Flags map one-to-one onto ``SimulatorConfig`` and go through the same decoder, so ``--ttft 50ms``
and a bad ``--fault 500=2`` are checked and reported exactly like a config file would be.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import msgspec

from ..config.simulator import FAULT_KINDS, SimulatorConfig, simulator_config_from

__all__ = ["build_parser", "config_from_args", "run"]


def _fault(text: str) -> tuple[str, float]:
    kind, sep, rate = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return kind.strip(), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Expected KIND=RATE like `500=0.1` (kinds: {', '.join(FAULT_KINDS)}), got `{text}`"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidegate simulate",
        description="Serve a simulated OpenAI-compatible LLM (not a model) for tests and benchmarks.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8001, help="0 picks a free port (default: 8001)")
    add("--ttft", help="mean time to first token, e.g. 50ms (default: 0)")
    add("--ttft-jitter", help="spread of the time to first token, e.g. 10ms")
    add("--ttft-dist", choices=["fixed", "uniform", "lognormal"])
    add("--tps", type=float, help="tokens per second after the first; 0 = unpaced")
    add("--tokens", type=int, help="natural completion length in tokens (default: 24)")
    add("--fault", type=_fault, action="append", default=[], metavar="KIND=RATE",
        help=f"inject a fault at a rate; kinds: {', '.join(FAULT_KINDS)}")  # fmt: skip
    add("--fail-all", action="store_true", help="fail every model request (see --fail-kind)")
    add("--fail-kind", choices=list(FAULT_KINDS))
    add("--fault-after", type=int, help="content chunks before a stream reset/malformed fault")
    add("--retry-after", type=float, help="Retry-After seconds of a simulated 429")
    add("--seed", type=int)
    add("--embedding-dim", type=int)
    add("--model", action="append", dest="models", metavar="NAME",
        help="a model name listed by /v1/models (repeatable)")  # fmt: skip
    return parser


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The config the flags describe; raises ``msgspec.ValidationError`` naming the bad field."""
    values: dict[str, Any] = {
        "ttft": args.ttft,
        "ttft_jitter": args.ttft_jitter,
        "ttft_dist": args.ttft_dist,
        "tokens_per_second": args.tps,
        "tokens": args.tokens,
        "fail_kind": args.fail_kind,
        "fault_after": args.fault_after,
        "retry_after": args.retry_after,
        "seed": args.seed,
        "embedding_dim": args.embedding_dim,
        "models": args.models,
    }
    data = {key: value for key, value in values.items() if value is not None}
    if args.fault:
        data["faults"] = dict(args.fault)
    if args.fail_all:
        data["fail_all"] = True
    return simulator_config_from(data)


async def _serve(config: SimulatorConfig, host: str, port: int) -> None:
    from .simulator import Simulator

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    try:
        await sim.start(host, port)
        print(f"tidegate LLM simulator (not a model) listening on {sim.url}", flush=True)
        await stop.wait()
    finally:
        await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _runner() -> asyncio.Runner:
    try:
        import uvloop  # the `server` extra; about twice the pure-asyncio throughput
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except msgspec.ValidationError as exc:
        print(f"tidegate simulate: {exc}", file=sys.stderr)
        return 2
    with _runner() as runner:
        try:
            runner.run(_serve(config, args.host, args.port))
        except OSError as exc:
            print(
                f"tidegate simulate: cannot listen on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
            )
            return 1
    return 0
