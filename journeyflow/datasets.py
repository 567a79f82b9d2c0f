"""Public purchase logs to judge the models on real customers, fetched when needed.

CDNOW (Fader, Hardie & Lee 2005): every purchase of the 23,570 customers who
first bought at the CD retailer CDNOW in the first quarter of 1997, until the
end of June 1998, and the paper's own 1/10 systematic sample of them (2,357
customers). The ``lifetimes`` wheel on PyPI ships both; the wheel is
fetched with ``pip download`` into a cache folder (never into the repository)
and the file is read from the wheel, which is never installed.

:func:`write_cdnow` turns the calibration period of the BG/NBD paper (the
first 39 weeks, to 1997-09-30) into input events (one ``purchase`` per
customer and day, as the paper counts them) and writes the ground truth of
the next ``horizon_days`` in the generator's format.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson

from journeyflow.errors import JourneyflowError

__all__ = ["CDNOW_SPLIT", "CdnowStats", "fetch_cdnow", "write_cdnow"]

_WHEEL = "lifetimes==0.11.3"
_MEMBERS = {"full": "lifetimes/datasets/CDNOW_master.txt", "sample": "lifetimes/datasets/CDNOW_sample.txt"}
CDNOW_SPLIT = date(1997, 10, 1)
"""First day after the paper's 39-week calibration period."""


@dataclass(frozen=True)
class CdnowStats:
    """What :func:`write_cdnow` wrote."""

    customers: int
    events: int
    last_day: date


def fetch_cdnow(cache: Path, *, sample: bool = True) -> bytes:
    """Return the CDNOW sample (or the full log), downloading the ``lifetimes`` wheel into ``cache`` once."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", _WHEEL, "--no-deps", "--only-binary", ":all:", "-d", str(cache), "-q"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"the CDNOW data must be downloadable with pip ({_WHEEL}); got: {last}"
            raise JourneyflowError(msg)
    with zipfile.ZipFile(wheels[-1]) as wheel:
        return wheel.read(_MEMBERS["sample" if sample else "full"])


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def write_cdnow(raw: bytes, events: Path, truth: Path, horizon_days: int) -> CdnowStats:
    """Write the calibration period's purchases to ``events`` and the horizon's outcomes to ``truth``."""
    spend: dict[str, dict[date, float]] = {}
    for line in raw.decode().splitlines():
        # Full log: id, date, CDs, dollars after a header line; sample: the
        # master id first, then the same four.
        fields = line.split()[-4:]
        if len(fields) != 4 or not fields[1].isdigit():
            continue
        customer, day, _, dollars = fields
        days = spend.setdefault(customer, {})
        days[_day(day)] = days.get(_day(day), 0.0) + float(dollars)
    horizon_end = CDNOW_SPLIT + timedelta(days=horizon_days)
    rows = []
    written = []
    last = date.min
    for customer, days in spend.items():
        user = f"cdnow-{customer}"
        before = sorted(d for d in days if d < CDNOW_SPLIT)
        if not before:
            continue
        for d in before:
            # Noon UTC: the log has days only.
            ts = int(datetime(d.year, d.month, d.day, 12, tzinfo=timezone.utc).timestamp() * 1000)
            order = f"{user}-{d:%Y%m%d}"
            written.append((ts, user, {"event_id": order, "type": "purchase", "user_id": user, "ts": ts,
                                       "properties": {"order_id": order, "revenue": round(days[d], 2), "currency": "USD"}}))
            last = max(last, d)
        later = [d for d in days if CDNOW_SPLIT <= d < horizon_end]
        rows.append({"user_id": user, "persona": None, "churned": not later, "purchases_in_horizon": len(later)})
    written.sort(key=lambda item: (item[0], item[1]))
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for _, _, e in written))
    truth.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return CdnowStats(customers=len(rows), events=len(written), last_day=last)
