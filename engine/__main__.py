"""Command line: ``python -m engine train RUN.yaml``."""

from __future__ import annotations

import argparse
import sys

from engine.config import ConfigError, RunConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="TuneBoard engine: the same code paths the web UI runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="run a training run described by a run.yaml file")
    p_train.add_argument("config", help="path to run.yaml (its folder becomes the run directory unless train.output_dir is set)")
    p_check = sub.add_parser("check", help="validate a run.yaml file and print it back")
    p_check.add_argument("config")
    args = parser.parse_args(argv)

    try:
        cfg = RunConfig.load(args.config)
    except FileNotFoundError:
        print(f"error: config file {args.config!r} does not exist", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(cfg.to_yaml(), end="")
        return 0
    from engine.train import run_training  # noqa: PLC0415 - imports torch

    return run_training(args.config)


if __name__ == "__main__":
    sys.exit(main())
