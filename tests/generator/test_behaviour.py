"""The generated events follow the contract, and users behave like their persona: times,
sessions, persona shares and habits, new visitors, churners."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from journeyflow.events import EVENT_TYPES, SESSION_EXCLUDED_TYPES
from tests.generator.generated import MINUTE_MS, SESSION_GAP_MS, Dataset, by_user, ts_ms


def test_valid_lines_follow_the_contract(default: Dataset) -> None:
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


def test_each_user_has_strictly_increasing_event_times(default: Dataset) -> None:
    for events in by_user(default).values():
        times = [ts_ms(e["ts"]) for e in events]
        assert all(earlier < later for earlier, later in zip(times, times[1:]))


def test_a_30_minute_sessioniser_recovers_the_truth_sessions(default: Dataset) -> None:
    fmt = "%Y-%m-%dT%H:%M:%S.%f"
    for uid, events in by_user(default).items():
        sessions: list[list[int]] = []
        for event in events:
            if event["type"] in SESSION_EXCLUDED_TYPES:
                continue
            ts = ts_ms(event["ts"])
            if sessions and ts - sessions[-1][-1] <= SESSION_GAP_MS:
                sessions[-1].append(ts)
            else:
                sessions.append([ts])
        found = [
            (datetime.fromtimestamp(s[0] / 1000, timezone.utc).strftime(fmt)[:-3] + "Z", len(s)) for s in sessions
        ]
        expected = [(s["start"], s["events"]) for s in default.truth[uid]["sessions"]]
        assert found == expected, uid


def test_truth_sessions_are_apart_short_and_bounded(default: Dataset) -> None:
    for row in default.truth.values():
        sessions = row["sessions"]
        assert sessions, "every user has a session in the period"
        assert ts_ms(row["last_event_ts"]) >= ts_ms(sessions[-1]["end"])
        for session in sessions:
            assert 1 <= session["events"] <= 40
            length = ts_ms(session["end"]) - ts_ms(session["start"])
            assert 0 <= length <= 90 * MINUTE_MS
        for earlier, later in zip(sessions, sessions[1:]):
            assert ts_ms(later["start"]) - ts_ms(earlier["end"]) >= 45 * MINUTE_MS


def test_persona_shares(default: Dataset) -> None:
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


def test_personas_behave_differently(default: Dataset) -> None:
    per_persona: dict[str, Counter] = defaultdict(Counter)
    users = by_user(default)
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


def test_new_visitors_appear_only_in_the_last_two_weeks(default: Dataset) -> None:
    cutoff = default.config.start + timedelta(days=default.config.days - 14)
    new_visitors = [row for row in default.truth.values() if row["persona"] == "new_visitor"]
    assert new_visitors
    for row in new_visitors:
        assert ts_ms(row["sessions"][0]["start"]) >= cutoff.timestamp() * 1000
        assert 1 <= len(row["sessions"]) <= 3


def test_churners_go_quiet_and_never_return(default: Dataset) -> None:
    end_ms = (default.config.start + timedelta(days=default.config.days)).timestamp() * 1000
    for row in default.truth.values():
        if row["persona"] == "churner":
            assert row["churned"] and not row["returns_in_horizon"]
            assert row["purchases_in_horizon"] == 0 and row["revenue_in_horizon"] == 0
            # They stop at 20-70% of the period, so the last week is always silent.
            assert ts_ms(row["last_event_ts"]) < end_ms - 7 * 24 * 60 * MINUTE_MS
        assert row["churned"] is not row["returns_in_horizon"]
    loyal = [row for row in default.truth.values() if row["persona"] == "loyal_buyer"]
    assert sum(row["returns_in_horizon"] for row in loyal) / len(loyal) > 0.85
    assert sum(row["purchases_in_horizon"] for row in loyal) / len(loyal) > 3
