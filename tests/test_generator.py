"""Tests for the synthetic click-event generator: contract, noise, ground truth, determinism."""

from __future__ import annotations

import argparse
import gzip
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from journeyflow.errors import ConfigError
from journeyflow.event_parser import EventParser
from journeyflow.events import EVENT_TYPES, SESSION_EXCLUDED_TYPES, DeadLetter, parse_ts
from journeyflow.generator import GeneratorConfig, GeneratorStats, generate
from journeyflow.generator_cli import add_arguments, run

_CHANNELS = {"web", "app", "email", "pos"}
_RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_SESSION_GAP_MS = 30 * 60 * 1000
_MINUTE_MS = 60 * 1000


@dataclass(frozen=True)
class _Dataset:
    """One generated data set, parsed."""

    config: GeneratorConfig
    stats: GeneratorStats
    raw: bytes
    lines: list[bytes]
    events: list[tuple[int, dict]]  # (line number, event) of every valid line, duplicates included
    invalid: list[tuple[bytes, str]]  # (line, reason)
    truth: dict[str, dict]


def _ts_ms(value: object) -> int:
    """Return an event's ts as epoch ms; strings must have millisecond precision and a Z."""
    if isinstance(value, str) and not _RFC3339_MS.fullmatch(value):
        msg = f"not RFC 3339 UTC with milliseconds: {value!r}"
        raise ValueError(msg)
    return parse_ts(value)


def _problem(event: object) -> str | None:
    """Return why ``event`` breaks the input contract, or None when it is valid."""
    if not isinstance(event, dict):
        return "not an object"
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 128:
        return "bad event_id"
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return "bad type"
    user_id, anonymous_id = event.get("user_id"), event.get("anonymous_id")
    if user_id is None and anonymous_id is None:
        return "no id"
    if user_id is not None and (not isinstance(user_id, str) or not 1 <= len(user_id) <= 256):
        return "bad user_id"
    if kind in ("login", "identify") and (user_id is None or anonymous_id is None):
        return "login without both ids"
    if "ts" not in event:
        return "missing ts"
    try:
        _ts_ms(event["ts"])
    except (TypeError, ValueError):
        return "bad ts"
    props = event.get("properties", {})
    context = event.get("context", {})
    if context.get("channel") not in _CHANNELS:
        return "bad channel"
    if kind in ("product_view", "add_to_cart", "remove_from_cart") and not str(props.get("product_id", "")).startswith(
        "sku-"
    ):
        return "no product_id"
    if kind == "purchase":
        if not props.get("order_id") or not isinstance(props.get("revenue"), float) or props["revenue"] < 0:
            return "bad purchase"
        items_total = sum(item["price"] * item["quantity"] for item in props["items"])
        if abs(items_total - props["revenue"]) > 0.005 or props.get("currency") != "EUR":
            return "revenue is not the sum of the items"
    if kind == "consent":
        consent = context.get("consent", {})
        if not isinstance(consent.get("personalization"), bool) or not isinstance(consent.get("marketing"), bool):
            return "bad consent"
    return None


def _load(config: GeneratorConfig, out: Path, truth: Path) -> _Dataset:
    """Generate ``config`` and parse what was written."""
    stats = generate(config, out, truth)
    raw = out.read_bytes()
    lines = raw.split(b"\n")
    assert lines[-1] == b"", "the file ends with a newline"
    lines = lines[:-1]
    events: list[tuple[int, dict]] = []
    invalid: list[tuple[bytes, str]] = []
    for number, line in enumerate(lines):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            invalid.append((line, "not JSON"))
            continue
        reason = _problem(event)
        if reason is None:
            events.append((number, event))
        else:
            invalid.append((line, reason))
    rows = [orjson.loads(row) for row in truth.read_bytes().splitlines()]
    return _Dataset(config, stats, raw, lines, events, invalid, {row["user_id"]: row for row in rows})


