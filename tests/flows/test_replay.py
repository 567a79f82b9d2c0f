"""Replays end to end: accounting, splitting, workers, gzip, dedup, lateness."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import orjson

from flows.replay import replay
from tests.helpers import at, event, read_jsonl, run_replay, settings, write_events


def _mixed_events(users: int = 30, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for u in range(users):
        minute = rng.randint(0, 120)
        for _ in range(rng.randint(5, 25)):
            minute += rng.choice([1, 2, 5, 20, 31, 45, 300])
            kind = rng.choice(["page_view", "product_view", "add_to_cart", "purchase", "search"])
            events.append(event(kind, user=f"u{u}", ts=at(minute)))
    events.sort(key=lambda e: e["ts"])
    return events


def _sessions(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: (r["user_id"], r["start"]))


def _without_source(records: list[dict]) -> list[tuple]:
    return sorted((r["reason"], r["raw"]) for r in records)


def test_every_line_is_accounted_for(tmp_path: Path) -> None:
    events = _mixed_events()
    noisy = [*events, events[-1], events[-2], b"", b"not json", b'{"type": "page_view"}']
    result = run_replay(tmp_path, noisy)
    s = result.summary
    assert s["read"] == len(noisy)
    assert s["duplicates"] == 2
    assert s["dead_letters"] == 3
    assert s["processed"] == len(events)
    assert s["read"] == s["processed"] + s["duplicates"] + s["dead_letters"]
    assert s["users"] == 30
    assert s["sessions"] == len(result.sessions) > 0
    assert sum(r["events"] for r in result.sessions) == len(events)
    for name in ("sessions", "dead_letters", "segment_changes", "triggers", "holdouts", "profiles"):
        assert (result.out / f"{name}.jsonl").exists()
    summary = orjson.loads((result.out / "summary.json").read_bytes())
    assert summary["events_per_second"] > 0 and summary["accounted"] is True


def test_split_files_and_two_workers_give_the_same_sessions_and_dead_letters(tmp_path: Path) -> None:
    events: list = _mixed_events()
    events.insert(40, b"garbage line")
    events.insert(90, orjson.dumps({**events[10], "ts": "yesterday"}))
    whole = run_replay(tmp_path, events)

    # Split by hour of day, as an hourly export would be: several files, merged by event time.
    by_hour: dict[str, list] = {}
    for e in events:
        hour = "x" if isinstance(e, bytes) else e["ts"][11:13]
        by_hour.setdefault(hour, []).append(e)
    files = [write_events(tmp_path / f"part-{h}.jsonl", chunk) for h, chunk in sorted(by_hour.items())]
    split_out = tmp_path / "split"
    split_summary = replay(files, split_out, settings(), show_progress=False)
    assert split_summary["late"] == 0

    two = run_replay(tmp_path, events, workers=2)

    assert _sessions(read_jsonl(split_out / "sessions.jsonl")) == _sessions(whole.sessions)
    assert _sessions(two.sessions) == _sessions(whole.sessions)
    assert _without_source(read_jsonl(split_out / "dead_letters.jsonl")) == _without_source(whole.dead_letters)
    assert two.dead_letters == whole.dead_letters
    assert (two.out / "sessions.jsonl").read_bytes() == (whole.out / "sessions.jsonl").read_bytes()


def test_gzip_input_replays_like_plain(tmp_path: Path) -> None:
    events = _mixed_events(users=5)
    plain = run_replay(tmp_path, events, name="e.jsonl")
    zipped = run_replay(tmp_path, events, name="e.jsonl.gz")
    assert gzip.decompress((tmp_path / "e.jsonl.gz").read_bytes()).count(b"\n") == len(events)
    assert zipped.sessions == plain.sessions
    assert zipped.summary["processed"] == len(events)


def test_dedup_window_catches_repeats_inside_it_and_frees_ids_after(tmp_path: Path) -> None:
    first = event("page_view", ts=at(0), event_id="dup")
    events = [
        first,
        event("page_view", ts=at(60), event_id="dup"),  # 1 h later: duplicate
        event("page_view", ts=at(hours=23), event_id="x1"),
        event("page_view", ts=at(hours=23, minutes=5), event_id="dup"),  # still inside 24 h
        event("page_view", ts=at(hours=49), event_id="x2"),
        event("page_view", ts=at(hours=49, minutes=1), event_id="dup"),  # 49 h later: new again
    ]
    result = run_replay(tmp_path, events)
    assert result.summary["duplicates"] == 2
    assert result.summary["processed"] == 4


def test_out_of_order_within_lateness_is_applied_in_order_beyond_it_is_late(tmp_path: Path) -> None:
    in_order = [event("page_view", ts=at(m)) for m in (0, 5, 10, 50, 55)]
    swapped = [in_order[0], in_order[2], in_order[1], in_order[3], in_order[4]]  # 5 min late
    a = run_replay(tmp_path, in_order, name="a.jsonl")
    b = run_replay(tmp_path, swapped, name="b.jsonl")
    assert a.summary["late"] == b.summary["late"] == 0
    assert a.sessions == b.sessions
    assert [s["events"] for s in a.sessions] == [3, 2]

    too_late = [event("page_view", ts=at(0)), event("page_view", ts=at(60)), event("page_view", ts=at(45))]
    c = run_replay(tmp_path, too_late, name="c.jsonl")
    assert c.summary["late"] == 1 and c.summary["dead_letters"] == 1
    (late,) = c.dead_letters
    assert late["code"] == "late" and late["reason"].startswith("late: 900s behind")
    assert orjson.loads(late["raw"])["ts"] == too_late[2]["ts"]
    assert late["source"].endswith("c.jsonl:3")
    assert c.summary["read"] == c.summary["processed"] + c.summary["dead_letters"]


def test_session_boundaries_at_the_gap(tmp_path: Path) -> None:
    events = [
        event("page_view", user="a", ts=at(0)),
        event("page_view", user="a", ts=at(29.99)),  # just under 30 min: same session
        event("page_view", user="b", ts=at(0)),
        event("page_view", user="b", ts=at(30.01)),  # just over: a new session
    ]
    result = run_replay(tmp_path, events)
    per_user = {u: [s["events"] for s in result.sessions if s["user_id"] == u] for u in "ab"}
    assert per_user == {"a": [2], "b": [1, 1]}


def test_dead_letters_say_where_they_came_from(tmp_path: Path) -> None:
    result = run_replay(tmp_path, [event("page_view"), b"{bad", event("teleport")], name="x.jsonl")
    assert [(d["source"].rsplit("/", 1)[-1], d["code"]) for d in result.dead_letters] == [
        ("x.jsonl:2", "invalid_json"),
        ("x.jsonl:3", "unknown_type"),
    ]
