"""Syntax checks of download URLs (scheme and host), without any network look-up."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

SCHEMES = ("http", "https", "file")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    return (
        0 < len(name) <= 253
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def url_problem(url) -> str | None:
    """What makes ``url`` unusable for a download (None: nothing): its scheme or host syntax.

    Accepted: ``http://`` and ``https://`` URLs with a host name or IP address (and a valid
    port), ``file://`` URLs with a path. Nothing is looked up on the network.
    """
    if not isinstance(url, str) or not url.strip():
        return "empty URL"
    if any(c.isspace() for c in url):
        return "white space in the URL"
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES:
        found = f"unknown scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"{found} (expected {', '.join(s + '://' for s in SCHEMES)})"
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            return f"a file:// URL names no host (found {parts.netloc!r}; use file:///path)"
        return None if parts.path else "a file:// URL without a path"
    try:
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        return f"malformed host or port {parts.netloc!r} ({exc})"
    if not host:
        return "no host name"
    if not _valid_host(host):
        return f"malformed host name {host!r}"
    return None
