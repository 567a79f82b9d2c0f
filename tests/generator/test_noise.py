"""The generator's noise (duplicates, malformed, displaced lines), anonymous browsing and
second devices, opt-outs and erasures."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from journeyflow.event_parser import EventParser
from journeyflow.events import DeadLetter
from journeyflow.generator import GeneratorConfig
from tests.generator.generated import MINUTE_MS, Dataset, by_user, load_dataset, ts_ms


def test_noise_shares_roughly_as_configured(noisy: Dataset) -> None:
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


def test_duplicates_repeat_the_exact_line(noisy: Dataset) -> None:
    lines_by_id: dict[str, list[bytes]] = defaultdict(list)
    for number, event in noisy.events:
        lines_by_id[event["event_id"]].append(noisy.lines[number])
    repeated = [lines for lines in lines_by_id.values() if len(lines) > 1]
    assert len(repeated) == noisy.stats.duplicates
    assert all(len(lines) == 2 and lines[0] == lines[1] for lines in repeated)


def test_the_event_parser_takes_the_valid_lines_and_dead_letters_the_rest(noisy: Dataset) -> None:
    parser = EventParser(max_event_bytes=1 << 20, personal_fields=("traits.email", "traits.phone"), salt="test")
    results = [parser.parse(line, f"events.jsonl:{n + 1}") for n, line in enumerate(noisy.lines)]
    dead = [result for result in results if isinstance(result, DeadLetter)]
    assert len(results) - len(dead) == noisy.stats.events + noisy.stats.duplicates
    assert len(dead) == noisy.stats.malformed
    assert len({letter.code for letter in dead}) >= 5


def test_lines_are_displaced_only_as_far_as_configured(noisy: Dataset, tmp_path: Path) -> None:
    def lags(data: Dataset) -> list[int]:
        latest = 0
        found = []
        for _, event in data.events:
            ts = ts_ms(event["ts"])
            found.append(max(0, latest - ts))
            latest = max(latest, ts)
        return found

    noisy_lags = lags(noisy)
    displaced = noisy.stats.duplicates + noisy.stats.out_of_order + noisy.stats.late
    behind = sum(lag > 0 for lag in noisy_lags)
    assert 0.3 * displaced < behind <= displaced
    assert max(noisy_lags) <= 3 * 60 * MINUTE_MS
    assert sum(lag > 10 * MINUTE_MS for lag in noisy_lags) > 0.5 * noisy.stats.late

    calm = load_dataset(
        GeneratorConfig(users=200, days=10, out_of_order_share=0.05),
        tmp_path / "calm.jsonl",
        tmp_path / "calm.truth.jsonl",
    )
    assert calm.stats.late == 0
    assert 0 < max(lags(calm)) <= 5 * MINUTE_MS


def _device_journey(events: list[dict], device: str) -> tuple[list[int], list[dict]]:
    """Return the indices of a device's logins among its events, and its events."""
    mine = [e for e in events if e.get("anonymous_id") == device]
    return [i for i, e in enumerate(mine) if e["type"] in ("login", "identify")], mine


def test_anonymous_users_browse_anonymously_until_they_log_in(noisy: Dataset) -> None:
    users = by_user(noisy)
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


def test_some_customers_also_use_a_second_device(noisy: Dataset) -> None:
    users = by_user(noisy)
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


def test_opt_outs_and_erasures_are_in_the_events(noisy: Dataset) -> None:
    users = by_user(noisy)
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
