"""GET /metrics from a real server, decoded here rather than by requests.

The gzip body is several gzip members (docs/metrics.md, "gzip"). urllib3 2.6-2.8, under
requests' `.content` and `.text`, reads it in 10 KiB pieces and cuts it silently when a
member ends exactly where a piece of decoded text ends; a test that read series through
it would fail now and then for the client's fault. These helpers take the bytes as sent
and decode them member by member, strictly (exposition.gunzip_members).
"""

from __future__ import annotations

import requests

from kiemke.collector.exposition import gunzip_members


def scrape(url: str, encoding: str = "gzip", timeout: float = 60
           ) -> tuple[bytes, int, int | None]:
    """One GET {url}/metrics: the text (decoded here when gzip), its gzip members (0 for
    plain text) and the Content-Length sent (None when chunked, e.g. through a proxy),
    which must then be the bytes received."""
    with requests.get(f"{url}/metrics", headers={"Accept-Encoding": encoding}, stream=True,
                      timeout=timeout) as resp:
        assert resp.status_code == 200, resp.status_code
        raw = resp.raw.read(decode_content=False)
        length = resp.headers.get("Content-Length")
        gzipped = resp.headers.get("Content-Encoding") == "gzip"
    sent = None if length is None else int(length)
    assert sent in (None, len(raw)), f"Content-Length {sent}, {len(raw)} bytes received"
    assert gzipped == (encoding != "identity"), resp.headers
    text, members = gunzip_members(raw) if gzipped else (raw, 0)
    return text, members, sent


def metrics_text(url: str, timeout: float = 60) -> str:
    """The /metrics text of the server at `url`, fetched gzip as Prometheus does."""
    return scrape(url, timeout=timeout)[0].decode("utf-8")
