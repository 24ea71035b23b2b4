"""
The hand-written wire codec (``etcdanyio._codec``) against betterproto2.

    python benchmarks/bench_codec.py [--repeat N]

Prints microseconds per operation (best of ``--repeat`` timing runs) for each
side and the speed-up. Decoding is measured all the way to etcdanyio's result
types, so the betterproto2 column includes ``Result.from_pb``. Machines here
are noisy: compare ratios measured in the same run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from etcdanyio import _codec
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio.types import PutResult, RangeResult

KEY = b"bench/key/000001"  # 16 bytes
VALUE = b"v" * 64
HEADER = pb.ResponseHeader(
    cluster_id=14841639068965178418,
    member_id=10276657743932975437,
    revision=1234567,
    raft_term=7,
)


def _kv(i: int) -> mvccpb.KeyValue:
    return mvccpb.KeyValue(
        key=b"bench/key/%06d" % i,
        value=VALUE,
        create_revision=1000000 + i,
        mod_revision=1200000 + i,
        version=3,
    )


PUT_RESPONSE = bytes(pb.PutResponse(header=HEADER))
RANGE_1 = bytes(pb.RangeResponse(header=HEADER, kvs=[_kv(1)], count=1))
RANGE_1000 = bytes(pb.RangeResponse(header=HEADER, kvs=[_kv(i) for i in range(1000)], count=1000))

Case = tuple[str, Callable[[], object], Callable[[], object], int]
CASES: list[Case] = [
    (
        "encode PutRequest (16 B key, 64 B value)",
        lambda: bytes(pb.PutRequest(key=KEY, value=VALUE)),
        lambda: _codec.encode_put(KEY, VALUE),
        20000,
    ),
    (
        "decode PutResponse",
        lambda: PutResult.from_pb(pb.PutResponse.parse(PUT_RESPONSE)),
        lambda: _codec.decode_put_response(PUT_RESPONSE),
        20000,
    ),
    (
        "decode RangeResponse, 1 key",
        lambda: RangeResult.from_pb(pb.RangeResponse.parse(RANGE_1)),
        lambda: _codec.decode_range_response(RANGE_1),
        10000,
    ),
    (
        "decode RangeResponse, 1000 keys",
        lambda: RangeResult.from_pb(pb.RangeResponse.parse(RANGE_1000)),
        lambda: _codec.decode_range_response(RANGE_1000),
        10,
    ),
]


def _us_per_op(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per case (best wins)")
    args = parser.parse_args()

    # Both sides must agree before their speed means anything.
    for name, reference, ours, _ in CASES:
        if reference() != ours():
            raise SystemExit(f"{name}: the codecs disagree")

    print(f"{'':42} {'betterproto2':>14} {'_codec':>10} {'speed-up':>9}")
    for name, reference, ours, number in CASES:
        ref_us = _us_per_op(reference, max(1, number // 10), args.repeat)
        our_us = _us_per_op(ours, number, args.repeat)
        print(f"{name:42} {ref_us:11.2f} µs {our_us:7.2f} µs {ref_us / our_us:8.1f}x")


if __name__ == "__main__":
    main()
