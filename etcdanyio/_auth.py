"""The Auth service: enabling auth, users, roles and permissions; credentials."""

from __future__ import annotations

import dataclasses

from ._grpc._status import NamedIntEnum
from ._lazy import authpb  # imported on first use
from ._lazy import etcdserverpb as pb  # imported on first use
from ._requests import key_range
from ._service import Service
from .types import ResponseHeader

__all__ = ["AuthStatus", "Permission", "RolePermission"]

_AUTH = "/etcdserverpb.Auth/"


class Permission(NamedIntEnum):
    """What a role may do with a key range."""

    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclasses.dataclass(frozen=True, slots=True)
class RolePermission:
    """One permission of a role: a key (``range_end`` empty) or a range."""

    permission: Permission
    key: bytes
    range_end: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class AuthStatus:
    """What :meth:`Client.auth_status` returns."""

    header: ResponseHeader
    #: whether authentication is on
    enabled: bool
    #: bumps on every change to users, roles or permissions
    auth_revision: int


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {value!r} ({type(value).__name__})")
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


class AuthMixin(Service):
    """Auth calls, named after etcd's RPCs."""

    async def auth_enable(self) -> None:
        """Turn authentication on (a ``root`` user with the ``root`` role must exist)."""
        await self._core.call(
            _AUTH + "AuthEnable", pb.AuthEnableRequest(), pb.AuthEnableResponse, repeatable=False
        )

    async def auth_disable(self) -> None:
        """Turn authentication off (as ``root``)."""
        await self._core.call(
            _AUTH + "AuthDisable",
            pb.AuthDisableRequest(),
            pb.AuthDisableResponse,
            repeatable=False,
        )

    async def auth_status(self) -> AuthStatus:
        """Whether authentication is on, and the auth store's revision (etcd 3.5+)."""
        response = await self._core.call(
            _AUTH + "AuthStatus", pb.AuthStatusRequest(), pb.AuthStatusResponse, repeatable=True
        )
        return AuthStatus(
            ResponseHeader.from_pb(response.header), response.enabled, response.auth_revision
        )

    async def user_add(self, name: str, password: str | None) -> None:
        """Add a user; ``password=None`` makes one that can only use TLS client certificates."""
        if password is not None and not isinstance(password, str):
            raise TypeError(f"password must be a str or None, got {type(password).__name__}")
        request = pb.AuthUserAddRequest(
            name=_name(name, "user name"),
            password=password or "",
            options=authpb.UserAddOptions(no_password=password is None),
        )
        await self._core.call(_AUTH + "UserAdd", request, pb.AuthUserAddResponse, repeatable=False)

    async def user_get(self, name: str) -> list[str]:
        """The roles granted to a user."""
        request = pb.AuthUserGetRequest(name=_name(name, "user name"))
        response = await self._core.call(
            _AUTH + "UserGet", request, pb.AuthUserGetResponse, repeatable=True
        )
        return list(response.roles)

    async def user_list(self) -> list[str]:
        """The names of every user."""
        response = await self._core.call(
            _AUTH + "UserList", pb.AuthUserListRequest(), pb.AuthUserListResponse, repeatable=True
        )
        return list(response.users)

    async def user_delete(self, name: str) -> None:
        """Delete a user (its tokens stop working at once)."""
        request = pb.AuthUserDeleteRequest(name=_name(name, "user name"))
        await self._core.call(
            _AUTH + "UserDelete", request, pb.AuthUserDeleteResponse, repeatable=False
        )

    async def user_change_password(self, name: str, password: str) -> None:
        """Set a user's password (a client logged in as it authenticates again when it must)."""
        if not isinstance(password, str):
            raise TypeError(f"password must be a str, got {type(password).__name__}")
        request = pb.AuthUserChangePasswordRequest(name=_name(name, "user name"), password=password)
        await self._core.call(
            _AUTH + "UserChangePassword",
            request,
            pb.AuthUserChangePasswordResponse,
            repeatable=False,
        )

    async def user_grant_role(self, user: str, role: str) -> None:
        """Give ``user`` the permissions of ``role``."""
        request = pb.AuthUserGrantRoleRequest(
            user=_name(user, "user name"), role=_name(role, "role name")
        )
        await self._core.call(
            _AUTH + "UserGrantRole", request, pb.AuthUserGrantRoleResponse, repeatable=False
        )

    async def user_revoke_role(self, user: str, role: str) -> None:
        """Take ``role`` from ``user``."""
        request = pb.AuthUserRevokeRoleRequest(
            name=_name(user, "user name"), role=_name(role, "role name")
        )
        await self._core.call(
            _AUTH + "UserRevokeRole", request, pb.AuthUserRevokeRoleResponse, repeatable=False
        )

    async def role_add(self, name: str) -> None:
        """Add a role without permissions (grant them with :meth:`role_grant_permission`)."""
        request = pb.AuthRoleAddRequest(name=_name(name, "role name"))
        await self._core.call(_AUTH + "RoleAdd", request, pb.AuthRoleAddResponse, repeatable=False)

    async def role_get(self, name: str) -> list[RolePermission]:
        """A role's permissions (keys without the client's namespace)."""
        request = pb.AuthRoleGetRequest(role=_name(name, "role name"))
        response = await self._core.call(
            _AUTH + "RoleGet", request, pb.AuthRoleGetResponse, repeatable=True
        )
        ns = self._core.ns
        return [
            RolePermission(
                Permission(int(p.perm_type)),
                ns.strip(p.key),
                ns.strip(p.range_end) if p.range_end not in (b"", b"\0") else p.range_end,
            )
            for p in response.perm
        ]

    async def role_list(self) -> list[str]:
        """The names of every role."""
        response = await self._core.call(
            _AUTH + "RoleList", pb.AuthRoleListRequest(), pb.AuthRoleListResponse, repeatable=True
        )
        return list(response.roles)

    async def role_delete(self, name: str) -> None:
        """Delete a role; the users that had it lose its permissions."""
        request = pb.AuthRoleDeleteRequest(role=_name(name, "role name"))
        await self._core.call(
            _AUTH + "RoleDelete", request, pb.AuthRoleDeleteResponse, repeatable=False
        )

    async def role_grant_permission(
        self,
        role: str,
        key: str | bytes,
        *,
        permission: Permission | str,
        end: str | bytes | None = None,
        prefix: bool = False,
    ) -> None:
        """
        Let ``role`` read and/or write ``key`` (or a range: ``prefix=True`` or ``end=``).

        :param permission: ``Permission.READ``, ``WRITE`` or ``READWRITE`` (or their names);
            required: clients differ on the default (etcd3-py grants READ, others READWRITE),
            so there is none
        :raises TypeError: if ``permission`` is missing or not a permission
        :raises RoleNotFoundError: if the role does not exist
        """
        start, range_end = key_range(key, end, prefix=prefix)
        if isinstance(permission, str) and permission.upper() in Permission.__members__:
            permission = Permission[permission.upper()]
        if not isinstance(permission, Permission):
            raise TypeError(
                "permission must be a Permission or one of 'read', 'write', 'readwrite', "
                f"got {permission!r}"
            )
        request = pb.AuthRoleGrantPermissionRequest(
            name=_name(role, "role name"),
            perm=authpb.Permission(
                perm_type=authpb.PermissionType(int(permission)),
                key=self._core.ns.key(start),
                range_end=self._core.ns.range_end(range_end),
            ),
        )
        await self._core.call(
            _AUTH + "RoleGrantPermission",
            request,
            pb.AuthRoleGrantPermissionResponse,
            repeatable=False,
        )

    async def role_revoke_permission(
        self,
        role: str,
        key: str | bytes,
        *,
        end: str | bytes | None = None,
        prefix: bool = False,
    ) -> None:
        """Take back the permission on exactly this key or range."""
        start, range_end = key_range(key, end, prefix=prefix)
        request = pb.AuthRoleRevokePermissionRequest(
            role=_name(role, "role name"),
            key=self._core.ns.key(start),
            range_end=self._core.ns.range_end(range_end),
        )
        await self._core.call(
            _AUTH + "RoleRevokePermission",
            request,
            pb.AuthRoleRevokePermissionResponse,
            repeatable=False,
        )
