"""
Transaction builders: compare targets and operations.

.. code-block:: python

    from etcdanyio import txn

    result = await client.txn(
        compare=[txn.version("job/1") == 0],  # the key is absent
        success=[txn.put("job/1", "claimed")],
        failure=[txn.get("job/1")],
    )

Every builder validates its arguments when it is called (``TypeError`` /
``ValueError``), so a bad transaction fails where it is written, not when it
is sent. All objects are immutable; comparing a target returns a new
:class:`Compare` and leaves the target unchanged.
"""

from ._txn import (
    Compare,
    Delete,
    Get,
    Op,
    Put,
    Txn,
    create_revision,
    delete,
    get,
    lease,
    mod_revision,
    put,
    txn,
    value,
    version,
)

__all__ = [
    "Compare",
    "Delete",
    "Get",
    "Op",
    "Put",
    "Txn",
    "create_revision",
    "delete",
    "get",
    "lease",
    "mod_revision",
    "put",
    "txn",
    "value",
    "version",
]
