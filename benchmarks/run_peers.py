"""
etcdanyio against every Python etcd client, in one run, in one table.

    python benchmarks/run_peers.py [--rounds 3] [--ops 1000] [--max-seconds 2]
                                   [--only aetcd,etcdanyio] [--workloads serial-put,...]
                                   [--skip-install] [--json results.json]
                                   [--endpoints URL] [--no-fsync]

Starts a throwaway etcd (``etcdanyio.testing.EtcdServer``, fsync on unless
``--no-fsync``), installs each peer into a virtual environment of its own under
``benchmarks/.venvs/<name>`` (their pins conflict), writes the keys the reads
need, then runs every workload for every client, each run in a fresh process:
the peers' drivers (``benchmarks/peers/<name>.py``) inside their venv, etcdanyio's
(on asyncio and on trio) in this environment. Clients alternate within each
round (the order rotates from round to round); a cell is the median of the
rounds. Progress goes to stderr; the Markdown table goes to stdout.

Machines here are noisy: compare ratios measured in the same run, not absolute
numbers. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

import etcdanyio
from etcdanyio import txn
from etcdanyio.testing import EtcdServer

if TYPE_CHECKING:
    from collections.abc import Sequence

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as a script rather than with -m: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import _harness  # noqa: E402 -- needs the sys.path line above

VENVS = ROOT / "benchmarks" / ".venvs"
CELL_TIMEOUT = 180.0


@dataclasses.dataclass(frozen=True)
class Client:
    #: the name in the table, in ``--only`` and of the venv
    name: str
    #: the driver module, under ``benchmarks.peers``
    driver: str
    #: what pip installs into the venv; empty: runs in this environment
    requirements: tuple[str, ...] = ()
    backend: str = "asyncio"
    #: is it one of the peers (the "best peer" is chosen among these)
    peer: bool = True

    def python(self) -> Path:
        if not self.requirements:
            return Path(sys.executable)
        return VENVS / self.name / "bin" / "python"


CLIENTS = (
    Client("etcdanyio-asyncio", "etcdanyio", backend="asyncio", peer=False),
    Client("etcdanyio-trio", "etcdanyio", backend="trio", peer=False),
    # The blocking API: the same client on an event loop thread, 64 threads for concurrency.
    Client("etcdanyio-sync", "etcdanyio_sync", backend="asyncio", peer=False),
    Client("etcdanyio-sync-trio", "etcdanyio_sync", backend="trio", peer=False),
    Client("aetcd", "aetcd", ("aetcd==1.0.0",)),
    Client("etcd3aio", "etcd3aio", ("etcd3aio==0.3.0",)),
    Client("etcetra", "etcetra", ("etcetra==0.1.19",)),  # pulls grpcio 1.62 / protobuf 4
    # Its generated _pb2 modules predate protobuf 4 (which refuses them unless
    # PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python); protobuf 3.20 has no wheel
    # with the C extension for Python 3.11, so it runs on pure-Python protobuf.
    Client("python-etcd3", "python_etcd3", ("etcd3==0.12.0", "protobuf<4")),
    Client("etcd3gw", "etcd3gw", ("etcd3gw==2.7.0",)),
)


@dataclasses.dataclass(frozen=True)
class Workload:
    key: str
    title: str
    #: what one counted operation is
    unit: str
    #: operations per run = --ops x scale (at least ``minimum``)
    scale: float
    minimum: int = 1


WORKLOADS = (
    Workload("serial-put", "serial put, 64 B values", "puts", 1),
    Workload("serial-get", "serial linearizable get", "gets", 1),
    Workload("concurrent-put", "64 concurrent puts, one client", "puts", 4, 64),
    Workload("concurrent-get", "64 concurrent gets, one client", "gets", 4, 64),
    Workload("txn-cas", "txn compare-and-swap", "txns", 1),
    Workload("lease", "lease grant + revoke", "grant+revoke pairs", 0.5),
    Workload("watch-1", "watch, 1 watcher", "events delivered", 20, 100),
    Workload("watch-100", "watch, 100 watchers", "events delivered", 1, 10),
    Workload("range-10k", "range read of 10,000 keys", "range reads", 0.01, 3),
)


@dataclasses.dataclass
class Cell:
    """One client's runs of one workload."""

    runs: list[dict[str, object]] = dataclasses.field(default_factory=list)
    failure: str = ""
    unsupported: str = ""

    def median(self, field: str) -> float:
        return statistics.median(float(str(run[field])) for run in self.runs)

    @property
    def rate(self) -> float:
        return statistics.median(float(str(r["ops"])) / float(str(r["wall"])) for r in self.runs)

    @property
    def cpu_us(self) -> float:
        return statistics.median(
            float(str(r["cpu"])) / float(str(r["ops"])) * 1e6 for r in self.runs
        )

    @property
    def rss_mib(self) -> float:
        return self.median("maxrss_kib") / 1024

    @property
    def note(self) -> str:
        return str(self.runs[0]["note"]) if self.runs else ""

    @property
    def comparable(self) -> bool:
        return bool(self.runs) and bool(self.runs[0]["comparable"])


