"""Run the flow's per-user steps in this process, without bytewax.

For benchmarks and evaluations that time or inspect the per-user logic on its
own. Items are routed as :func:`flows.journey.build_flow` routes them
(anonymous events and logins through the device step, the rest straight to
the customer step, forwards to their customer) and applied in input order, so
the outputs are the flow's, in one worker's order. At the end, as bytewax does,
every device and then every customer hears the end of input, in key order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bytewax.operators import StatefulLogic

from journeyflow.step_records import Expect, Forward
from operators.identity import DeviceConfig, device_key, to_device
from operators.journey import JourneyConfig

__all__ = ["PerUserSteps", "apply_keyed"]


def apply_keyed(logics: dict[str, Any], key: str, build: Callable[[Any], Any], item: Any) -> list[Any]:
    """Give ``item`` to ``key``'s logic (built on first use, dropped on DISCARD), as a
    keyed bytewax step would; return what it emits."""
    logic = logics.get(key)
    if logic is None:
        logic = logics[key] = build(None)
    said, discard = logic.on_item(item)
    if discard:
        del logics[key]
    return list(said)


class PerUserSteps:
    """The device and customer steps of one worker, fed item by item.

    ``on_output`` sees every record the two steps emit (forwards aside), with
    the step that emitted it; :meth:`feed` and :meth:`finish` return them too.
    """

    def __init__(self, journey: JourneyConfig, link_idle_ms: int) -> None:
        self.devices_cfg = DeviceConfig(journey, link_idle_ms)
        self.journey_cfg = journey
        self.devices: dict[str, StatefulLogic[Any, Any, bytes]] = {}
        self.customers: dict[str, StatefulLogic[Any, Any, bytes]] = {}

    def feed(self, item: Any) -> list[Any]:
        """Apply one input item (a replay's event or tick); return what the steps emit."""
        if isinstance(item, Expect):
            return []  # items come in input order here: nothing to wait for
        out: list[Any] = []
        if to_device(item):
            said = apply_keyed(self.devices, device_key(item), self.devices_cfg.build, item)
            for record in said:
                if isinstance(record, Forward):
                    out.extend(apply_keyed(self.customers, record.user, self.journey_cfg.build, record.item))
                else:
                    out.append(record)
        else:
            out.extend(apply_keyed(self.customers, item.user, self.journey_cfg.build, item))
        return out

    def feed_all(self, items: Iterable[Any]) -> Iterator[Any]:
        """Apply every item, then the end of input; yield what the steps emit."""
        for item in items:
            yield from self.feed(item)
        yield from self.finish()

    def finish(self) -> list[Any]:
        """Tell every device, then every customer, that the input is over."""
        out: list[Any] = []
        for logics in (self.devices, self.customers):
            for key in sorted(logics):
                said, _ = logics[key].on_eof()
                out.extend(r for r in said if not isinstance(r, Forward))
            logics.clear()
        return out
