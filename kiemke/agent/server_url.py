"""Which collector URLs the agent talks to: https://, or http:// on loopback only.

Plain http:// to another machine would carry the agent's secret, the enrolment token
and every report unencrypted across the office LAN and the provincial WAN. It is refused
for enrolment, delivery (send, run) and the collector check, unless the operator sets
`[agent] allow_insecure_http = true` (lab networks; docs/agent-config.md). Kept apart
from transport.py so that `collect` can use it without importing requests.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class InsecureServer(ValueError):
    """The collector URL is plain http:// to another machine and that is not allowed."""


INSECURE_HINT = ("Use https://, or, on a lab network only, set allow_insecure_http = true "
                 "in the [agent] section of agent.conf (environment: "
                 "KIEMKE_ALLOW_INSECURE_HTTP=true).")


def check_server_url(url: str, insecure: bool = False) -> str:
    """The URL without a trailing slash; http:// only for loopback or when `insecure`
    ([agent] allow_insecure_http). Raises ValueError (InsecureServer for http://)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port; use the form "
                         "https://kiemke.example.gov.vn:8443") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a collector URL; use the form "
                         "https://kiemke.example.gov.vn")
    if parts.scheme == "http" and not insecure and not is_loopback_url(url):
        raise InsecureServer(f"{url} uses http://, which would send the agent's secret, "
                             f"the enrolment token and the reports unencrypted. "
                             f"{INSECURE_HINT}")
    return url
