"""root/SecurityCenter2 AntiVirusProduct: decoding productState.

Microsoft does not document productState. The layout below is the one every public
inventory tool uses (GLPI Agent, osquery's windows_security_products, the WSC_SECURITY_*
enums in the Windows SDK iwscapi.h): read as a 24-bit number 0xPPSSOU,
  bits 16-23  provider type (WSC_SECURITY_PROVIDER flags: 1 firewall, 2 auto-update,
              4 antivirus, 8 antispyware, ...)
  bits 12-15  scanner state: 0 off, 1 on, 2 snoozed, 3 expired (subscription)
  bits 8-11   owner: 1 = the product is Microsoft's (Defender), 0 = third party
  bits 4-7    signatures: 0 up to date, non-zero out of date
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kiemke.agent.parsers.av_common import ParseError

_SCANNER = {0: "off", 1: "on", 2: "snoozed", 3: "expired"}


@dataclass(frozen=True)
class ProductState:
    value: int
    provider: int
    state: str  # off | on | snoozed | expired | unknown
    microsoft: bool
    up_to_date: bool

    @property
    def is_antivirus(self) -> bool:
        return bool(self.provider & 0x04)


def decode_product_state(value: int) -> ProductState:
    if value < 0 or value > 0xFFFFFF:
        raise ParseError(f"productState {value} is outside 0..0xFFFFFF")
    return ProductState(
        value=value,
        provider=(value >> 16) & 0xFF,
        state=_SCANNER.get((value >> 12) & 0xF, "unknown"),
        microsoft=((value >> 8) & 0xF) == 1,
        up_to_date=((value >> 4) & 0xF) == 0,
    )


@dataclass(frozen=True)
class SecurityCenterProduct:
    name: str
    product_state: ProductState | None
    path: str | None
    timestamp: str | None


def parse_antivirus_products(rows: list[dict[str, Any]]) -> list[SecurityCenterProduct]:
    """Rows of Get-CimInstance AntiVirusProduct -> products, duplicates dropped.

    Windows keeps one instance per registration; reinstalled products can leave the same
    displayName twice with the same state, which would count one product twice."""
    out: list[SecurityCenterProduct] = []
    seen: set[tuple[str, int | None]] = set()
    for row in rows:
        name = str(row.get("displayName") or "").strip()
        if not name:
            continue
        raw = row.get("productState")
        state: ProductState | None
        try:
            state = decode_product_state(int(raw)) if raw is not None else None
        except (TypeError, ValueError):
            state = None
        key = (name.lower(), state.value if state else None)
        if key in seen:
            continue
        seen.add(key)
        out.append(SecurityCenterProduct(
            name=name, product_state=state,
            path=(str(row["pathToSignedProductExe"])
                  if row.get("pathToSignedProductExe") else None),
            timestamp=str(row["timestamp"]) if row.get("timestamp") else None))
    return out