# ---------------------------------------------------------------- environments


def install(client: Client) -> str:
    """Create or refresh ``client``'s venv; return why it failed, or ``""``."""
    venv = VENVS / client.name
    marker = venv / "bench-requirements.txt"
    wanted = "\n".join(client.requirements) + "\n"
    if client.python().exists() and marker.exists() and marker.read_text() == wanted:
        return ""
    log = venv / "install.log"
    try:
        if not client.python().exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        command = [str(client.python()), "-m", "pip", "install", "--disable-pip-version-check"]
        proc = subprocess.run(
            [*command, *client.requirements], capture_output=True, text=True, timeout=900
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"venv: {exc}"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
        return f"pip install failed ({log}): " + " / ".join(errors[-2:] or ["see log"])
    marker.write_text(wanted)
    return ""


def driver_command(
    client: Client, endpoint: str, workload: str, ops: int, max_seconds: float = 60.0
) -> list[str]:
    return [
        str(client.python()),
        "-m",
        f"benchmarks.peers.{client.driver}",
        f"--endpoint={endpoint}",
        f"--workload={workload}",
        f"--ops={ops}",
        f"--max-seconds={max_seconds}",
        f"--backend={client.backend}",
    ]


def run_driver(command: list[str], timeout: float) -> tuple[dict[str, object] | None, str]:
    """Run one driver process; its JSON line, or ``None`` and why not."""
    try:
        proc = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=_driver_env()
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            record: dict[str, object] = json.loads(line)
            return record, ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return None, f"exit {proc.returncode}: " + (lines[-1] if lines else "no output")[:160]


def _driver_env() -> dict[str, str]:
    env = dict(os.environ)
    # The peers' venvs must not see this environment's packages or settings.
    for name in (
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION",
    ):
        env.pop(name, None)
    return env


# ----------------------------------------------------------------------- etcd


async def preload(endpoints: list[str]) -> str:
    """Write the keys the gets and the range read read (the rest are their own); etcd's version."""
    value = _harness.VALUE
    async with etcdanyio.open_etcd(endpoints) as client:
        for start in range(0, _harness.SERIAL_KEYS, 100):
            stop = min(start + 100, _harness.SERIAL_KEYS)
            await client.txn(
                success=[txn.put(_harness.serial_key(i), value) for i in range(start, stop)]
            )
        for start in range(0, _harness.RANGE_KEYS, 100):
            puts = [txn.put(_harness.range_key(i), value) for i in range(start, start + 100)]
            await client.txn(success=puts)
        return (await client.status()).version


def ops_for(workload: Workload, ops: int) -> int:
    n = max(workload.minimum, round(ops * workload.scale))
    if workload.key.startswith("concurrent"):
        n = -(-n // _harness.CONCURRENCY) * _harness.CONCURRENCY
    return n


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_rounds(
    clients: Sequence[Client],
    workloads: Sequence[Workload],
    endpoint: str,
    args: argparse.Namespace,
) -> dict[tuple[str, str], Cell]:
    cells = {(w.key, c.name): Cell() for w in workloads for c in clients}
    for round_index in range(args.rounds):
        shift = round_index % len(clients)
        order = [*clients[shift:], *clients[:shift]]
        for workload in workloads:
            ops = ops_for(workload, args.ops)
            for client in order:
                cell = cells[workload.key, client.name]
                if cell.unsupported:
                    continue
                command = driver_command(client, endpoint, workload.key, ops, args.max_seconds)
                record, failure = run_driver(command, args.cell_timeout)
                label = f"[{round_index + 1}/{args.rounds}] {workload.key:<15} {client.name:<18}"
                if record is None:
                    cell.failure = failure
                    progress(f"{label} FAILED: {failure}")
                elif "unsupported" in record:
                    cell.unsupported = str(record["unsupported"])
                    progress(f"{label} n/a: {cell.unsupported}")
                else:
                    cell.runs.append(record)
                    rate = float(str(record["ops"])) / float(str(record["wall"]))
                    cpu = float(str(record["cpu"])) / float(str(record["ops"])) * 1e6
                    progress(f"{label} {rate:>10,.0f}/s {cpu:>8.1f} us/op")
    return cells


# ---------------------------------------------------------------------- table


def _ratio(value: float, best: float | None) -> str:
    return "" if best is None or not best else f"{value / best:.2f}x"


def table(
    clients: Sequence[Client],
    workloads: Sequence[Workload],
    cells: dict[tuple[str, str], Cell],
    failed_install: dict[str, str],
) -> str:
    lines = [
        (
            "| workload | client | ops/s | client CPU µs/op | peak RSS MiB "
            "| ops/s ÷ best peer | CPU ÷ best peer | note |"
        ),
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    for workload in workloads:
        scored = [
            cells[workload.key, c.name] for c in clients if c.peer and c.name not in failed_install
        ]
        comparable = [cell for cell in scored if cell.runs and cell.comparable]
        best_rate = max((cell.rate for cell in comparable), default=None)
        best_cpu = min((cell.cpu_us for cell in comparable), default=None)
        title = f"{workload.title} ({workload.unit}/s)"
        for client in clients:
            cell = cells[workload.key, client.name]
            if client.name in failed_install:
                row = ["not installed", "", "", "", "", failed_install[client.name]]
            elif cell.unsupported:
                row = ["n/a", "", "", "", "", cell.unsupported]
            elif not cell.runs:
                row = ["error", "", "", "", "", cell.failure]
            else:
                note = cell.note
                if cell.failure:
                    note = f"{note}; a run failed: {cell.failure}".lstrip("; ")
                row = [
                    f"{cell.rate:,.0f}",
                    f"{cell.cpu_us:,.1f}",
                    f"{cell.rss_mib:.0f}",
                    _ratio(cell.rate, best_rate),
                    _ratio(cell.cpu_us, best_cpu),
                    note,
                ]
            lines.append("| " + " | ".join([title, client.name, *row]) + " |")
            title = ""
    return "\n".join(lines)


# ----------------------------------------------------------------------- main


def select(names: str | None, known: Sequence[str], what: str) -> list[str]:
    if not names:
        return list(known)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    chosen: list[str] = []
    for name in wanted:
        matches = [k for k in known if k == name or k.startswith(name + "-")]
        if not matches:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        chosen += [m for m in matches if m not in chosen]
    return [k for k in known if k in chosen]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0].strip())
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell; the median counts")
    parser.add_argument(
        "--ops", type=int, default=1000, help="operations per serial run (others scale from it)"
    )
    parser.add_argument(
        "--only", help="comma-separated clients (etcdanyio = both backends); default: all"
    )
    parser.add_argument("--workloads", help="comma-separated workloads; default: all")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=2.0,
        help="cut a measured run short after this long (all but the watch workloads)",
    )
    parser.add_argument(
        "--skip-install", action="store_true", help="use the venvs as they are; no pip"
    )
    parser.add_argument("--json", type=Path, help="also write every run's raw numbers here")
    parser.add_argument("--endpoints", help="use this etcd instead of a throwaway one")
    parser.add_argument("--no-fsync", action="store_true", help="throwaway etcd without fsync")
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.ops < 1:
        parser.error("--rounds and --ops must be at least 1")
    return args


