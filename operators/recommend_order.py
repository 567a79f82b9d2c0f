"""A customer's answers back in time order, for the lists step.

The popularity step sends a customer's answers of a batch as one list (one
item to hop rather than several), in event order; answers of batches that
arrive together, or of late events, can still be out of time order. The
lists step (:mod:`operators.recommend_lists`) blends them in time order, in
the places answers hold among the audience step's records (the other records
keep theirs). Most batches are in order already: a stable sort would leave
them as they are, so it is skipped.
"""

from __future__ import annotations

from typing import Any, Final

from operators.recommend import RecAnswer

__all__ = ["answers_in_time_order", "records_in_time_order"]

# The answers' named tuple as a static (Final): compiled, it is a Python class, otherwise looked
# up in this module's globals dict (about 120 instructions) at each record of a batch.
_ANSWER: Final = RecAnswer


def _answer_ms(answer: RecAnswer) -> int:
    return answer.ask.ts_ms


def _in_time_order(flat: list[Any], answers: list[int]) -> bool:
    """Return whether the answers at ``answers`` in ``flat`` are in time order (ties allowed)."""
    last = -(2**62)
    for i in answers:
        ts_ms: int = flat[i].ask.ts_ms
        if ts_ms < last:
            return False
        last = ts_ms
    return True


def answers_in_time_order(answers: list[RecAnswer]) -> list[RecAnswer]:
    """Return one list of answers in time order (``answers`` itself when it is)."""
    if len(answers) > 1:
        indexes = list(range(len(answers)))
        if not _in_time_order(answers, indexes):
            return sorted(answers, key=_answer_ms)
    return answers


def records_in_time_order(values: list[Any]) -> list[Any]:
    """Return a batch's records, each list of answers spread out in its place, with the
    answers in time order in the places answers hold."""
    flat: list[Any] = []
    answers: list[int] = []
    for value in values:
        if type(value) is list:
            answers.extend(range(len(flat), len(flat) + len(value)))
            flat.extend(value)
        else:
            if type(value) is _ANSWER:
                answers.append(len(flat))
            flat.append(value)
    if len(answers) > 1 and not _in_time_order(flat, answers):
        ordered = sorted([flat[i] for i in answers], key=_answer_ms)
        for i, answer in zip(answers, ordered):
            flat[i] = answer
    return flat
