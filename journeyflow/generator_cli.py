"""The command line of ``journeyflow generate``: its options and what it prints.

The generator itself is :mod:`journeyflow.generator`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from config.loading import DEFAULT_CONFIG
from journeyflow import response
from journeyflow.cli_checks import file_in_the_way
from journeyflow.errors import ConfigError
from journeyflow.generator import GeneratorConfig, generate
from journeyflow.generator_personas import MIXES

__all__ = ["DEFAULT_RULES", "add_arguments", "run"]

#: The rules file ``--respond`` reads by default: the shipped one.
DEFAULT_RULES = DEFAULT_CONFIG.with_name("rules.toml")


def _default_truth_path(out: Path) -> Path:
    """Return where the truth goes when none is named: ``events.jsonl.gz`` -> ``events.truth.jsonl``."""
    name = out.name
    for suffix in (".jsonl.gz", ".jsonl", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.truth.jsonl")


def _parse_start(text: str) -> datetime:
    """Parse a ``YYYY-MM-DD`` date as midnight UTC."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError as ex:
        msg = f"start must be a date like 2026-08-01; got {text!r} instead"
        raise ConfigError(msg) from ex
    return day.replace(tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``journeyflow generate`` to ``parser``; :func:`run` reads them."""
    defaults = GeneratorConfig()
    parser.add_argument("--users", type=int, default=defaults.users, help="number of users (default: %(default)s)")
    parser.add_argument("--days", type=int, default=defaults.days, help="days of events to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/events.jsonl"),
        help="events file, gzip-compressed if it ends in .gz (default: %(default)s)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        default=None,
        help="ground truth file (default: next to --out, as <name>.truth.jsonl)",
    )
    parser.add_argument(
        "--start",
        default=defaults.start.strftime("%Y-%m-%d"),
        help="first day of the period, YYYY-MM-DD in UTC (default: %(default)s)",
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=defaults.horizon_days,
        help="days after the period simulated for the ground truth only (default: %(default)s)",
    )
    parser.add_argument(
        "--duplicates",
        type=float,
        default=defaults.duplicate_share,
        help="share of events sent twice (default: %(default)s)",
    )
    parser.add_argument(
        "--malformed",
        type=float,
        default=defaults.malformed_share,
        help="malformed lines per event (default: %(default)s)",
    )
    parser.add_argument(
        "--out-of-order",
        type=float,
        default=defaults.out_of_order_share,
        help="share of events written up to 5 minutes late (default: %(default)s)",
    )
    parser.add_argument(
        "--anonymous",
        type=float,
        default=defaults.anonymous_share,
        help="share of users who browse anonymously before they log in (default: %(default)s)",
    )
    parser.add_argument(
        "--never-identify",
        type=float,
        default=defaults.never_identify_share,
        help="share of those anonymous users who never log in (default: %(default)s)",
    )
    parser.add_argument(
        "--second-device",
        type=float,
        default=defaults.second_device_share,
        help="share of identified users who also browse from a second device (default: %(default)s)",
    )
    parser.add_argument(
        "--mix",
        choices=MIXES,
        default=defaults.mix,
        help="persona mix (default: %(default)s)",
    )
    parser.add_argument(
        "--late",
        type=float,
        default=defaults.late_share,
        help="share of events written 1-3 hours late (default: %(default)s)",
    )
    parser.add_argument(
        "--respond",
        action="append",
        default=[],
        metavar="RULE[:VARIANT]=CHANCE",
        help="simulate treated customers' response to a cart-abandonment rule: a purchase (RULE=CHANCE) "
        "or a click on a variant's e-mail (RULE:VARIANT=CHANCE); repeatable (default: none)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="rules file giving the holdout shares and variants for --respond (default: the shipped rules)",
    )


def _check_file_paths(out: Path, truth: Path) -> None:
    """Refuse a folder given where the events or the truth file goes, or a file in its path (before anything is written)."""
    if out.is_dir():
        msg = f"--out {out} is a folder; give the events file's name (e.g. {out / 'events.jsonl.gz'})"
        raise ConfigError(msg)
    if truth.is_dir():
        msg = f"--truth {truth} is a folder; give the truth file's name"
        raise ConfigError(msg)
    for flag, path in (("--out", out), ("--truth", truth)):
        blocker = file_in_the_way(path.parent)
        if blocker is not None:
            msg = f"{flag} {path} cannot be written: {blocker} is a file, not a folder"
            raise ConfigError(msg)


def run(args: argparse.Namespace) -> int:
    """Generate the data set described by ``args``; return the exit status (2 on bad options)."""
    try:
        rules = args.rules if args.rules is not None else DEFAULT_RULES
        if rules.is_dir():
            msg = f"--rules {rules} is a folder; give the rules file's name"
            raise ConfigError(msg)
        responses = response.parse_responses(args.respond, rules)
        config = GeneratorConfig(
            users=args.users,
            days=args.days,
            seed=args.seed,
            start=_parse_start(args.start),
            horizon_days=args.horizon_days,
            duplicate_share=args.duplicates,
            malformed_share=args.malformed,
            out_of_order_share=args.out_of_order,
            late_share=args.late,
            anonymous_share=args.anonymous,
            never_identify_share=args.never_identify,
            second_device_share=args.second_device,
            responses=responses,
            mix=args.mix,
        )
        truth = args.truth if args.truth is not None else _default_truth_path(args.out)
        _check_file_paths(args.out, truth)
    except ConfigError as ex:
        print(f"journeyflow generate: {ex}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    stats = generate(config, args.out, truth)
    elapsed = time.perf_counter() - began
    print(
        f"wrote {stats.events} events for {stats.users} users in {stats.sessions} sessions "
        f"({stats.lines} lines: {stats.duplicates} duplicates, {stats.malformed} malformed, "
        f"{stats.out_of_order} out of order, {stats.late} late) to {args.out} "
        f"and the truth to {truth} in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return 0