def prepare(clients: Sequence[Client], skip_install: bool) -> tuple[dict[str, str], list[str]]:
    """Install (unless skipped) and import-check every client; failures and versions."""
    failed: dict[str, str] = {}
    peers = [c for c in clients if c.requirements]
    if not skip_install and peers:
        progress(f"installing {', '.join(c.name for c in peers)} into {VENVS} ...")
        VENVS.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(len(peers)) as pool:
            for client, error in zip(peers, pool.map(install, peers), strict=True):
                if error:
                    failed[client.name] = error
    versions: list[str] = []
    for client in clients:
        if client.name in failed:
            continue
        if not client.python().exists():
            failed[client.name] = f"no venv at {client.python().parent.parent} (--skip-install)"
            continue
        record, error = run_driver(driver_command(client, "", "versions", 1), 120)
        if record is None:
            failed[client.name] = f"does not import: {error}"
            continue
        found = record["versions"]
        assert isinstance(found, dict)
        listed = ", ".join(f"{k} {v}" for k, v in found.items() if k != "python")
        versions.append(f"{client.name}: {listed}")
    for name, error in failed.items():
        progress(f"{name}: {error}")
    return failed, versions


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    names = select(args.only, [c.name for c in CLIENTS], "client")
    clients = [c for c in CLIENTS if c.name in names]
    keys = select(args.workloads, [w.key for w in WORKLOADS], "workload")
    workloads = [w for w in WORKLOADS if w.key in keys]
    started, load_before = time.monotonic(), os.getloadavg()[0]
    failed, versions = prepare(clients, args.skip_install)
    runnable = [c for c in clients if c.name not in failed]

    etcd_version = "?"

    def measure(endpoints: list[str]) -> dict[tuple[str, str], Cell]:
        nonlocal etcd_version
        progress(f"etcd at {endpoints[0]}: writing the keys the reads need ...")
        etcd_version = anyio.run(preload, endpoints)
        return run_rounds(runnable, workloads, endpoints[0], args)

    if args.endpoints:
        fsync = "as configured"
        cells = measure(args.endpoints.split(","))
    else:
        fsync = "off" if args.no_fsync else "on"
        # etcdanyio.testing passes --unsafe-no-fsync; a later flag wins.
        extra = [] if args.no_fsync else ["--unsafe-no-fsync=false"]
        with EtcdServer(extra_args=extra) as server:
            cells = measure(server.endpoints)
    for workload in workloads:  # cells of clients that never ran
        for client in clients:
            cells.setdefault((workload.key, client.name), Cell())

    print(
        f"etcd {etcd_version} (one member, same machine), fsync {fsync}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; median of {args.rounds} round(s), "
        f"--ops {args.ops}; {time.monotonic() - started:.0f} s in all; load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
    print()
    print(table(clients, workloads, cells, failed))
    print()
    print("Client versions: " + "; ".join(versions) + ".")
    if args.json:
        raw = {f"{w} / {c}": dataclasses.asdict(cell) for (w, c), cell in cells.items()}
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
