"""`spapi-emulator`: run the SP-API emulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from emulator.server import EmulatorOptions, EmulatorServer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spapi-emulator", description="A faithful local Selling Partner API emulator.")
    p.add_argument("--port", type=int, required=True, help="port to listen on (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--state-dir", help="persist state here; a restart resumes from it")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed-from", metavar="DATA_DIR", help="seller data directory to start from")
    seed.add_argument("--synthetic", type=int, metavar="N", help="start from a synthetic seller with N SKUs")
    p.add_argument("--channels", help="channels file (default: $SALES_CHANNEL_CONFIG or channels.yaml)")
    p.add_argument("--rate-scale", type=float, default=1.0, help="multiply refill rates (burst unchanged); 0 = off")
    p.add_argument("--time-scale", type=float, default=1.0, help="emulated seconds per real second")
    p.add_argument(
        "--feed-step-seconds",
        type=float,
        default=2.0,
        help="emulated seconds a feed spends IN_QUEUE and again IN_PROGRESS",
    )
    p.add_argument(
        "--world-step-seconds",
        type=float,
        default=0.0,
        help="emulated seconds between world steps (competitor moves, orders); 0 = off",
    )
    p.add_argument(
        "--requests-per-minute",
        type=int,
        default=0,
        help="module cap: requests per selling partner in any 60 emulated seconds (Amazon: 30); 0 = off",
    )
    p.add_argument(
        "--requests-per-day",
        type=int,
        default=0,
        help="module cap: requests per selling partner in any 24 emulated hours (Amazon: 36000); 0 = off",
    )
    p.add_argument(
        "--competitor-moves-per-minute",
        type=float,
        default=0.0,
        help="competitor price moves per emulated minute, by a background thread; 0 = none",
    )
    p.add_argument(
        "--notified-share",
        type=float,
        default=1.0,
        help="share of (marketplace, ASIN) pairs that get ANY_OFFER_CHANGED (the rest stay silent); default 1",
    )
    p.add_argument(
        "--market",
        action="store_true",
        help="run the market model: competitor strategies, the Buy Box award, demand and orders (emulator/README.md)",
    )
    p.add_argument("--gated-product-types", default="WATCH", help="comma-separated product types needing approval")
    p.add_argument("--legacy-flat-files", action="store_true", help="process removed flat-file listing feeds")
    p.add_argument("--verify-sigv4", action="store_true", help="require a valid AWS SigV4 signature")
    p.add_argument("--sqs-endpoint", help="SQS endpoint (e.g. a moto server) for notification delivery")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = EmulatorOptions(
        host=args.host,
        port=args.port,
        state_dir=args.state_dir,
        seed_from=args.seed_from,
        channels_file=args.channels or os.environ.get("SALES_CHANNEL_CONFIG"),
        synthetic=args.synthetic,
        rate_scale=args.rate_scale,
        time_scale=args.time_scale,
        legacy_flat_files=args.legacy_flat_files,
        verify_sigv4=args.verify_sigv4,
        sqs_endpoint=args.sqs_endpoint,
        feed_step_seconds=args.feed_step_seconds,
        world_step_seconds=args.world_step_seconds,
        requests_per_minute=args.requests_per_minute,
        requests_per_day=args.requests_per_day,
        competitor_moves_per_minute=args.competitor_moves_per_minute,
        notified_share=args.notified_share,
        market=args.market,
        gated_product_types=tuple(t.strip() for t in args.gated_product_types.split(",") if t.strip()),
        seed=args.seed,
    )
    server = EmulatorServer(options)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"spapi-emulator listening on {server.url}", flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
