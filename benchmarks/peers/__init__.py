"""
One driver per client for ``benchmarks/run_peers.py``.

Each driver runs one workload in a process of its own and prints one JSON line;
the peers' drivers run inside that peer's virtual environment
(``benchmarks/.venvs/<name>``), so they are started as modules from the
repository root (``python -m benchmarks.peers.aetcd ...``) and import nothing
from the main environment but ``benchmarks.peers._harness`` (standard library
only). See ``benchmarks/README.md``.
"""
