"""Prometheus text exposition of large families, built once and kept while unchanged.

Large families are `RowsFamily` objects: their exposition text is built once from plain
rows and kept by their provider while the change versions it came from are the same
(kiemke/collector/changes.py), so a scrape at 100,000 machines concatenates text instead
of formatting 100,000 samples. `BlocksFamily` goes further: a family made of blocks
(unit x rule) re-renders only the blocks a change touched. Both render exactly what
prometheus_client's generate_latest would, and `exposition()` joins them with the
small families that go through prometheus_client.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# prometheus_client's own number format, given its type (the library has no annotations).
float_text: Callable[[float], str] = floatToGoString


def escape(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


class RowsFamily(Metric):
    """A gauge family held as rows of label values; its exposition text is built once.

    Renders exactly like prometheus_client's generate_latest (labels sorted by name,
    values through floatToGoString), so both paths give the same bytes. `samples` are
    only built when the prometheus_client path asks for them.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, "gauge")
        self.label_names = tuple(labels)
        self.rows: list[tuple[Sequence[str], float]] = []
        self._text: bytes | None = None
        self._gzip: bytes | None = None

    def add(self, values: Sequence[str], value: float) -> None:
        self.rows.append((values, value))
        self._text = self._gzip = None

    @property
    def samples(self) -> list[Sample]:
        names, name = self.label_names, self.name
        return [Sample(name, dict(zip(names, values, strict=True)), value, None, None)
                for values, value in self.rows]

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the rows are the samples

    def text(self) -> bytes:
        """The family in the text format, UTF-8, built once."""
        if self._text is None:
            self._text = self._render().encode("utf-8")
        return self._text

    def _render(self) -> str:
        return family_head(self.name, self.documentation).decode("utf-8") + \
            render_lines(self.name, self.label_names, self.rows)

    def gzip(self) -> bytes:
        """text() as one gzip member, built once."""
        if self._gzip is None:
            self._gzip = gzip_member(self.text())
        return self._gzip


def family_head(name: str, documentation: str) -> bytes:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n".encode()


def render_lines(name: str, label_names: Sequence[str],
                 rows: Iterable[tuple[Sequence[str], float]]) -> str:
    """Sample lines like prometheus_client's generate_latest: labels sorted by name,
    values through floatToGoString."""
    return LineFormat(name, label_names).render(rows)


