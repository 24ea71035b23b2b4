"""
The hand-written wire codec (``etcdanyio._codec``) against betterproto2.

    python benchmarks/bench_codec.py [--repeat N]

Prints microseconds per operation (best of ``--repeat`` timing runs) for each
side and the speed-up, and for the compiled build of the codec (mypyc,
``scripts/build_compiled.py``) when it is built. Decoding is measured all the
way to etcdanyio's result types, so the betterproto2 column includes the
conversion of ``tests/_reference.py`` (the reference path the codec tests use);
our decoders get a memo of IDs, as the client's calls do. Machines here are
noisy: compare ratios measured in the same run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import functools
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

if not __package__:  # run as a script rather than with -m: this checkout's package and tests
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etcdanyio import _codec, _codec_calls, _speedups
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio.lease import LeaseGrantResult
from etcdanyio.types import ResponseHeader
from tests._reference import put_from_pb, range_from_pb

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
LEASE_GRANT = bytes(pb.LeaseGrantResponse(header=HEADER, id=7587869235112938053, ttl=60))
RANGE_1000 = bytes(pb.RangeResponse(header=HEADER, kvs=[_kv(i) for i in range(1000)], count=1000))
#: the memo of ID varints a client keeps (one per build: a compiled decoder takes any dict)
IDS: dict[bytes, tuple[int, int]] = {}

# name, betterproto2, ours (given a build of _codec), number of runs
Case = tuple[str, Callable[[], object], Callable[[ModuleType], object], int]
CASES: list[Case] = [
    (
        "encode PutRequest (16 B key, 64 B value)",
        lambda: bytes(pb.PutRequest(key=KEY, value=VALUE)),
        lambda c: c.encode_put(KEY, VALUE),
        20000,
    ),
    (
        "decode PutResponse",
        lambda: put_from_pb(pb.PutResponse.parse(PUT_RESPONSE)),
        lambda c: c.decode_put_response(PUT_RESPONSE, IDS),
        20000,
    ),
    (
        "decode RangeResponse, 1 key",
        lambda: range_from_pb(pb.RangeResponse.parse(RANGE_1)),
        lambda c: c.decode_range_response(RANGE_1, IDS),
        10000,
    ),
    (
        "decode RangeResponse, 1000 keys",
        lambda: range_from_pb(pb.RangeResponse.parse(RANGE_1000)),
        lambda c: c.decode_range_response(RANGE_1000, IDS),
        10,
    ),
    (
        # _codec_calls is pure Python in both builds (only its header decoding differs)
        "decode LeaseGrantResponse",
        lambda: _grant_from_pb(pb.LeaseGrantResponse.parse(LEASE_GRANT)),
        lambda c: _codec_calls.decode_lease_grant_response(LEASE_GRANT, IDS),
        20000,
    ),
    (
        "decode LeaseGrantResponse, no memo of IDs",
        lambda: _grant_from_pb(pb.LeaseGrantResponse.parse(LEASE_GRANT)),
        lambda c: _codec_calls.decode_lease_grant_response(LEASE_GRANT),
        20000,
    ),
]


def _grant_from_pb(response: pb.LeaseGrantResponse) -> LeaseGrantResult:
    return LeaseGrantResult(ResponseHeader.from_pb(response.header), response.id, response.ttl)


def _us_per_op(fn: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per case (best wins)")
    args = parser.parse_args()

    compiled, why = _speedups.compiled_build(_codec)
    builds = [_codec] if compiled is None else [_codec, compiled]
    # Every side must agree before their speed means anything.
    for name, reference, ours, _ in CASES:
        if any(reference() != ours(build) for build in builds):
            raise SystemExit(f"{name}: the codecs disagree")

    head = f"{'':42} {'betterproto2':>14} {'_codec':>10} {'speed-up':>9}"
    print(head + (f" {'mypyc':>10} {'speed-up':>9}" if compiled else f"  (mypyc: {why})"))
    for name, reference, ours, number in CASES:
        ref_us = _us_per_op(reference, max(1, number // 10), args.repeat)
        line = f"{name:42} {ref_us:11.2f} µs"
        for build in builds:
            our_us = _us_per_op(functools.partial(ours, build), number, args.repeat)
            line += f" {our_us:7.2f} µs {ref_us / our_us:8.1f}x"
        print(line)


if __name__ == "__main__":
    main()