def _by_user(data: _Dataset) -> dict[str, list[dict]]:
    """Return each user's distinct valid events, in ts order."""
    devices = {
        device: uid
        for uid, row in data.truth.items()
        for device in (row["anonymous_id"], row["second_device_id"])
        if device
    }
    seen: set[str] = set()
    users: dict[str, list[dict]] = defaultdict(list)
    for _, event in data.events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        users[event.get("user_id") or devices[event["anonymous_id"]]].append(event)
    for events in users.values():
        events.sort(key=lambda e: _ts_ms(e["ts"]))
    return users


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> _Dataset:
    """The default data set: 1000 users, 30 days."""
    folder = tmp_path_factory.mktemp("default")
    return _load(GeneratorConfig(), folder / "events.jsonl", folder / "events.truth.jsonl")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> _Dataset:
    """A smaller data set with a lot of every kind of noise, opt-outs and erasures."""
    folder = tmp_path_factory.mktemp("noisy")
    config = GeneratorConfig(
        users=300,
        days=20,
        seed=11,
        duplicate_share=0.05,
        malformed_share=0.03,
        out_of_order_share=0.05,
        late_share=0.02,
        anonymous_share=0.3,
        opt_out_share=0.2,
        forget_share=0.1,
    )
    return _load(config, folder / "events.jsonl", folder / "events.truth.jsonl")


