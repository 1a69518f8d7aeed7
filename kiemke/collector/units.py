"""The unit tree: ministry/province -> district -> office. Every figure rolls up.

`path` is the names from the root joined with " / "; `level` is 0 for a root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from kiemke.collector.db.engine import inserted_id
from kiemke.collector.db.tables import units
from kiemke.collector.jsoninput import nfc
from kiemke.collector.timeutil import utcnow

PATH_SEPARATOR = " / "


class UnitError(ValueError):
    """A unit operation that cannot be done; the message says why and what to do.
    `field` names the input at fault when it is known (name, code, parent)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Unit:
    id: int
    parent_id: int | None
    name: str
    code: str | None
    path: str
    level: int

    @property
    def parent_path(self) -> str:
        return self.path.rsplit(PATH_SEPARATOR, 1)[0] if self.level > 0 else ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "parent_id": self.parent_id, "name": self.name,
                "code": self.code, "path": self.path, "level": self.level}


def unit_ref(unit: Unit) -> dict[str, Any]:
    """How the APIs name a unit inside another object."""
    return {"id": unit.id, "name": unit.name, "code": unit.code, "path": unit.path,
            "level": unit.level}


def _row_to_unit(row: Any) -> Unit:
    return Unit(id=row.id, parent_id=row.parent_id, name=row.name, code=row.code,
                path=row.path, level=row.level)


def all_units(conn: Connection) -> list[Unit]:
    rows = conn.execute(select(units.c.id, units.c.parent_id, units.c.name, units.c.code,
                               units.c.path, units.c.level).order_by(units.c.path))
    return [_row_to_unit(r) for r in rows]


def get_unit(conn: Connection, unit_id: int) -> Unit | None:
    row = conn.execute(select(units).where(units.c.id == unit_id)).first()
    return _row_to_unit(row) if row else None


# Unit ids are 32-bit on PostgreSQL: a longer number is no id (and must not reach SQL).
MAX_UNIT_ID = 2**31 - 1
MAX_CODE = 64


def find_unit(conn: Connection, ref: str | int) -> Unit:
    """A unit by id, code or full path; raises UnitError naming what was tried.

    Text is compared in Unicode NFC, as it is stored: a path typed in NFD (Unikey's
    "Unicode tổ hợp") finds the unit."""
    text = nfc(str(ref).strip())
    if text.isascii() and text.isdigit() and int(text) <= MAX_UNIT_ID:
        unit = get_unit(conn, int(text))
        if unit:
            return unit
    for column in (units.c.code, units.c.path):
        row = conn.execute(select(units).where(column == text)).first()
        if row:
            return _row_to_unit(row)
    raise UnitError(f"no unit with id, code or path {text!r}; "
                    f"see the list with `kiemke-collector units list`")


def validate_name(name: str) -> str:
    if not isinstance(name, str):
        raise UnitError("a unit name must be text", "name")
    if "\x00" in name:
        raise UnitError("a unit name cannot contain the character U+0000", "name")
    name = nfc(" ".join(name.split()))
    if not name:
        raise UnitError("a unit name cannot be empty")
    if PATH_SEPARATOR.strip() in name:
        raise UnitError(f"a unit name cannot contain '/' ({name!r}): it separates levels in paths")
    if len(name) > 255:
        raise UnitError("a unit name is limited to 255 characters")
    return name


def validate_code(code: Any) -> str | None:
    if code is None:
        return None
    if not isinstance(code, str):
        raise UnitError("a unit code must be text (for example LDLD-BG)", "code")
    if "\x00" in code:
        raise UnitError("a unit code cannot contain the character U+0000", "code")
    code = nfc(code.strip())
    if len(code) > MAX_CODE:
        raise UnitError(f"a unit code is limited to {MAX_CODE} characters", "code")
    return code or None


def add_unit(conn: Connection, name: str, parent: str | int | None = None,
             code: str | None = None) -> Unit:
    name = validate_name(name)
    parent_unit = find_unit(conn, parent) if parent not in (None, "") else None
    path = f"{parent_unit.path}{PATH_SEPARATOR}{name}" if parent_unit else name
    level = parent_unit.level + 1 if parent_unit else 0
    if conn.execute(select(units.c.id).where(units.c.path == path)).first():
        raise UnitError(f"a unit {path!r} already exists")
    code = validate_code(code)
    if code and conn.execute(select(units.c.id).where(units.c.code == code)).first():
        raise UnitError(f"the unit code {code!r} is already used by another unit")
    result = conn.execute(units.insert().values(
        parent_id=parent_unit.id if parent_unit else None, name=name, code=code, path=path,
        level=level, created_at=utcnow()))
    return Unit(id=inserted_id(result), parent_id=parent_unit.id if parent_unit
                else None, name=name, code=code, path=path, level=level)


def ancestors_map(all_: Iterable[Unit]) -> dict[int, list[int]]:
    """unit id -> [its id, parent id, grandparent id, ...] for rolling figures up."""
    by_id = {u.id: u for u in all_}
    chains: dict[int, list[int]] = {}
    for unit in by_id.values():
        chain: list[int] = []
        seen: set[int] = set()
        cur: Unit | None = unit
        while cur is not None and cur.id not in seen:
            seen.add(cur.id)
            chain.append(cur.id)
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        chains[unit.id] = chain
    return chains


def subtree_ids(all_: Iterable[Unit], root_id: int) -> list[int]:
    """root_id and every descendant id."""
    return [uid for uid, chain in ancestors_map(all_).items() if root_id in chain]


class UnitConflict(UnitError):
    """The change would clash with the tree (a duplicate path, a unit under itself)."""


def _relocate(conn: Connection, unit: Unit, name: str, parent: Unit | None) -> Unit:
    """Give `unit` a new name and/or parent and rewrite path and level of its subtree."""
    path = f"{parent.path}{PATH_SEPARATOR}{name}" if parent else name
    level = parent.level + 1 if parent else 0
    if path != unit.path and conn.execute(select(units.c.id).where(units.c.path == path)).first():
        raise UnitConflict(f"a unit {path!r} already exists; choose another name or parent")
    tree = all_units(conn)
    shift = level - unit.level
    for member_id in subtree_ids(tree, unit.id):
        member = next(u for u in tree if u.id == member_id)
        conn.execute(update(units).where(units.c.id == member_id).values(
            path=path + member.path[len(unit.path):], level=member.level + shift))
    conn.execute(update(units).where(units.c.id == unit.id).values(
        name=name, parent_id=parent.id if parent else None))
    return Unit(id=unit.id, parent_id=parent.id if parent else None, name=name,
                code=unit.code, path=path, level=level)


def rename_unit(conn: Connection, ref: str | int, name: str) -> Unit:
    """Rename a unit; the paths of its descendants follow."""
    unit = find_unit(conn, ref)
    parent = get_unit(conn, unit.parent_id) if unit.parent_id is not None else None
    return _relocate(conn, unit, validate_name(name), parent)


def move_unit(conn: Connection, ref: str | int, parent_ref: str | int | None) -> Unit:
    """Move a unit (with its subtree) under another parent, or to the top when None."""
    unit = find_unit(conn, ref)
    parent = find_unit(conn, parent_ref) if parent_ref not in (None, "") else None
    if parent is not None and parent.id in subtree_ids(all_units(conn), unit.id):
        what = "the unit itself" if parent.id == unit.id else "one of its own descendants"
        raise UnitConflict(f"cannot move {unit.path!r} under {parent.path!r}: that is {what}; "
                           f"choose a parent outside its subtree")
    return _relocate(conn, unit, unit.name, parent)
