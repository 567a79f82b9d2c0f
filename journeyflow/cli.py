"""The ``journeyflow`` command: replay, generate, run, evaluate.

Errors an operator can fix (a bad setting, a missing file, an unreachable
broker) end with one line on stderr and exit status 2, never a bare stack
trace.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from journeyflow.errors import JourneyflowError
from journeyflow.logs import setup_logging

__all__ = ["main"]


def _settings(args: argparse.Namespace, **overrides: dict[str, Any]) -> Any:
    from config.settings import load_settings

    return load_settings(args.config, overrides={k: v for k, v in overrides.items() if v})


def _replay(args: argparse.Namespace) -> int:
    from flows.replay import format_summary, replay

    run = {"workers": args.workers} if args.workers else {}
    settings = _settings(args, run=run)
    summary = replay(
        [Path(p) for p in args.inputs],
        Path(args.out),
        settings,
        workers=settings.run.workers,
        show_progress=not args.quiet,
    )
    print(format_summary(summary, Path(args.out)))
    return 0 if summary["accounted"] else 1


def _generate(args: argparse.Namespace) -> int:
    from journeyflow import generator

    return generator.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="journeyflow",
        description="Real-time personalization engine for customer journeys.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    commands = parser.add_subparsers(dest="command", required=True)

    replay = commands.add_parser(
        "replay",
        help="replay recorded event files (JSON Lines, optionally gzip) through the dataflow",
    )
    replay.add_argument("inputs", nargs="+", metavar="INPUT", help="event files (.jsonl, .jsonl.gz)")
    replay.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    replay.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    replay.add_argument("--workers", type=int, metavar="N", help="worker threads (default 1)")
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    replay.set_defaults(func=_replay)

    generate = commands.add_parser("generate", help="write synthetic events and their ground truth")
    from journeyflow import generator

    generator.add_arguments(generate)
    generate.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except (JourneyflowError, FileNotFoundError) as ex:
        print(f"journeyflow: error: {ex}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("journeyflow").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