def test_default_volume_is_about_50k_events(default: _Dataset) -> None:
    assert 40_000 <= default.stats.events <= 60_000
    assert default.stats.users == 1000
    assert len(default.truth) == 1000
    assert default.stats.sessions == sum(len(row["sessions"]) for row in default.truth.values())
    assert default.stats.lines == len(default.lines)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    generate(config, tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    generate(config, tmp_path / "b.jsonl", tmp_path / "b.truth.jsonl")
    generate(GeneratorConfig(users=60, days=10, seed=8), tmp_path / "c.jsonl", tmp_path / "c.truth.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.truth.jsonl").read_bytes() == (tmp_path / "b.truth.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_skipping_the_truth_leaves_the_events_unchanged(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    with_truth = generate(config, tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    without = generate(config, tmp_path / "b.jsonl")
    assert with_truth == without
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert not (tmp_path / "b.truth.jsonl").exists()


def test_a_user_behaves_the_same_whatever_the_number_of_users(tmp_path: Path) -> None:
    generate(GeneratorConfig(users=20, days=10), tmp_path / "a.jsonl", tmp_path / "a.truth.jsonl")
    generate(GeneratorConfig(users=40, days=10), tmp_path / "b.jsonl", tmp_path / "b.truth.jsonl")
    small = (tmp_path / "a.truth.jsonl").read_bytes().splitlines()
    large = (tmp_path / "b.truth.jsonl").read_bytes().splitlines()
    assert large[:20] == small


def test_gzip_output_holds_the_same_lines(tmp_path: Path) -> None:
    config = GeneratorConfig(users=60, days=10)
    generate(config, tmp_path / "plain.jsonl")
    generate(config, tmp_path / "packed.jsonl.gz")
    generate(config, tmp_path / "again.jsonl.gz")
    packed = (tmp_path / "packed.jsonl.gz").read_bytes()
    assert gzip.decompress(packed) == (tmp_path / "plain.jsonl").read_bytes()
    # No name or time in the gzip header: the compressed bytes are reproducible too.
    assert packed == (tmp_path / "again.jsonl.gz").read_bytes()


def test_valid_lines_follow_the_contract(default: _Dataset) -> None:
    stats = default.stats
    assert len(default.events) == stats.events + stats.duplicates
    assert len(default.invalid) == stats.malformed
    types = Counter(event["type"] for _, event in default.events)
    assert set(types) >= EVENT_TYPES - {"forget"}
    int_ts = sum(isinstance(event["ts"], int) for _, event in default.events)
    assert 0.15 < int_ts / len(default.events) < 0.25
    for _, event in default.events:
        if event["type"] == "purchase":
            assert event["properties"]["items"]
        if event["type"] in ("product_view", "add_to_cart", "remove_from_cart"):
            assert int(event["properties"]["product_id"].removeprefix("sku-")) < 2000


def test_each_user_has_strictly_increasing_event_times(default: _Dataset) -> None:
    for events in _by_user(default).values():
        times = [_ts_ms(e["ts"]) for e in events]
        assert all(earlier < later for earlier, later in zip(times, times[1:]))


def test_a_30_minute_sessioniser_recovers_the_truth_sessions(default: _Dataset) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    for uid, events in _by_user(default).items():
        sessions: list[list[int]] = []
        for event in events:
            if event["type"] in SESSION_EXCLUDED_TYPES:
                continue
            ts = _ts_ms(event["ts"])
            if sessions and ts - sessions[-1][-1] <= _SESSION_GAP_MS:
                sessions[-1].append(ts)
            else:
                sessions.append([ts])
        found = [
            (datetime.fromtimestamp(s[0] / 1000, timezone.utc).strftime(fmt)[:-3] + "Z", len(s)) for s in sessions
        ]
        expected = [(s["start"], s["events"]) for s in default.truth[uid]["sessions"]]
        assert found == expected, uid


def test_truth_sessions_are_apart_short_and_bounded(default: _Dataset) -> None:
    for row in default.truth.values():
        sessions = row["sessions"]
        assert sessions, "every user has a session in the period"
        assert _ts_ms(row["last_event_ts"]) >= _ts_ms(sessions[-1]["end"])
        for session in sessions:
            assert 1 <= session["events"] <= 40
            length = _ts_ms(session["end"]) - _ts_ms(session["start"])
            assert 0 <= length <= 90 * _MINUTE_MS
        for earlier, later in zip(sessions, sessions[1:]):
            assert _ts_ms(later["start"]) - _ts_ms(earlier["end"]) >= 45 * _MINUTE_MS


def test_persona_shares(default: _Dataset) -> None:
    shares = Counter(row["persona"] for row in default.truth.values())
    expected = {
        "loyal_buyer": 0.15,
        "browser": 0.25,
        "cart_abandoner": 0.15,
        "bargain_hunter": 0.15,
        "churner": 0.15,
        "new_visitor": 0.15,
    }
    assert set(shares) == set(expected)
    for persona, share in expected.items():
        assert abs(shares[persona] / len(default.truth) - share) < 0.04, persona


def test_personas_behave_differently(default: _Dataset) -> None:
    per_persona: dict[str, Counter] = defaultdict(Counter)
    users = _by_user(default)
    for uid, row in default.truth.items():
        counts = per_persona[row["persona"]]
        counts["users"] += 1
        counts["sessions"] += len(row["sessions"])
        counts["events"] += len(users[uid])
        for event in users[uid]:
            counts[event["type"]] += 1

    def rate(persona: str, key: str, per: str = "users") -> float:
        return per_persona[persona][key] / per_persona[persona][per]

    assert rate("loyal_buyer", "purchase") > 3 * max(rate(p, "purchase") for p in ("browser", "cart_abandoner"))
    assert rate("browser", "product_view", "sessions") > rate("loyal_buyer", "product_view", "sessions")
    assert rate("cart_abandoner", "add_to_cart", "sessions") > 2 * rate("browser", "add_to_cart", "sessions")
    assert rate("bargain_hunter", "search", "events") > 2 * rate("loyal_buyer", "search", "events")
    assert rate("bargain_hunter", "email_open") > 3 * rate("browser", "email_open")
    assert rate("new_visitor", "sessions") < 3


def test_new_visitors_appear_only_in_the_last_two_weeks(default: _Dataset) -> None:
    cutoff = default.config.start + timedelta(days=default.config.days - 14)
    new_visitors = [row for row in default.truth.values() if row["persona"] == "new_visitor"]
    assert new_visitors
    for row in new_visitors:
        assert _ts_ms(row["sessions"][0]["start"]) >= cutoff.timestamp() * 1000
        assert 1 <= len(row["sessions"]) <= 3


def test_churners_go_quiet_and_never_return(default: _Dataset) -> None:
    end_ms = (default.config.start + timedelta(days=default.config.days)).timestamp() * 1000
    for row in default.truth.values():
        if row["persona"] == "churner":
            assert row["churned"] and not row["returns_in_horizon"]
            assert row["purchases_in_horizon"] == 0 and row["revenue_in_horizon"] == 0
            # They stop at 20-70% of the period, so the last week is always silent.
            assert _ts_ms(row["last_event_ts"]) < end_ms - 7 * 24 * 60 * _MINUTE_MS
        assert row["churned"] is not row["returns_in_horizon"]
    loyal = [row for row in default.truth.values() if row["persona"] == "loyal_buyer"]
    assert sum(row["returns_in_horizon"] for row in loyal) / len(loyal) > 0.85
    assert sum(row["purchases_in_horizon"] for row in loyal) / len(loyal) > 3


def test_noise_shares_roughly_as_configured(noisy: _Dataset) -> None:
    stats, config = noisy.stats, noisy.config
    expected = {
        "duplicates": config.duplicate_share,
        "malformed": config.malformed_share,
        "out_of_order": config.out_of_order_share,
        "late": config.late_share,
    }
    for name, share in expected.items():
        assert abs(getattr(stats, name) / stats.events - share) < 0.35 * share, name
    assert stats.lines == stats.events + stats.duplicates + stats.malformed
    assert len(noisy.invalid) == stats.malformed
    reasons = Counter(reason for _, reason in noisy.invalid)
    assert {"not JSON", "missing ts", "bad event_id", "bad type", "bad purchase", "bad ts", "no product_id"} <= set(
        reasons
    )
    assert any(line == b"" for line, _ in noisy.invalid)


def test_duplicates_repeat_the_exact_line(noisy: _Dataset) -> None:
    lines_by_id: dict[str, list[bytes]] = defaultdict(list)
    for number, event in noisy.events:
        lines_by_id[event["event_id"]].append(noisy.lines[number])
    repeated = [lines for lines in lines_by_id.values() if len(lines) > 1]
    assert len(repeated) == noisy.stats.duplicates
    assert all(len(lines) == 2 and lines[0] == lines[1] for lines in repeated)


def test_the_event_parser_takes_the_valid_lines_and_dead_letters_the_rest(noisy: _Dataset) -> None:
    parser = EventParser(max_event_bytes=1 << 20, personal_fields=("traits.email", "traits.phone"), salt="test")
    results = [parser.parse(line, f"events.jsonl:{n + 1}") for n, line in enumerate(noisy.lines)]
    dead = [result for result in results if isinstance(result, DeadLetter)]
    assert len(results) - len(dead) == noisy.stats.events + noisy.stats.duplicates
    assert len(dead) == noisy.stats.malformed
    assert len({letter.code for letter in dead}) >= 5


def test_lines_are_displaced_only_as_far_as_configured(noisy: _Dataset, tmp_path: Path) -> None:
    def lags(data: _Dataset) -> list[int]:
        latest = 0
        found = []
        for _, event in data.events:
            ts = _ts_ms(event["ts"])
            found.append(max(0, latest - ts))
            latest = max(latest, ts)
        return found

    noisy_lags = lags(noisy)
    displaced = noisy.stats.duplicates + noisy.stats.out_of_order + noisy.stats.late
    behind = sum(lag > 0 for lag in noisy_lags)
    assert 0.3 * displaced < behind <= displaced
    assert max(noisy_lags) <= 3 * 60 * _MINUTE_MS
    assert sum(lag > 10 * _MINUTE_MS for lag in noisy_lags) > 0.5 * noisy.stats.late

    calm = _load(
        GeneratorConfig(users=200, days=10, out_of_order_share=0.05),
        tmp_path / "calm.jsonl",
        tmp_path / "calm.truth.jsonl",
    )
    assert calm.stats.late == 0
    assert 0 < max(lags(calm)) <= 5 * _MINUTE_MS


def _device_journey(events: list[dict], device: str) -> tuple[list[int], list[dict]]:
    """Return the indices of a device's logins among its events, and its events."""
    mine = [e for e in events if e.get("anonymous_id") == device]
    return [i for i, e in enumerate(mine) if e["type"] in ("login", "identify")], mine


def test_anonymous_users_browse_anonymously_until_they_log_in(noisy: _Dataset) -> None:
    users = _by_user(noisy)
    anonymous = [uid for uid, row in noisy.truth.items() if row["anonymous_id"]]
    assert 0.2 < len(anonymous) / len(noisy.truth) < 0.4
    never = [uid for uid in anonymous if not noisy.truth[uid]["identified"]]
    assert 0.15 < len(never) / len(anonymous) < 0.45
    for uid in anonymous:
        logins, events = _device_journey(users[uid], noisy.truth[uid]["anonymous_id"])
        if uid in never:
            # A device that never identifies: anonymous throughout.
            assert logins == [] and all("user_id" not in e for e in events), uid
            continue
        assert len(logins) == 1, uid
        login = logins[0]
        assert login >= 1, "at least one anonymous event comes first"
        assert all("user_id" not in e for e in events[:login])
        assert all(e["user_id"] == uid for e in events[login:])
        assert set(events[login]["traits"]) == {"email", "phone"}


def test_some_customers_also_use_a_second_device(noisy: _Dataset) -> None:
    users = _by_user(noisy)
    second = [uid for uid, row in noisy.truth.items() if row["second_device_id"]]
    assert 0.04 < len(second) / len(noisy.truth) < 0.2
    for uid in second:
        row = noisy.truth[uid]
        assert row["identified"]
        logins, events = _device_journey(users[uid], row["second_device_id"])
        # Anonymous on the new device until it logs in, during its first session; then known.
        assert len(logins) == 1 and logins[0] >= 1, uid
        assert all("user_id" not in e for e in events[: logins[0]])
        assert all(e["user_id"] == uid for e in events[logins[0] :])


def test_opt_outs_and_erasures_are_in_the_events(noisy: _Dataset) -> None:
    users = _by_user(noisy)
    opted_out = {uid for uid, row in noisy.truth.items() if row["opted_out"]}
    forgotten = {uid for uid, row in noisy.truth.items() if row["forgotten"]}
    assert 0.1 < len(opted_out) / len(noisy.truth) < 0.3
    assert 0.04 < len(forgotten) / len(noisy.truth) < 0.16
    for uid, events in users.items():
        refusals = [
            e for e in events if e["type"] == "consent" and not e["context"]["consent"]["personalization"]
        ]
        assert bool(refusals) == (uid in opted_out), uid
        forgets = [e for e in events if e["type"] == "forget"]
        if uid in forgotten:
            assert forgets == [events[-1]]
            # Sent by the customer, or by the device of a visitor who never logged in.
            sender = forgets[0].get("user_id") or forgets[0]["anonymous_id"]
            assert sender == (uid if noisy.truth[uid]["identified"] else noisy.truth[uid]["anonymous_id"])
            assert noisy.truth[uid]["churned"]
        else:
            assert not forgets


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="users must be an integer >= 1; got 0 instead"):
        GeneratorConfig(users=0)
    with pytest.raises(ConfigError, match="duplicate_share must be between 0 and 1; got 1.5 instead"):
        GeneratorConfig(duplicate_share=1.5)
    with pytest.raises(ConfigError, match="must add up to <= 1"):
        GeneratorConfig(out_of_order_share=0.6, late_share=0.6)
    with pytest.raises(ConfigError, match="start must be timezone-aware"):
        GeneratorConfig(start=datetime(2026, 8, 1))


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_run_writes_events_and_truth_next_to_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sample" / "events.jsonl.gz"
    status = run(_parse("--users", "30", "--days", "5", "--start", "2026-09-01", "--out", str(out)))
    assert status == 0
    rows = [orjson.loads(row) for row in (tmp_path / "sample" / "events.truth.jsonl").read_bytes().splitlines()]
    assert len(rows) == 30
    assert all(row["sessions"][0]["start"].startswith("2026-09-0") for row in rows)
    first = orjson.loads(gzip.decompress(out.read_bytes()).split(b"\n", 1)[0])
    assert _ts_ms(first["ts"]) >= datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp() * 1000
    summary = capsys.readouterr().err
    assert summary.count("\n") == 1 and "events for 30 users" in summary


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--users", "0"), "users must be an integer >= 1; got 0 instead"),
        (("--days", "-3"), "days must be an integer >= 1; got -3 instead"),
        (("--start", "2026-13-01"), "start must be a date like 2026-08-01; got '2026-13-01' instead"),
        (("--late", "2"), "late_share must be between 0 and 1; got 2.0 instead"),
    ],
)
def test_run_rejects_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "events.jsonl"
    assert run(_parse(*argv, "--out", str(out))) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
