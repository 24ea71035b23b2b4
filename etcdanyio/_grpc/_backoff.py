"""
The one backoff formula: exponential, capped, with jitter.

Every wait before trying again uses it: the channel's redial of an endpoint that
failed, the retry of a unary call, and the reconnect of the long-lived streams
(``etcdanyio._streams``). Each caller keeps its own base and cap.
"""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(failures: int, *, base: float, cap: float) -> float:
    """
    Seconds to wait after the ``failures``-th failure in a row (1, 2, ...).

    ``base`` doubles with each failure up to ``cap``; the result is drawn from the
    upper half of that (50-100 %), so that clients that failed together do not come
    back together.
    """
    # (The exponent is bounded: a float overflows past 2**1023, and the cap wins long before.)
    return min(cap, base * 2.0 ** min(failures - 1, 64)) * random.uniform(0.5, 1.0)
