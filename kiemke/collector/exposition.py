"""Prometheus text exposition of large families, built once and kept while unchanged.

Large families are `RowsFamily` objects: their exposition text is built once from plain
rows and kept by their provider while the change versions it came from are the same
(kiemke/collector/changes.py), so a scrape at 100,000 machines concatenates text instead
of formatting 100,000 samples. `BlocksFamily` goes further: a family made of blocks
(unit x rule) re-renders only the blocks a change touched, keeps each block's text once
(not its rows, not a joined copy) and sends the blocks' texts, or their gzip members, as
the parts of the body. Both render exactly what prometheus_client's generate_latest
would, and `exposition()` joins them with the small families that go through
prometheus_client.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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

    def render_packed(self, packed: str, width: int) -> str:
        """render() of rows packed by Block: `width` fields per row (the label values in
        the family's label order, escaped, then the formatted value)."""
        if not packed:
            return ""
        fields = packed.split("\n")
        last = width - 1
        if not self.order:
            return "".join(f"{self.name} {v}\n" for v in fields)
        order, template = self.order, self.template
        lines = []
        for start in range(0, len(fields), width):
            row = fields[start:start + width]
            lines.append(f"{template(*[row[i] for i in order])}{row[last]}\n")
        return "".join(lines)


def gzip_member(data: bytes) -> bytes:
    """`data` as one gzip member. Members concatenate into one valid gzip stream (RFC 1952
    2.2; Go's reader, which Prometheus uses, reads them all), so cached parts are
    compressed once and a response only joins them. Level 1: the text repeats itself so
    much that higher levels save little and cost several times the CPU. (compressobj:
    zlib.compress takes wbits only from Python 3.11 on.)"""
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 16 + 15: a gzip header and trailer
    return gz.compress(data) + gz.flush()


def gunzip_members(raw: bytes) -> tuple[bytes, int]:
    """A body of gzip members (what gzip_member parts join into) decoded member by member,
    strictly, and the number of members; a member without its trailer (a cut body)
    raises ValueError. For Python clients of /metrics: urllib3 2.6-2.8, under requests'
    `.content`, can cut such a body silently (docs/metrics.md, "gzip")."""
    parts, members = [], 0
    while raw:
        decoder = zlib.decompressobj(wbits=31)  # 16 + 15: gzip header and trailer
        parts.append(decoder.decompress(raw))
        if not decoder.eof:
            raise ValueError(f"gzip member {members} is cut: {len(raw)} bytes left without "
                             "its trailer")
        raw, members = decoder.unused_data, members + 1
    return b"".join(parts), members


class Block:
    """A part of a BlocksFamily: its rows packed into one string until a family renders
    them, then only their text.

    The rows are packed when the block is made: label values escaped and numbers
    formatted as in the text, every field followed by a newline (an escaped label value
    holds none). The caller's lists can then go while it reads the next blocks: at 100,000
    machines the failing series' rows as lists took about 380 bytes each, and a first
    build that held them all kept the worker's memory that much higher. The family that
    renders the block drops the packed rows (the text is what a scrape needs and what a
    process keeps); `gz` is the text as one gzip member, made on the first gzip scrape
    that needs it.
    """

    __slots__ = ("packed", "width", "text", "gz")

    def __init__(self, rows: Iterable[tuple[Sequence[str], float]]) -> None:
        fields: list[str] = []
        width = 0
        for values, value in rows:
            fields.extend(map(escape, values))
            fields.append(float_text(value))
            width = len(values) + 1
        self.packed: str | None = "\n".join(fields) if fields else None
        self.width = width
        self.text: bytes | None = None if fields else b""
        self.gz: bytes | None = None

    @classmethod
    def of_text(cls, text: bytes) -> Block:
        """A block whose text is already rendered (lines in the family's format)."""
        block = cls([])
        block.text = text
        return block

    def render(self, lines: LineFormat) -> None:
        """The text of the packed rows in the family's line format; the rows are dropped."""
        if self.text is None:
            self.text = lines.render_packed(self.packed or "", self.width).encode("utf-8")
            self.packed = None

    def member(self) -> bytes:
        if self.gz is None:
            self.gz = gzip_member(self.text) if self.text else b""
        return self.gz


EMPTY_BLOCK = Block([])

# A segment with more text than this is compressed block by block, so that a change
# re-compresses its own blocks only (a failing-series block of one unit and rule is a few
# kB, and alone compresses about 10 % worse than within its segment); smaller segments
# (the figures: a few lines per block) are one gzip member, which compresses them 3-6
# times better than block by block.
SEGMENT_MEMBER_MAX = 16 * 1024


class _Segment:
    """Consecutive blocks of a family. A scrape sends a segment as one part where it can
    (one gzip member; for a small segment one text), not one part per block: at 100,000
    machines a family has thousands of blocks, and each part costs the server (Werkzeug,
    a socket write) more than its bytes."""

    __slots__ = ("blocks", "size", "gz", "text")

    def __init__(self, blocks: tuple[Block, ...]) -> None:
        self.blocks = blocks
        self.size = sum(len(b.text or b"") for b in blocks)
        self.gz: bytes | None = None  # the segment's gzip, made on the first gzip scrape
        self.text: bytes | None = None  # a small segment's joined text, once asked

    @classmethod
    def rendered(cls, blocks: tuple[Block, ...], lines: LineFormat) -> _Segment:
        """A segment of these blocks, each rendered first (a block renders once)."""
        for block in blocks:
            block.render(lines)
        return cls(blocks)

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # Saved (metrics_snapshot) without the joined copies: remade when first asked.
        return None, {"blocks": self.blocks, "size": self.size}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        self.blocks, self.size = state[1]["blocks"], state[1]["size"]
        self.gz = self.text = None

    def members(self) -> list[bytes]:
        if self.gz is None:
            if self.size > SEGMENT_MEMBER_MAX:
                # A member per block (kept by the block: a change re-compresses only its
                # own), sent joined.
                self.gz = b"".join(b.member() for b in self.blocks if b.text)
            else:
                self.gz = gzip_member(b"".join(b.text or b"" for b in self.blocks)) \
                    if self.size else b""
        return [self.gz] if self.gz else []

    def chunks(self) -> list[bytes]:
        """The segment's text in parts: one for a small segment (the figures: a few lines
        per block; the copy is small), else the blocks' own (the failing series: a
        copy would double the 20 MB a process keeps)."""
        if self.size > SEGMENT_MEMBER_MAX:
            return [b.text for b in self.blocks if b.text]
        if self.text is None:
            self.text = b"".join(b.text or b"" for b in self.blocks)
        return [self.text] if self.text else []


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
        self.per_segment = per_segment
        self._head = family_head(name, documentation)
        old = previous._segments if previous is not None and \
            previous.label_names == self.label_names else []
        lines = LineFormat(name, self.label_names)
        self._segments: list[_Segment] = []
        for n, start in enumerate(range(0, len(self.blocks), per_segment)):
            part = tuple(self.blocks[start:start + per_segment])
            reuse = old[n] if n < len(old) else None
            # Tuple equality of blocks is identity (Block has no __eq__), compared in C.
            if reuse is not None and reuse.blocks == part:
                self._segments.append(reuse)
                continue
            self._segments.append(_Segment.rendered(part, lines))
        # The lists a scrape sends, made on the first scrape that asks (references only).
        self._chunks: list[bytes] | None = None
        self._members: list[bytes] | None = None

    def replaced(self, changed: Mapping[int, Block]) -> BlocksFamily:
        """This family with the blocks at the given positions replaced: only their
        segments are rendered and compressed again, and the other blocks are not
        visited (a change touches a few hundred of thousands)."""
        family = object.__new__(BlocksFamily)
        family.__dict__.update(self.__dict__)
        family.blocks = blocks = list(self.blocks)
        family._segments = segments = list(self._segments)
        family._chunks = family._members = None
        per = self.per_segment
        touched = set()
        for position, block in changed.items():
            if blocks[position] is not block:
                blocks[position] = block
                touched.add(position // per)
        if touched:
            lines = LineFormat(self.name, self.label_names)
            for n in touched:
                segments[n] = _Segment.rendered(tuple(blocks[n * per:(n + 1) * per]), lines)
        return family

    def __getstate__(self) -> dict[str, Any]:
        # Saved by kiemke.collector.metrics_snapshot without the lists made from the rest.
        return {**self.__dict__, "_chunks": None, "_members": None}

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
        """The family's text in parts (the head, then each segment's)."""
        if self._chunks is None:
            parts = [self._head]
            for segment in self._segments:
                parts.extend(segment.chunks())
            self._chunks = parts
        return self._chunks

    def text(self) -> bytes:
        return b"".join(self.chunks())

    def gzip(self) -> list[bytes]:
        """The text as gzip members: the head's, then the segments' (made once each)."""
        if self._members is None:
            parts = [gzip_member(self._head)]
            for segment in self._segments:
                parts.extend(segment.members())
            self._members = parts
        return self._members


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

