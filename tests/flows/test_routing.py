"""The router: each record leaves at the first route its type matches, in the order it came."""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.routing import is_a, rekey, route, values


class _Ask:
    def __init__(self, n: int) -> None:
        self.n = n


class _Ask2(_Ask):
    """A subclass: not an ``_Ask`` for the router (exact types)."""


def _run(items: list[tuple[str, Any]], routes: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    flow = Dataflow("routing")
    up = op.input("in", flow, TestingSource(items, 3))
    got: dict[str, list[Any]] = {}
    for name, stream in route("route", up, routes).items():
        got[name] = []
        op.output(f"out_{name}", values(f"values_{name}", stream), TestingSink(got[name]))
    run_main(flow)
    return got


def test_each_item_goes_to_the_first_matching_route_in_order_and_the_rest_is_dropped() -> None:
    asks = [_Ask(i) for i in range(5)]
    items: list[tuple[str, Any]] = [
        ("u1", asks[0]), ("u2", 1), ("u1", "a"), ("u3", asks[1]), ("u2", 2.5), ("u1", 3),
        ("u4", asks[2]), ("u1", b"dropped"), ("u2", "b"), ("u9", _Ask2(9)), ("u3", 4), ("u1", asks[3]),
    ]  # fmt: skip
    got = _run(items, [("asks", is_a(_Ask)), ("numbers", is_a(int, float)), ("words", is_a(str))])
    assert got["asks"] == [asks[0], asks[1], asks[2], asks[3]]
    assert got["numbers"] == [1, 2.5, 3, 4]
    assert got["words"] == ["a", "b"]


def test_an_item_two_routes_match_goes_to_the_first_only() -> None:
    got = _run([("k", 1), ("k", 2)], [("first", is_a(int)), ("second", is_a(int))])
    assert got == {"first": [1, 2], "second": []}


def test_rekey_keys_by_a_function_or_one_key() -> None:
    flow = Dataflow("rekey")
    up = op.input("in", flow, TestingSource([("a", 1), ("b", 22)], 2))
    by_fn: list[Any] = []
    by_one: list[Any] = []
    op.output("fn", rekey("by_fn", up, lambda v: f"n{v}"), TestingSink(by_fn))
    op.output("one", rekey("by_one", up, "all"), TestingSink(by_one))
    run_main(flow)
    assert by_fn == [("n1", 1), ("n22", 22)]
    assert by_one == [("all", 1), ("all", 22)]


def test_bad_routes_stop_the_flow_from_being_built() -> None:
    flow = Dataflow("bad")
    up = op.input("in", flow, TestingSource([]))
    with pytest.raises(ValueError, match="route names must be unique"):
        route("r", up, [("a", is_a(int)), ("a", is_a(str))])
    with pytest.raises(ValueError, match="at least one type"):
        is_a()
