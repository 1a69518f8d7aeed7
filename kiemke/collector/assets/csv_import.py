"""Parse and validate an asset register CSV (docs/assets.md describes the format).

Accepts what Excel writes on Vietnamese desktops: UTF-8 with or without a BOM, ',' or ';'
(or tab) as the delimiter, dates as YYYY-MM-DD or DD/MM/YYYY, costs with '.' or ','
thousands separators. Every problem is collected with its file line and column so the
whole file can be fixed in one go; the caller imports nothing when there is any.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kiemke.collector.assets.identifiers import host_key, serial_key, tag_key
from kiemke.collector.units import Unit
from kiemke.compliance.config import Category

COLUMNS = ("asset_tag", "serial", "hostname", "category", "purchase_date", "cost", "unit",
           "description")
IDENTIFIERS = ("asset_tag", "serial", "hostname")
REQUIRED = ("category", "purchase_date", "cost")

# Header names accepted besides the English ones (compared without accents and case):
# registers exported from Vietnamese accounting software use these.
ALIASES = {
    "ma tai san": "asset_tag", "so the tai san": "asset_tag", "tag": "asset_tag",
    "so serial": "serial", "so se-ri": "serial", "so seri": "serial",
    "serial number": "serial", "service tag": "serial",
    "ten may": "hostname", "host": "hostname", "computer name": "hostname",
    "loai": "category", "loai tai san": "category",
    "ngay mua": "purchase_date", "ngay su dung": "purchase_date",
    "ngay dua vao su dung": "purchase_date",
    "nguyen gia": "cost", "gia tri": "cost",
    "don vi": "unit", "don vi su dung": "unit",
    "mo ta": "description", "ten tai san": "description", "ghi chu": "description",
}
DELIMITERS = (",", ";", "\t")
EARLIEST = dt.date(1980, 1, 1)

_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_GROUPED = re.compile(r"^\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*$")
_ZERO_FRACTION = re.compile(r"[.,]0{1,2}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the file: where, which column, and what to do."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}, {self.column}: {self.message}" if self.column else \
            f"{where}: {self.message}"


class RegisterError(Exception):
    """The file cannot be imported; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class RegisterRow:
    line: int
    asset_tag: str | None
    serial: str | None
    hostname: str | None
    category: str
    purchase_date: dt.date
    cost: int | None
    unit_id: int | None
    unit_text: str | None
    description: str | None

    @property
    def serial_key(self) -> str | None:
        return serial_key(self.serial)

    @property
    def tag_key(self) -> str | None:
        return tag_key(self.asset_tag)

    @property
    def host_key(self) -> str | None:
        return host_key(self.hostname)


def _plain(text: str) -> str:
    """Lower case without Vietnamese accents: 'Nguyên giá' -> 'nguyen gia'."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(stripped.replace("_", " ").lower().split())


def column_for(header: str) -> str | None:
    plain = _plain(header)
    key = plain.replace(" ", "_")
    if key in COLUMNS:
        return key
    return ALIASES.get(plain)


def decode(data: bytes, file: str) -> str:
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise RegisterError([Problem(
            file, line, None, f"the file is not UTF-8 (byte 0x{data[exc.start]:02x}). In "
            f"Excel use File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)' so that "
            f"Vietnamese letters survive")]) from None
    return unicodedata.normalize("NFC", text)  # one spelling for every accented letter


def sniff_delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most known column names."""
    def known(delim: str) -> int:
        cells = next(csv.reader([header_line], delimiter=delim), [])
        return sum(1 for c in cells if column_for(c))

    return max(DELIMITERS, key=lambda d: (known(d), header_line.count(d)))


