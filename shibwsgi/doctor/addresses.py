"""Socket addresses as the configs write them: ports, and whether a host is loopback."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "port_of", "split_address"]


def split_address(address: str) -> tuple[str | None, str]:
    """``host:port``, ``[::1]:port``, ``:port`` or ``port`` -> (host or None, port)."""
    if address.startswith("[") and "]" in address:
        host, _, rest = address[1:].partition("]")
        return host, rest.lstrip(":")
    host, colon, port = address.rpartition(":")
    if not colon:
        return None, address
    return host, port


def port_of(address: str) -> str:
    return split_address(address)[1]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is on loopback; ``None``/empty/``*`` mean every interface."""
    if not host or host in ("*", "0.0.0.0", "::"):  # noqa: S104 - naming it, not binding it
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere
