"""The client: :func:`open_etcd` and :class:`Client` (implemented in ``etcdanyio._client``)."""

from ._client import Client, open_etcd
from ._public import publish as _publish

__all__ = ["Client", "open_etcd"]

_publish(__name__, globals())
