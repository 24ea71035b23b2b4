"""The Cluster service: list, add, remove, update and promote members."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from ._codec_calls import decode_member_list_response, encode_member_list
from ._lazy import etcdserverpb as pb  # imported on first use
from ._service import Service
from .types import Member, MemberAddResult

_LIST = "/etcdserverpb.Cluster/MemberList"
_ADD = "/etcdserverpb.Cluster/MemberAdd"
_REMOVE = "/etcdserverpb.Cluster/MemberRemove"
_UPDATE = "/etcdserverpb.Cluster/MemberUpdate"
_PROMOTE = "/etcdserverpb.Cluster/MemberPromote"


def check_member_id(value: object, what: str = "member ID", *, zero: bool = False) -> int:
    """
    A member ID: an ``int`` (not a bool) that fits in etcd's unsigned 64 bits.

    etcd's IDs are random 64-bit numbers, so half of them are above ``2**63``. No member has
    ID 0 (Raft reserves it), so 0 is refused unless ``zero`` says it means "every member".
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {value!r} ({type(value).__name__})")
    if value < 0 or value >= 2**64:
        raise ValueError(f"{what} must be an unsigned 64-bit int, got {value}")
    if value == 0 and not zero:
        raise ValueError(f"{what} must not be 0 (no member has ID 0)")
    return value


def check_peer_urls(peer_urls: object) -> list[str]:
    """
    Peer URLs as etcd accepts them: a non-empty list of ``http(s)://host:port`` strings without
    a path (etcd's ``types.NewURLs``).
    """
    if isinstance(peer_urls, (str, bytes)) or not isinstance(peer_urls, Sequence):
        raise TypeError(
            f"peer_urls must be a list of URL strings, got {peer_urls!r} "
            f"({type(peer_urls).__name__})"
        )
    if not peer_urls:
        raise ValueError("peer_urls must not be empty")
    urls: list[str] = []
    for url in peer_urls:
        if not isinstance(url, str):
            raise TypeError(f"peer URL must be a str, got {url!r} ({type(url).__name__})")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"peer URL must look like http://host:port, got {url!r}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ValueError(f"peer URL must look like http://host:port, got {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"peer URL must not have a path, got {url!r}")
        urls.append(url)
    return urls


class ClusterMixin(Service):
    """Cluster membership calls."""

    async def members(self, *, serializable: bool = False) -> list[Member]:
        """
        Every member of the cluster, learners included.

        Retried on unavailability, like every read.

        :param serializable: answer from the local member's view without consensus (may be
            stale, but works without a leader); by default the list is linearizable (etcd 3.5+;
            3.4 ignores the flag and answers from its local view)
        :return: the members, each with ``.id``, ``.name``, ``.peer_urls``, ``.client_urls``
            and ``.is_learner``

        .. versionadded:: 0.1
        """
        request = encode_member_list(not serializable)
        return decode_member_list_response(
            await self._core.call_raw(_LIST, request, repeatable=True)
        )

    async def member_add(
        self, peer_urls: Sequence[str], *, learner: bool = False
    ) -> MemberAddResult:
        """
        Add a member that will be reached at ``peer_urls``.

        The cluster then expects it: start etcd for it with ``--initial-cluster-state existing``
        and an ``--initial-cluster`` that lists every member, the new one included. Until it
        starts, a new voting member counts towards the quorum without answering, so add
        members one at a time (or as learners).

        Not retried once sent (a write).

        :param peer_urls: the new member's ``http(s)://host:port`` peer URLs
        :param learner: add it as a learner: it receives the log but does not vote until
            :meth:`member_promote` makes it a voting member (etcd 3.4+)
        :return: ``.member`` (with its new ``.id``) and ``.members``, the whole list after
        :raises RpcError: with etcd's message, e.g. ``etcdserver: Peer URLs already exists``
            or ``etcdserver: too many learner members in cluster``
        :raises TypeError: if ``peer_urls`` is not a list of strings
        :raises ValueError: if it is empty or a URL is not ``http(s)://host:port``

        .. versionadded:: 0.1
        """
        request = pb.MemberAddRequest(
            peer_ur_ls=check_peer_urls(peer_urls), is_learner=bool(learner)
        )
        response = await self._core.call(_ADD, request, pb.MemberAddResponse, repeatable=False)
        return MemberAddResult.from_pb(response)

    async def member_remove(self, member_id: int) -> list[Member]:
        """
        Remove a member from the cluster; a running member shuts itself down once it learns.

        Not retried once sent (a write).

        :param member_id: the member's ID (``Member.id``)
        :return: the members left
        :raises MemberNotFoundError: if there is no such member
        :raises RpcError: ``etcdserver: re-configuration failed due to not enough started
            members`` if removing it would leave too few running members for a quorum
        :raises ValueError: if ``member_id`` is not a positive 64-bit int

        .. versionadded:: 0.1
        """
        request = pb.MemberRemoveRequest(id=check_member_id(member_id))
        response = await self._core.call(
            _REMOVE, request, pb.MemberRemoveResponse, repeatable=False
        )
        return [Member.from_pb(m) for m in response.members]

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> list[Member]:
        """
        Change the peer URLs of a member (e.g. after it moved to another address).

        Not retried once sent (a write).

        :param member_id: the member's ID
        :param peer_urls: its new ``http(s)://host:port`` peer URLs; they replace the old ones
        :return: every member after the change
        :raises MemberNotFoundError: if there is no such member
        :raises RpcError: ``etcdserver: Peer URLs already exists`` if another member has one
        :raises ValueError: for an empty list or a URL that is not ``http(s)://host:port``

        .. versionadded:: 0.1
        """
        request = pb.MemberUpdateRequest(
            id=check_member_id(member_id), peer_ur_ls=check_peer_urls(peer_urls)
        )
        response = await self._core.call(
            _UPDATE, request, pb.MemberUpdateResponse, repeatable=False
        )
        return [Member.from_pb(m) for m in response.members]

    async def member_promote(self, member_id: int) -> list[Member]:
        """
        Make a learner a voting member (etcd 3.4+).

        The leader promotes only a learner that has caught up with its log; a learner that
        was just started may need a moment: retry on :class:`LearnerNotReadyError`.

        Not retried once sent (a write).

        :param member_id: the learner's ID
        :return: every member after the promotion
        :raises LearnerNotReadyError: if the learner is behind the leader (or not running)
        :raises MemberNotFoundError: if there is no such member
        :raises RpcError: ``etcdserver: can only promote a learner member`` for a voting member

        .. versionadded:: 0.1
        """
        request = pb.MemberPromoteRequest(id=check_member_id(member_id))
        response = await self._core.call(
            _PROMOTE, request, pb.MemberPromoteResponse, repeatable=False
        )
        return [Member.from_pb(m) for m in response.members]
