"""The ``journeyflow`` command: replay, report, generate, run, topics, evaluate.

Errors an operator can fix (a bad setting, a missing file, a file where a
folder belongs, an unreachable broker) end with one line on stderr and exit
status 2, never a bare stack trace (``-vv`` logs it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from journeyflow.cli_checks import check_cluster, check_out_dir, check_replay, path_error
from journeyflow.cli_parser import build_parser
from journeyflow.errors import ConfigError, JourneyflowError
from journeyflow.logs import setup_logging

__all__ = ["main"]


def _settings(args: argparse.Namespace, **overrides: dict[str, Any]) -> Any:
    from config.settings import load_settings

    settings = load_settings(args.config, overrides={k: v for k, v in overrides.items() if v})
    setup_logging(getattr(args, "verbose", 0), settings.logging.level)
    return settings


def _replay(args: argparse.Namespace) -> int:
    from flows.replay import replay
    from flows.replay_outputs import format_summary

    # `is not None`: a 0 given must reach the settings' check, not read as "not given".
    run = {"workers": args.workers} if args.workers is not None else {}
    redis = {"url": args.redis} if args.redis else {}
    settings = _settings(args, run=run, redis=redis)
    check_replay(args.processes, args.truth)
    check_out_dir("--out", Path(args.out))
    from flows.files import check_inputs

    check_inputs([Path(p) for p in args.inputs])  # before the output folder is made
    from flows.journey import read_rules

    read_rules(settings)  # so is a rules file that cannot be read (each process reads it again: 15 ms)
    store = None
    if args.redis:
        from flows.redis_sink import StoreSink
        from state.redis_store import RedisStore

        RedisStore.from_settings(settings.redis).close()  # fail fast, in one line
        from journeyflow.outages import RetryPolicy

        # Redis lost mid-replay is waited for as in the live worker ([outages]).
        policy = RetryPolicy.from_settings(settings.outages)
        store = StoreSink(lambda: RedisStore.from_settings(settings.redis, policy=policy))
    summary = replay(
        [Path(p) for p in args.inputs],
        Path(args.out),
        settings,
        workers=settings.run.workers,
        processes=args.processes,
        show_progress=not args.quiet,
        store=store,
        truth=Path(args.truth) if args.truth else None,
    )
    print(format_summary(summary, Path(args.out)))
    print(f"report: {Path(args.out) / summary['report']['file']} (built in {summary['report']['elapsed_s']:.2f} s)")
    from config.checks import check_salt

    # Once, after the run: an error before it stays the one line on stderr.
    check_salt(settings.privacy, live=False)
    return 0 if summary["accounted"] else 1


def _report(args: argparse.Namespace) -> int:
    from journeyflow.report import write_report

    result = write_report(Path(args.out_dir), show_progress=not args.quiet)
    print(f"report: {result.path} (built in {result.elapsed_s:.2f} s)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from flows.live import run

    settings = _settings(args, run={"workers": args.workers} if args.workers is not None else {})
    addresses = args.addresses.split(";") if args.addresses else None
    if (args.process_id is None) != (addresses is None):
        print("journeyflow: error: --process-id and --addresses go together", file=sys.stderr)
        return 2
    if addresses is not None:
        check_cluster(args.process_id, addresses)
    run(settings, workers=settings.run.workers, process_id=args.process_id, addresses=addresses)
    return 0


def _topics(args: argparse.Namespace) -> int:
    from flows.kafka import ensure_topics
    from flows.journey import read_rules
    from flows.live import required_topics

    settings = _settings(args, kafka={"partitions": args.partitions} if args.partitions is not None else {})
    names = required_topics(settings, read_rules(settings))
    kafka = settings.kafka
    from journeyflow.clients import kafka_options

    created = ensure_topics(
        kafka.brokers, {name: kafka.partitions for name in names}, kafka.connect_timeout_s, kafka.client_id,
        kafka_options(kafka),
    )
    existing = [name for name in names if name not in created]
    if created:
        print(f"created {len(created)} topic(s) with {kafka.partitions} partition(s) on {kafka.brokers}: {', '.join(created)}")
    if existing:
        print(f"already there (left as they are): {', '.join(existing)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if args.recommendations:
        return _evaluate_recommendations(args)
    import dataclasses
    import os

    from journeyflow.evaluate import BIG_REGIMES, REGIMES, Regime, evaluate, format_report

    settings = _settings(args, run={"workers": args.workers} if args.workers is not None else {})
    regimes = BIG_REGIMES if args.big else REGIMES
    if args.regimes:
        known = {r.name: r for r in (*REGIMES, *BIG_REGIMES)}
        unknown = [n for n in args.regimes.split(",") if n not in known]
        if unknown:
            print(f"journeyflow: error: --regimes must name {', '.join(known)}; got {', '.join(unknown)} instead", file=sys.stderr)
            return 2
        regimes = tuple(known[n] for n in args.regimes.split(","))
    custom = {k: v for k, v in (("users", args.users), ("days", args.days), ("seed", args.seed), ("mix", args.mix)) if v is not None}
    if custom:
        regimes = (dataclasses.replace(Regime("custom"), **custom),)
    check_out_dir("--out", Path(args.out))
    if bool(args.events) != bool(args.truth):
        print("journeyflow: error: --events and --truth go together; got only one of them", file=sys.stderr)
        return 2
    cache = Path(args.cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "journeyflow")
    files = (Path(args.events), Path(args.truth)) if args.events else None
    report = evaluate(Path(args.out), settings, regimes, cache=cache, files=files, respond=tuple(args.respond))
    print(format_report(report))
    return 0


def _show_settings(args: argparse.Namespace) -> int:
    """Print the effective settings as TOML, secrets masked (``***``)."""
    import orjson

    from config.settings import masked

    for section, values in masked(_settings(args)).items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"{key} = {orjson.dumps(value).decode()}")
        print()
    return 0


def _generate(args: argparse.Namespace) -> int:
    from journeyflow import generator_cli

    return generator_cli.run(args)


def _evaluate_recommendations(args: argparse.Namespace) -> int:
    from flows.recommend import recommend_config
    from journeyflow.recs_eval import generated_regime, run

    settings = _settings(args, recommendations={"enabled": True})
    check_out_dir("--out", Path(args.out))
    if not 0 < args.test_share < 1:
        msg = f"--test-share must be between 0 and 1; got {args.test_share} instead"
        raise ConfigError(msg)
    cfg = recommend_config(settings)
    assert cfg is not None
    users, days, seed = generated_regime(args.users, args.days, args.seed)
    if users < 0 or days < 1:
        msg = f"--users must be >= 0 and --days >= 1; got {users} and {days} instead"
        raise ConfigError(msg)
    run(Path(args.out), cfg, clicks=[Path(p) for p in args.clicks], users=users, days=days, seed=seed,
        test_share=args.test_share)
    return 0


def _parser() -> argparse.ArgumentParser:
    return build_parser(
        {
            "replay": _replay,
            "report": _report,
            "run": _run,
            "topics": _topics,
            "evaluate": _evaluate,
            "settings": _show_settings,
            "generate": _generate,
        }
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except JourneyflowError as ex:
        print(f"journeyflow: error: {ex}", file=sys.stderr)
        return 2
    except OSError as ex:
        # A path the user gave that cannot be read or written (missing, a file
        # where a folder belongs, no permission): one line naming it.
        logging.getLogger("journeyflow").debug("path error", exc_info=True)
        print(f"journeyflow: error: {path_error(ex)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        logging.getLogger("journeyflow").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
