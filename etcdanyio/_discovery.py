"""
Where the cluster is: DNS SRV discovery (Go's ``--discovery-srv``) and the endpoints of a
member list (auto-sync).

The SRV names etcd's clients look up, and the order of their records (RFC 2782: by
priority, then weighted random) as endpoints; the lookup itself is :mod:`._dns`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

import anyio

from ._dns import SrvRecord, encode_name, lookup_srv, read_resolv_conf
from ._grpc import Endpoint
from .errors import ConnectionFailedError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .types import Member

logger = logging.getLogger("etcdanyio.discovery")


def order_srv(records: Iterable[SrvRecord], rng: random.Random | None = None) -> list[SrvRecord]:
    """
    ``records`` in the order to try them (RFC 2782, "Usage rules"): lowest priority first;
    within a priority, weighted random, a record of weight 0 rarely first.
    """
    rng = rng or random.Random()
    ordered: list[SrvRecord] = []
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    for priority in sorted(by_priority):
        # Zero weights first, so that they are picked only when the draw is 0.
        group = sorted(by_priority[priority], key=lambda r: r.weight != 0)
        while group:
            draw = rng.randint(0, sum(r.weight for r in group))
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= draw:
                    ordered.append(group.pop(index))
                    break
    return ordered


def srv_names(domain: str, service_name: str = "") -> list[tuple[str, bool]]:
    """
    The SRV names etcd's clients look up for ``domain``, each with whether it means TLS:
    ``_etcd-client-ssl[-name]._tcp.domain`` and ``_etcd-client[-name]._tcp.domain`` (Go's
    ``srv.GetSRVService``).
    """
    suffix = f"-{service_name}" if service_name else ""
    domain = domain.rstrip(".")
    return [
        (f"_etcd-client-ssl{suffix}._tcp.{domain}", True),
        (f"_etcd-client{suffix}._tcp.{domain}", False),
    ]


async def discover_endpoints(
    domain: str,
    service_name: str = "",
    *,
    nameserver: tuple[str, int] | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 -- split between nameservers; the lookup is one step of open_etcd
    rng: random.Random | None = None,
) -> list[Endpoint]:
    """
    The client endpoints that DNS SRV records publish for ``domain``.

    ``_etcd-client-ssl._tcp.<domain>`` gives ``https://target:port`` endpoints and
    ``_etcd-client._tcp.<domain>`` ``http://`` ones (with ``service_name``, the service label is
    ``_etcd-client-ssl-<name>`` / ``_etcd-client-<name>``), in the order of RFC 2782. When both
    have records, only the ``https://`` endpoints are used (an etcd client takes one scheme).

    :param nameserver: the DNS server ``(host, port)`` to ask; default the nameservers of
        ``/etc/resolv.conf``, first that answers
    :param timeout: seconds for the whole lookup, shared between the nameservers
    :raises ConnectionFailedError: if no record is found, or no nameserver answered, or the
        answers are malformed; the message names the DNS names tried
    :raises TypeError: if ``domain`` or ``service_name`` is not a str
    :raises ValueError: if ``domain`` is empty or not a valid DNS name
    """
    for what, value in (("discovery_srv", domain), ("discovery_srv_name", service_name)):
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str, got {value!r} ({type(value).__name__})")
    if not domain.strip("."):
        raise ValueError("discovery_srv must be a domain name, got an empty one")
    names = srv_names(domain.strip(), service_name)
    for name, _ in names:
        encode_name(name)  # a bad name raises ValueError before any I/O
    servers = [nameserver] if nameserver is not None else read_resolv_conf()
    attempt_timeout = timeout / len(servers)
    results: dict[str, list[SrvRecord] | LookupError] = {}

    async def lookup(name: str) -> None:
        try:
            found = await lookup_srv(name, servers, attempt_timeout=attempt_timeout)
            results[name] = order_srv(found, rng)
        except LookupError as exc:
            results[name] = exc

    # Both names at once: the whole discovery takes at most ``timeout``.
    async with anyio.create_task_group() as tg:
        for name, _ in names:
            tg.start_soon(lookup, name)
    for name, tls in names:
        found = results[name]
        if isinstance(found, list) and found:
            endpoints = list(dict.fromkeys(Endpoint(r.target, r.port, tls) for r in found))
            logger.debug("discovered endpoints name=%s endpoints=%s", name, endpoints)
            return endpoints
    tried = " and ".join(name for name, _ in names)
    errors = [str(found) for found in results.values() if isinstance(found, LookupError)]
    detail = f": {'; '.join(errors)}" if errors else ""
    raise ConnectionFailedError(f"no DNS SRV records found for {tried}{detail}")


# -- member lists -----------------------------------------------------------------------------


def endpoints_from_members(members: Iterable[Member], *, tls: bool) -> list[Endpoint]:
    """
    The client URLs of the started voting members, as endpoints of one scheme.

    A member added but never started has no name and no client URLs; a learner cannot serve
    most requests (etcd answers "rpc not supported for learner"); both are left out, as Go's
    ``Client.Sync`` does. Only URLs of the client's scheme (``https`` when ``tls``) are kept,
    and URLs that are not ``http(s)://host:port`` (e.g. ``unix://``) are skipped.
    """
    endpoints: list[Endpoint] = []
    for member in members:
        if not member.name or member.is_learner:
            continue
        for url in member.client_urls:
            try:
                endpoint = Endpoint.parse(url)
            except ValueError:
                logger.debug("skipping client URL url=%r member=%s", url, member.name)
                continue
            if endpoint.tls == tls:
                endpoints.append(endpoint)
    return list(dict.fromkeys(endpoints))
