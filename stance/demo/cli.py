"""`stance demo`: start the cue editor and generation page on a local port."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from stance import config

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=_run)
    parser.add_argument(
        "--trained",
        type=Path,
        help="trained variant folder (default: the variant the tables report as STANCE, "
        "evaluate.stance_variant)",
    )
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument(
        "--memory-profile",
        choices=config.choices("generate", "memory_profile"),
        help="default: generate.memory_profile of the model's config (peak memory: "
        "docs/benchmarks.md)",
    )


def _run(args: argparse.Namespace) -> None:
    from stance.demo import server
    from stance.demo.model import find_model

    model = find_model(args.results, args.trained)
    if args.memory_profile:
        generate = dataclasses.replace(model.cfg.generate, memory_profile=args.memory_profile)
        model.cfg = dataclasses.replace(model.cfg, generate=generate)
    app = server.App(model, args.results)
    httpd = server.serve(app, args.host, args.port)
    host, port = httpd.server_address[:2]
    print(f"STANCE demo on http://{host}:{port}/ with {model.describe()}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        httpd.shutdown()
