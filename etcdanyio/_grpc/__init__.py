"""
An anyio-native gRPC client: our own sans-IO HTTP/2 core plus ``hpack``.

Nothing in this package knows about etcd. The layers above use :class:`Channel`
to make calls and translate the errors defined in :mod:`._errors`.
"""

from ._channel import Channel as Channel
from ._channel import Endpoint as Endpoint
from ._errors import (
    ConnectionLostError as ConnectionLostError,
)
from ._errors import (
    GrpcError as GrpcError,
)
from ._errors import (
    MessageTooLargeError as MessageTooLargeError,
)
from ._errors import (
    ProtocolViolation as ProtocolViolation,
)
from ._errors import (
    StreamRefusedError as StreamRefusedError,
)
from ._errors import (
    TransportError as TransportError,
)
from ._errors import (
    UnreachableError as UnreachableError,
)
from ._status import Status as Status
