"""A life table's counts read as a curve: the chance of no return in the next interval, by intervals already silent.

:class:`operators.silence.SilenceCurve` counts, per band of whole intervals
already silent, the weekly churn examples and those that stayed away; this
module turns those counts into a curve it can chain (:func:`monotone_curve`)
and reads the curve between bands (:func:`read_between`). Plain functions of
the counts, kept apart from the counting so each can be read and tested alone.
"""

from __future__ import annotations

import math

__all__ = ["MIN_BAND", "monotone_curve", "read_between"]

#: Examples a band needs before its own count is read.
MIN_BAND = 20


def read_between(curve: list[float], intervals: float) -> float:
    """Return the curve's chance after ``intervals`` intervals of silence, linear between the bands' middles.

    A band's count is the mean chance over its silences, so it is read at
    the band's middle and the chance between two middles is on the line
    between them (the first band's and the last band's are held before and
    after): a customer silent 8 days is not as likely gone as one silent 13,
    and a step per band ranked every customer of a band alike. Monotone
    wherever the curve is.

    >>> read_between([0.2, 0.6, 0.8], 1.5), round(read_between([0.2, 0.6, 0.8], 1.0), 3), read_between([0.2, 0.6, 0.8], 0.1)
    (0.6, 0.4, 0.2)
    """
    x = intervals - 0.5
    if x <= 0.0:
        return curve[0]
    i = int(x)
    if i >= len(curve) - 1:
        return curve[-1]
    frac = x - i
    return curve[i] + frac * (curve[i + 1] - curve[i])


def _laplace(examples: int, stayed: int) -> float:
    # Laplace's rule: never exactly 0 or 1.
    return (stayed + 1) / (examples + 2)


def monotone_curve(examples: list[int], stayed: list[int]) -> list[float] | None:
    """Return the chance of no return in the next interval per band, from the counts (``None``: no band has ``MIN_BAND`` examples).

    Three rules, each a fact about silences rather than a fit to a data set:

    * a band with fewer than ``MIN_BAND`` examples is pooled with the band before
      it (their counts add), so thin bands borrow their neighbours' evidence;
    * the chance never falls as the silence grows (a silence that has lasted
      longer is no likelier to end): adjacent pooled bands that break this are
      pooled again (pool-adjacent-violators, each block read by Laplace's rule);
    * past the last band with ``MIN_BAND`` examples, the chance of a return keeps
      falling by the factor :func:`_decay` fits over the blocks (never rising). Among
      silent customers, some are gone for good and the rest return at their own
      rate, so the longer the silence the fewer are still coming back: the
      return's chance falls roughly geometrically. Copying the last band (a
      constant chance of return) chained 4 such weeks into 0.74-0.82 on a
      60-day history where 0.99 did not come back. The tail is never surer
      than the last block's counts allow: at most what Laplace's rule gives
      had every one of its examples stayed away.

    >>> [round(q, 3) for q in monotone_curve([100, 50, 20, 0, 0], [20, 30, 17, 0, 0])]
    [0.206, 0.596, 0.818, 0.918, 0.955]
    >>> monotone_curve([10, 5], [1, 1]) is None
    True
    """
    last = max((b for b, n in enumerate(examples) if n >= MIN_BAND), default=None)
    if last is None:
        return None
    # Blocks: [first band, examples, stayed]; a thin band joins the block before it.
    blocks: list[list[int]] = []
    for b in range(last + 1):
        if not blocks or (examples[b] >= MIN_BAND and blocks[-1][1] >= MIN_BAND):
            blocks.append([b, examples[b], stayed[b]])
        else:
            blocks[-1][1] += examples[b]
            blocks[-1][2] += stayed[b]
        while len(blocks) > 1 and _laplace(blocks[-2][1], blocks[-2][2]) > _laplace(blocks[-1][1], blocks[-1][2]):
            _, n, k = blocks.pop()
            blocks[-1][1] += n
            blocks[-1][2] += k
    curve = [0.0] * len(examples)
    for i, (first, n, k) in enumerate(blocks):
        end = blocks[i + 1][0] if i + 1 < len(blocks) else last + 1
        curve[first:end] = [_laplace(n, k)] * (end - first)
    back = 1.0 - curve[last]
    ratio = min(1.0, _decay(blocks, last))
    surest = _laplace(blocks[-1][1], blocks[-1][1])
    for b in range(last + 1, len(examples)):
        back *= ratio
        curve[b] = min(surest, 1.0 - back)
    return curve


def _decay(blocks: list[list[int]], last: int) -> float:
    """Return the factor by which the chance of a return falls per band: a geometric fit over the silences' blocks.

    Least squares of the log chance of a return on the block's middle band,
    each block weighted by its examples, over the blocks after the first
    (the first holds every active customer, not a silence) when two or more
    remain, else over all; 1.0 (no fall) from a single block.
    """
    ends = [b[0] for b in blocks[1:]] + [last + 1]
    points = [((first + end - 1) / 2.0, math.log(1.0 - _laplace(n, k)), float(n)) for (first, n, k), end in zip(blocks, ends, strict=True)]
    if len(points) > 2:
        points = points[1:]
    if len(points) < 2:
        return 1.0
    total = sum(w for _, _, w in points)
    mx = sum(x * w for x, _, w in points) / total
    my = sum(y * w for _, y, w in points) / total
    sxx = sum(w * (x - mx) ** 2 for x, _, w in points)
    sxy = sum(w * (x - mx) * (y - my) for x, y, w in points)
    return math.exp(sxy / sxx)