def parse_date(text: str) -> dt.date:
    """YYYY-MM-DD or DD/MM/YYYY; ValueError says what to write instead."""
    hint = "Use YYYY-MM-DD, e.g. 2022-02-28 (or DD/MM/YYYY, e.g. 28/02/2022)."
    for pattern, order in ((_ISO, "ymd"), (_DMY, "dmy")):
        match = pattern.match(text)
        if match:
            parts = dict(zip(order, map(int, match.groups()), strict=True))
            try:
                return dt.date(parts["y"], parts["m"], parts["d"])
            except ValueError:
                raise ValueError(f"'{text}' is not a date. {hint}") from None
    raise ValueError(f"'{text}' is not a date. {hint}")


def parse_cost(text: str) -> int:
    """Whole đồng: '15000000', '15.000.000', '15,000,000', '15 000 000 đ'."""
    compact = re.sub(r"(?i)\s|vnd|vnđ|đồng|đ|₫", "", text)
    compact = _ZERO_FRACTION.sub("", compact) if not _GROUPED.match(compact) else compact
    if compact.isdigit():
        return int(compact)
    if _GROUPED.match(compact):
        return int(re.sub(r"[.,]", "", compact))
    raise ValueError(f"'{text}' is not an amount in đồng. Write a whole number such as "
                     f"15000000 or 15.000.000.")


def _find_category(text: str, categories: dict[str, Category]) -> str | None:
    wanted = _plain(text)
    for key, cat in categories.items():
        if wanted in (_plain(key), _plain(cat.title_vi)):
            return key
    return None


def _find_unit(text: str, units: Iterable[Unit]) -> tuple[Unit | None, str]:
    """A unit by id, code, full path or (unique) name; ('', reason) when none or ambiguous."""
    text = " ".join(text.split())
    units = list(units)
    for unit in units:
        if text in (str(unit.id), unit.code, unit.path):
            return unit, ""
    named = [u for u in units if u.name.casefold() == text.casefold()]
    if len(named) == 1:
        return named[0], ""
    if named:
        return None, (f"several units are named '{text}'; write the full path, e.g. "
                      f"'{named[0].path}', or the unit code")
    return None, (f"'{text}' is not a unit in kiemke. Use a code, name or path shown by "
                  f"`kiemke-collector units list`, or leave it empty")


def _header(rows: list[tuple[int, list[str]]], file: str) -> tuple[dict[str, int], list[Problem]]:
    if not rows:
        return {}, [Problem(file, 0, None, "the file is empty; the first line must be the "
                                           "header: " + ",".join(COLUMNS))]
    line, cells = rows[0]
    index: dict[str, int] = {}
    problems = []
    for i, cell in enumerate(cells):
        name = column_for(cell)
        if name is None:
            continue  # extra columns (STT, notes) are ignored, see docs/assets.md
        if name in index:
            problems.append(Problem(file, line, name, f"the column appears twice (cells "
                                                      f"{index[name] + 1} and {i + 1})"))
        index[name] = i
    missing = [c for c in REQUIRED if c not in index]
    if missing:
        problems.append(Problem(file, line, None, f"the header has no column {', '.join(missing)}"
                                                  f"; the first line must name the columns, "
                                                  f"e.g. " + ",".join(COLUMNS)))
    if not any(c in index for c in IDENTIFIERS):
        problems.append(Problem(file, line, None, "the header needs at least one of asset_tag, "
                                                  "serial, hostname to find the machines"))
    return index, problems


