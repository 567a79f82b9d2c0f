"""The ``journeyflow`` command's arguments: every command, its options and their help."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

__all__ = ["build_parser"]


def build_parser(handlers: Mapping[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """Return the parser; each command's ``func`` is its entry of ``handlers`` (by command name)."""
    parser = argparse.ArgumentParser(
        prog="journeyflow",
        description="Real-time personalization engine for customer journeys.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    # `-v` after the subcommand too (`journeyflow replay -v ...`); SUPPRESS keeps
    # the top-level count when the subcommand is given none.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    commands = parser.add_subparsers(dest="command", required=True)

    replay = commands.add_parser(
        "replay",
        parents=[verbose],
        help="replay recorded event files (JSON Lines, optionally gzip) through the dataflow",
    )
    replay.add_argument("inputs", nargs="+", metavar="INPUT", help="event files (.jsonl, .jsonl.gz)")
    replay.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    replay.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    replay.add_argument("--workers", type=int, metavar="N", help="worker threads (default 1)")
    replay.add_argument(
        "--processes", type=int, default=1, metavar="N",
        help="run as a cluster of N processes on this machine (default 1; see flows/processes.py)",
    )
    replay.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    replay.add_argument("--redis", metavar="URL", help="also write profiles to Redis (rebuild the store)")
    replay.add_argument("--truth", metavar="FILE", help="generator ground truth: judge the models in summary.json")
    replay.set_defaults(func=handlers["replay"])

    report = commands.add_parser(
        "report", parents=[verbose], help="rebuild report.html (plots of a replay) from a replay's output folder"
    )
    report.add_argument("out_dir", metavar="OUT_DIR", help="a replay's --out folder (with summary.json)")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    report.set_defaults(func=handlers["report"])

    run = commands.add_parser("run", parents=[verbose], help="run the live worker (Kafka in and out, Redis profiles)")
    run.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    run.add_argument("--workers", type=int, metavar="N", help="worker threads in this process")
    run.add_argument("--process-id", type=int, metavar="I", help="this process's index in a cluster (with --addresses)")
    run.add_argument(
        "--addresses", metavar="H:P;H:P", help='every process\'s host:port, ";"-separated, in process-id order'
    )
    run.set_defaults(func=handlers["run"])

    topics = commands.add_parser("topics", parents=[verbose], help="manage the Kafka topics the live worker needs")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True)
    create = topic_commands.add_parser(
        "create", parents=[verbose], help="create every topic the worker reads or writes with the configured rules, if missing"
    )
    create.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    create.add_argument("--partitions", type=int, metavar="N", help="partitions of each new topic (default [kafka] partitions)")
    create.set_defaults(func=handlers["topics"])

    evaluate = commands.add_parser(
        "evaluate", parents=[verbose], help="replay data sets with a known future and judge the models next to naive baselines"
    )
    evaluate.add_argument("--out", default="out/evaluate", metavar="DIR", help="working folder (default out/evaluate)")
    evaluate.add_argument("--regimes", metavar="A,B", help="only these regimes (default: all; see the README)")
    evaluate.add_argument("--big", action="store_true", help="the regimes at ten times the users (slow)")
    evaluate.add_argument("--users", type=int, help="one generated regime instead: users")
    evaluate.add_argument("--days", type=int, help="... days of history")
    evaluate.add_argument("--seed", type=int, help="... generator seed")
    from journeyflow.generator_personas import MIXES

    evaluate.add_argument("--mix", choices=MIXES, help="... persona mix")
    evaluate.add_argument("--events", metavar="FILE", help="judge these events instead (with --truth)")
    evaluate.add_argument("--truth", metavar="FILE", help="ground truth of --events (the generator's format)")
    evaluate.add_argument("--cache", metavar="DIR", help="where public data sets are downloaded (default ~/.cache/journeyflow)")
    evaluate.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    evaluate.add_argument("--workers", type=int, metavar="N", help="worker threads (default 1)")
    evaluate.add_argument(
        "--respond",
        action="append",
        default=[],
        metavar="RULE[:VARIANT]=CHANCE",
        help="simulate responses to a cart-abandonment rule (see generate) and judge the measured uplift",
    )
    evaluate.add_argument(
        "--recommendations", action="store_true",
        help="judge the recommender on held-out next clicks instead (generated: --users 5000 --days 30 --seed 11 "
        "unless given; --users 0: none)",
    )
    evaluate.add_argument(
        "--clicks", nargs="*", default=[], metavar="FILE",
        help="with --recommendations: click logs (CSV: session, item, time) or events (.jsonl) to judge on too",
    )
    evaluate.add_argument(
        "--test-share", type=float, default=0.1, help="with --recommendations: last share of time to test on (0.1)"
    )
    evaluate.set_defaults(func=handlers["evaluate"])

    show = commands.add_parser("settings", parents=[verbose], help="print the effective settings (defaults, file, environment), secrets masked")
    show.add_argument("--config", metavar="FILE", help="settings file overriding the defaults")
    show.set_defaults(func=handlers["settings"])

    generate = commands.add_parser("generate", parents=[verbose], help="write synthetic events and their ground truth")
    from journeyflow import generator_cli

    generator_cli.add_arguments(generate)
    generate.set_defaults(func=handlers["generate"])
    return parser
