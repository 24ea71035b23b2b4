"""
Real etcd members for tests and demos, and the pytest plugin that serves them.

:class:`EtcdCluster` and :class:`EtcdServer` (one member) run on free loopback ports with temporary
data directories, synchronously (``with EtcdServer() as s:``) or as async context managers on
asyncio and trio. Each blocking method has an async twin with an ``a`` prefix (``arestart``,
``await_ready``, ``aleader``) that runs it in a worker thread: a cancellation takes effect once it
returns, and every wait is bounded. Readiness puts ``__etcdanyio_testing__/ready`` through each
member and deletes it: a fresh keyspace is empty but its revision is above 1. The pytest plugin
provides ``etcd_server`` (one :class:`EtcdServer` per session: inject no faults into it),
``etcd_endpoints``, ``etcd_client`` (a client per test in a namespace of its own) and
``etcd_cluster`` (a fresh three-member :class:`EtcdCluster` per test). With ``tls=TLSFiles(...)``
the members serve ``https://`` client URLs (peer traffic stays plaintext).
"""

from ._public import publish as _publish
from ._testing_cluster import EtcdCluster as EtcdCluster
from ._testing_cluster import EtcdServer as EtcdServer
from ._testing_cluster import TLSFiles as TLSFiles
from ._testing_process import EtcdMember as EtcdMember
from ._testing_process import EtcdProcessError as EtcdProcessError
from ._testing_process import find_etcd_binary as find_etcd_binary

__all__ = [
    "EtcdCluster",
    "EtcdMember",
    "EtcdProcessError",
    "EtcdServer",
    "TLSFiles",
    "find_etcd_binary",
]


_publish(__name__, globals())