class LineFormat:
    """The sample line format of one family, made once and filled per row."""

    __slots__ = ("name", "order", "template")

    def __init__(self, name: str, label_names: Sequence[str]) -> None:
        self.name = name
        self.order = sorted(range(len(label_names)), key=label_names.__getitem__)
        # name{a="{0}",b="{1}"} - one format string per family.
        parts = ",".join(f'{label_names[i]}="{{{n}}}"' for n, i in enumerate(self.order))
        self.template = (name + "{{" + parts + "}} ").format

    def render(self, rows: Iterable[tuple[Sequence[str], float]]) -> str:
        order, template = self.order, self.template
        if not order:
            return "".join(f"{self.name} {float_text(v)}\n" for _, v in rows)
        seen: dict[str, str] = {}  # unit ids and rule ids repeat: escape each once
        lines = []
        for values, value in rows:
            escaped = []
            for i in order:
                v = values[i]
                e = seen.get(v)
                if e is None:
                    e = seen[v] = escape(v)
                escaped.append(e)
            lines.append(f"{template(*escaped)}{float_text(value)}\n")
        return "".join(lines)


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member. Members concatenate into one valid gzip stream (RFC 1952
    2.2; Go's reader, which Prometheus uses, reads them all), so cached parts are
    compressed once and a response only joins them. Level 1: the text repeats itself so
    much that higher levels save little and cost several times the CPU. (compressobj:
    zlib.compress takes wbits only from Python 3.11 on.)"""
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 16 + 15: a gzip header and trailer
    return gz.compress(data) + gz.flush()


class Block:
    """A part of a BlocksFamily: rows of label values until rendered, then only their text.

    The family that renders the block drops its rows (the text is what a scrape needs and
    what a process keeps: at 100,000 machines the rows of the failing series took more
    memory than their text); `gz` is the text as one gzip member, made on the first gzip
    scrape that needs it.
    """

    __slots__ = ("rows", "text", "gz")

    def __init__(self, rows: Sequence[tuple[Sequence[str], float]]) -> None:
        self.rows: Sequence[tuple[Sequence[str], float]] | None = rows
        self.text: bytes | None = None
        self.gz: bytes | None = None

    def member(self) -> bytes:
        if self.gz is None:
            self.gz = gzip_member(self.text) if self.text else b""
        return self.gz


EMPTY_BLOCK = Block([])
EMPTY_BLOCK.rows, EMPTY_BLOCK.text, EMPTY_BLOCK.gz = None, b"", b""

# A segment with more text than this is compressed block by block, so that a change
# re-compresses its own blocks only (a failing-series block of one unit and rule is a few
# kB, and alone compresses about 10 % worse than within its segment); smaller segments
# (the figures: a few lines per block) are one gzip member, which compresses them 3-6
# times better than block by block.
SEGMENT_MEMBER_MAX = 16 * 1024


class _Segment:
    __slots__ = ("blocks", "size", "gz")

    def __init__(self, blocks: tuple[Block, ...]) -> None:
        self.blocks = blocks
        self.size = sum(len(b.text or b"") for b in blocks)
        self.gz: bytes | None = None

    def members(self) -> list[bytes]:
        if self.size > SEGMENT_MEMBER_MAX:
            return [b.member() for b in self.blocks if b.text]
        if self.gz is None:
            self.gz = gzip_member(b"".join(b.text or b"" for b in self.blocks)) \
                if self.size else b""
        return [self.gz]


class BlocksFamily(Metric):
    """A gauge family made of blocks in a fixed order (for example unit x rule), so that a
    change rebuilds only the blocks it touched.

    A block is rendered once, when a family first holds it; consecutive blocks are grouped
    in segments of `per_segment` for gzip, and a segment whose blocks are the same objects
    as in the `previous` family keeps its gzip member(s). The text is what RowsFamily
    renders for the same rows in the same order; it is joined on each plain scrape rather
    than kept a second time (a copy of 20 MB at 100,000 machines costs milliseconds).
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str],
                 blocks: Sequence[Block], per_segment: int,
                 previous: BlocksFamily | None = None) -> None:
        super().__init__(name, documentation, "gauge")
        self.label_names = tuple(labels)
        self.blocks = list(blocks)
        self._head = family_head(name, documentation)
        old = previous._segments if previous is not None and \
            previous.label_names == self.label_names else []
        lines = LineFormat(name, self.label_names)
        self._segments: list[_Segment] = []
        for n, start in enumerate(range(0, len(self.blocks), per_segment)):
            part = tuple(self.blocks[start:start + per_segment])
            reuse = old[n] if n < len(old) else None
            if reuse is not None and len(reuse.blocks) == len(part) and all(
                    a is b for a, b in zip(reuse.blocks, part, strict=True)):
                self._segments.append(reuse)
                continue
            for block in part:
                if block.text is None:
                    block.text = lines.render(block.rows or ()).encode("utf-8")
                    block.rows = None
            self._segments.append(_Segment(part))

    @property
    def samples(self) -> list[Sample]:
        # The rows are gone once rendered: the prometheus_client path (collect(), tests)
        # reads the samples back from the text.
        found: list[Sample] = []
        for family in text_string_to_metric_families(self.text().decode("utf-8")):
            found.extend(family.samples)
        return found

    @samples.setter
    def samples(self, _value: list[Sample]) -> None:
        pass  # Metric.__init__ sets an empty list; the blocks hold the samples

    def chunks(self) -> list[bytes]:
        """The family's text in parts (the head, then each non-empty block)."""
        return [self._head, *(b.text for b in self.blocks if b.text)]

    def text(self) -> bytes:
        return b"".join(self.chunks())

    def gzip(self) -> list[bytes]:
        """The text as gzip members: the head's, then the segments' (made once each)."""
        parts = [gzip_member(self._head)]
        for segment in self._segments:
            parts.extend(segment.members())
        return parts


def exposition(families: Iterable[Metric], gzip: bool = False) -> list[bytes]:
    """Text of metric families as chunks: RowsFamily and BlocksFamily from their own text
    (kept while the family is cached, so a steady scrape copies bytes only), others via
    prometheus_client. With `gzip`, gzip members: cached ones for the kept families, the
    small others compressed now."""
    out: list[bytes] = []
    plain: list[Metric] = []

    def flush_plain() -> None:
        if plain:
            text = generate_latest(_Families(plain))
            out.append(gzip_member(text) if gzip else text)
            plain.clear()

    for family in families:
        if isinstance(family, BlocksFamily):
            flush_plain()
            out.extend(family.gzip() if gzip else family.chunks())
        elif isinstance(family, RowsFamily):
            flush_plain()
            out.append(family.gzip() if gzip else family.text())
        else:
            plain.append(family)
    flush_plain()
    return out


class _Families:
    """A prometheus_client collector over a fixed list of families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families

