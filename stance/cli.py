"""The `stance` command: one subcommand per pipeline stage.

Every Snakemake rule calls exactly one of these commands, so each stage can also be run,
debugged and benchmarked by hand. Stage modules are imported only when their command
runs: `stance --help` stays instant and never loads Blender or torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from stance import __version__
from stance.errors import UserError

# subcommand -> (module exposing `add_arguments(parser)`, help). Each action's parser
# sets `run`, the function that parses nothing more and calls the stage's entry point.
STAGES = {
    "config": ("stance.config_cli", "check a config file and print it with defaults filled"),
    "models": ("stance.models_cli", "build the tiny random-weight models of the default config"),
    "render": ("stance.render.cli", "render Kubric clips (physics + Cycles) into clip stores"),
    "depth": ("stance.depth.cli", "Depth-Anything-V2 monocular depth for rendered clips"),
    "cues": ("stance.cues.cli", "Instance Cues from rendered clips or user hints; dz report"),
    "train": ("stance.train.cli", "STANCE fine-tuning: training cache, accelerate training"),
    "generate": ("stance.generate.cli", "sample videos with a trained variant"),
    "evaluate": ("stance.evaluate.cli", "Physics-IQ, FVD and fidelity metrics; results tables"),
    "report": ("stance.report.cli", "dataset card, cue pictures, side-by-side videos"),
    "bench": ("stance.bench", "benchmarks that print figures (render, cues, depth, ...)"),
    "demo": ("stance.demo.cli", "web page: draw cues on a keyframe, generate, download hints"),
}

EPILOG = """\
The whole pipeline runs through Snakemake, which calls these commands:
  snakemake --cores 2                                   # tiny default config
  snakemake --cores 64 --configfile=configs/paper.yaml  # the paper's settings
Run a stage by hand, e.g.:
  stance render clip --split test --seed 2000000 --out /tmp/clip
  stance config check configs/paper.yaml
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stance",
        description="STANCE pipeline: synthetic Kubric data -> instance cues -> "
        "CogVideoX fine-tuning -> Physics-IQ tables.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stance {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in STAGES.items():
        stage = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(stage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return args.run(args) or 0
    except UserError as exc:
        print(f"stance {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
