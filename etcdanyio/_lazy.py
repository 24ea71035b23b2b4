"""
The generated message modules, imported on first use.

Importing them costs more than the rest of the package together (betterproto2 brings
``importlib.metadata`` and, when installed, pydantic with it), while the hot paths encode and
decode through ``_codec`` and never touch them. Modules that build the colder requests take
them from here, and the import happens the first time one of those requests is built.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any


class LazyModule(types.ModuleType):
    """A stand-in for the module ``target``, imported when an attribute is first read."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.__dict__["_lazy_target"] = target

    def __getattr__(self, name: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        # Later reads find the attributes here, without coming back to __getattr__.
        self.__dict__.update(
            (key, value) for key, value in vars(module).items() if not key.startswith("__")
        )
        return getattr(module, name)


if TYPE_CHECKING:  # type checkers see the modules themselves
    from ._pb import authpb as authpb
    from ._pb import etcdserverpb as etcdserverpb
    from ._pb import v3electionpb as v3electionpb
    from ._pb import v3lockpb as v3lockpb
else:
    authpb = LazyModule("etcdanyio._pb.authpb")
    etcdserverpb = LazyModule("etcdanyio._pb.etcdserverpb")
    v3electionpb = LazyModule("etcdanyio._pb.v3electionpb")
    v3lockpb = LazyModule("etcdanyio._pb.v3lockpb")