def _records(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """(first file line of the record, cells) for every non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    out, start = [], 1
    for cells in reader:
        if any(c.strip() for c in cells):
            out.append((start, cells))
        start = reader.line_num + 1
    return out


def parse_register(data: bytes, file: str, categories: dict[str, Category],
                   units: Iterable[Unit] = (), today: dt.date | None = None
                   ) -> list[RegisterRow]:
    """Every row of the register, or RegisterError listing every problem with its line."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    text = decode(data, file)
    first_line = text.split("\n", 1)[0]
    try:
        records = _records(text, sniff_delimiter(first_line))
    except csv.Error as exc:
        raise RegisterError([Problem(file, 0, None, f"not a CSV file: {exc}")]) from None
    index, problems = _header(records, file)
    if problems:
        raise RegisterError(problems)
    units = list(units)
    rows: list[RegisterRow] = []
    seen_tags: dict[str, int] = {}
    seen_serials: dict[str, int] = {}
    for line, cells in records[1:]:
        row_problems: list[Problem] = []

        def bad(column: str | None, message: str, line: int = line,
                sink: list[Problem] = row_problems) -> None:
            sink.append(Problem(file, line, column, message))

        if len(cells) > len(records[0][1]) and any(c.strip() for c in
                                                   cells[len(records[0][1]):]):
            bad(None, f"{len(cells)} cells but the header has {len(records[0][1])}; a value "
                      f"probably contains the delimiter: put that value in double quotes")
            problems.extend(row_problems)
            continue

        def cell(name: str, cells: list[str] = cells) -> str:
            i = index.get(name)
            return " ".join(cells[i].split()) if i is not None and i < len(cells) else ""

        tag, serial, hostname = cell("asset_tag"), cell("serial"), cell("hostname")
        if serial and serial_key(serial) is None:
            if not (tag_key(tag) or host_key(hostname)):
                bad("serial", f"'{serial}' is a placeholder, not a serial number. Give the "
                              f"real serial (on the label), an asset_tag or a hostname")
        elif not (tag or serial or hostname):
            bad("asset_tag", "the row has no asset_tag, serial or hostname: give at least "
                             "one so the machine can be found")
        for value, key, seen, column in ((tag, tag_key(tag), seen_tags, "asset_tag"),
                                         (serial, serial_key(serial), seen_serials, "serial")):
            if key and key in seen:
                bad(column, f"'{value}' is already on line {seen[key]}: each asset appears "
                            f"once in the register")
            elif key:
                seen[key] = line

        category = None
        raw_category = cell("category")
        if not raw_category:
            bad("category", f"empty. Use one of {', '.join(categories)} "
                            f"(rules/depreciation.yml)")
        else:
            category = _find_category(raw_category, categories)
            if category is None:
                bad("category", f"'{raw_category}' is not a category in rules/depreciation.yml. "
                                f"Use one of {', '.join(categories)}, or remove rows that are "
                                f"not computers")

        purchase = None
        raw_date = cell("purchase_date")
        if not raw_date:
            bad("purchase_date", "empty. Write the date the asset was bought or put in use, "
                                 "e.g. 2022-02-28")
        else:
            try:
                purchase = parse_date(raw_date)
            except ValueError as exc:
                bad("purchase_date", str(exc))
            else:
                if purchase > today:
                    bad("purchase_date", f"'{raw_date}' is in the future. Check the year")
                elif purchase < EARLIEST:
                    bad("purchase_date", f"'{raw_date}' is before {EARLIEST.year}. Check "
                                         f"the year")

        cost = None
        raw_cost = cell("cost")
        if raw_cost:
            try:
                cost = parse_cost(raw_cost)
            except ValueError as exc:
                bad("cost", str(exc))

        unit = None
        raw_unit = cell("unit")
        if raw_unit:
            unit, why = _find_unit(raw_unit, units)
            if unit is None:
                bad("unit", why)

        if row_problems:
            problems.extend(row_problems)
            continue
        assert category is not None and purchase is not None  # checked above
        rows.append(RegisterRow(line, tag or None, serial or None, hostname or None, category,
                                purchase, cost, unit.id if unit else None, raw_unit or None,
                                cell("description") or None))
    if problems:
        raise RegisterError(problems)
    return rows


def read_register(path: str | Path, categories: dict[str, Category],
                  units: Iterable[Unit] = (), today: dt.date | None = None
                  ) -> tuple[list[RegisterRow], bytes]:
    """parse_register on a file; (rows, raw bytes) so the caller can record a checksum."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegisterError([Problem(str(path), 0, None, f"cannot read the file: "
                                                         f"{exc.strerror}")]) from None
    return parse_register(data, str(path), categories, units, today), data
