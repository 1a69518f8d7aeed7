"""Report -> facts: flatten a v1 report into the named, typed facts that rules read.

Unknown is not absent: a fact whose section reported an error (or did not report at
all) and gave no value is left out of the result, so rules using it evaluate to
unknown, never to false. Only positive evidence survives an error: an approved,
active antivirus found by a collector that also logged an error still counts.
Every fact is declared in FACTS (kiemke.compliance.fact_registry: name -> type,
meaning); docs/rules.md lists them.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from . import depreciation as dep
from .config import ComplianceConfig
from .fact_registry import FACTS
from .values import DATE, FactDef
from .workplace import workplace_facts

_INACTIVE_STATES = {"off", "snoozed", "expired", "passive"}
_VIRTUAL_PRINTER_WORDS = ("pdf", "xps", "fax", "onenote", "send to", "snagit")


# ---------------------------------------------------------------- three-valued helpers

def or3(values: Iterable[bool | None], *, complete: bool = True) -> bool | None:
    """Kleene OR; `complete=False` means more values may exist that we could not read."""
    seen_none = not complete
    for v in values:
        if v is True:
            return True
        if v is None:
            seen_none = True
    return None if seen_none else False


def and3(*values: bool | None) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


# ---------------------------------------------------------------- parsing helpers

def to_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) > 10:
                parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
                return to_date(parsed)
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    return None


def _section(report: dict[str, Any], name: str) -> tuple[dict[str, Any], bool]:
    """(section, complete): complete is False when the section is absent or has errors
    that may hide whole entries. An error about one product's detail (it names the
    product: a licence that could not be read, a missing signature database) leaves the
    list complete; that product's own facts say what is unknown or wrong."""
    section = report.get(name)
    if not isinstance(section, dict):
        return {}, False
    errors = section.get("errors") or []
    return section, not any(isinstance(e, dict) and not e.get("product") for e in errors)


def _put(facts: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        facts[name] = value


# ---------------------------------------------------------------- sections

def _os_facts(facts: dict[str, Any], report: dict[str, Any], today: dt.date) -> None:
    os_, _ = _section(report, "os")
    for key in ("family", "name", "version"):
        _put(facts, f"os.{key}", os_.get(key))
    _put(facts, "os.supported", os_.get("supported"))
    eos = to_date(os_.get("end_of_support"))
    _put(facts, "os.end_of_support", eos)
    if eos is not None:
        facts["os.support_days_left"] = (eos - today).days


def _hardware_facts(facts: dict[str, Any], report: dict[str, Any],
                    config: ComplianceConfig) -> None:
    hw, complete = _section(report, "hardware")
    chassis = hw.get("chassis")
    if chassis and chassis != "unknown":
        facts["hardware.chassis"] = chassis
    virtual = hw.get("is_virtual")
    if virtual is None and chassis == "virtual":
        virtual = True
    _put(facts, "hardware.is_virtual", virtual)
    mem = hw.get("memory_bytes")
    if isinstance(mem, int):
        facts["hardware.memory_gb"] = round(mem / 2**30, 1)
    cpu = hw.get("cpu") or {}
    cores = cpu.get("cores_physical") or cpu.get("cores_logical")
    _put(facts, "hardware.cpu_cores", cores)
    _put(facts, "hardware.cpu_threads", cpu.get("cores_logical"))
    disks = hw.get("disks") or []
    sizes = [d["size_bytes"] for d in disks if isinstance(d.get("size_bytes"), int)]
    if sizes:
        facts["hardware.disk_total_gb"] = round(sum(sizes) / 1e9, 1)
    kinds = [d.get("type", "unknown") for d in disks]
    if any(k in ("ssd", "nvme") for k in kinds):
        facts["hardware.has_ssd"] = True
    elif kinds and all(k == "hdd" for k in kinds) and complete:
        facts["hardware.has_ssd"] = False
    _min_spec(facts, config)
    made = hw.get("manufacture_date") or {}
    _put(facts, "hardware.manufacture_date", to_date(made.get("value")))


def _min_spec(facts: dict[str, Any], config: ComplianceConfig) -> None:
    # The OS sees less memory than is installed (firmware and graphics reserve some):
    # accept 90 % of the minimum so a 4 GB machine showing 3.8 GiB is not "below spec".
    checks: list[tuple[bool | None, str]] = []
    mem = facts.get("hardware.memory_gb")
    checks.append((None if mem is None else mem >= config.min_memory_gb * 0.9,
                   f"RAM {mem} GB < {config.min_memory_gb:g} GB"))
    cores = facts.get("hardware.cpu_cores")
    checks.append((None if cores is None else cores >= config.min_cpu_cores,
                   f"CPU {cores} cores < {config.min_cpu_cores}"))
    disk = facts.get("hardware.disk_total_gb")
    checks.append((None if disk is None else disk >= config.min_disk_total_gb,
                   f"disk {disk} GB < {config.min_disk_total_gb:g} GB"))
    if config.require_ssd:
        checks.append((facts.get("hardware.has_ssd"), "no SSD"))
    _put(facts, "hardware.meets_min_spec", and3(*(ok for ok, _ in checks)))
    facts["hardware.below_spec"] = [text for ok, text in checks if ok is False]


def _age_and_depreciation(facts: dict[str, Any], report: dict[str, Any], asset: dict | None,
                          config: ComplianceConfig, today: dt.date) -> None:
    hw, _ = _section(report, "hardware")
    made = hw.get("manufacture_date") or {}
    purchase = to_date(asset.get("purchase_date")) if asset else None
    cost = asset.get("cost") if asset else None
    if asset is not None:
        facts["asset.registered"] = True
        _put(facts, "asset.purchase_date", purchase)
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            facts["asset.cost"] = cost
        else:
            cost = None
    result = dep.assess(
        at=today, config=config.depreciation, chassis=hw.get("chassis"),
        purchase_date=purchase, cost=cost,
        category=(asset or {}).get("category") or None,
        manufacture_date=to_date(made.get("value")),
        manufacture_estimated=bool(made.get("estimated", True)),
    )
    if result.start_date is not None:
        months = dep.age_months(result.start_date, today)
        facts["hardware.age_years"] = round(months / 12, 1)
        facts["hardware.age_estimated"] = result.estimated
    if result.status == dep.UNKNOWN:
        return
    facts["depreciation.status"] = result.status
    _put(facts, "depreciation.category", result.category)
    _put(facts, "depreciation.useful_life_years", result.useful_life_years)
    _put(facts, "depreciation.fully_depreciated_on", result.fully_depreciated_on)
    _put(facts, "depreciation.replacement_year", result.replacement_year)
    _put(facts, "depreciation.book_value", result.book_value)
    facts["depreciation.estimated"] = result.estimated


def _signature_age(p: dict[str, Any], today: dt.date) -> float | None:
    age = p.get("signatures_age_days")
    if isinstance(age, (int, float)):
        return age
    sig = to_date(p.get("signatures_date"))
    return None if sig is None else max((today - sig).days, 0)


def _antivirus_facts(facts: dict[str, Any], report: dict[str, Any],
                     config: ComplianceConfig, today: dt.date) -> None:
    av, complete = _section(report, "antivirus")
    products = [p for p in av.get("products") or [] if isinstance(p, dict)]
    facts["antivirus.query_failed"] = not complete
    if complete or products:
        facts["antivirus.names"] = [p["name"] for p in products]
        facts["antivirus.approved"] = [p["name"] for p in products
                                       if config.approved_antivirus(p["name"])]
    if complete:
        facts["antivirus.products"] = len(products)
    enabled3, current3, licensed3, ok3 = [], [], [], []
    sig_ages, days_left = [], []
    for p in products:
        state = p.get("state")
        enabled: bool | None
        if state == "on":
            enabled = True
        elif state in _INACTIVE_STATES:
            enabled = False
        else:
            enabled = p.get("enabled")
        age = _signature_age(p, today)
        current = p.get("up_to_date")
        if age is not None:
            # The organisation's maximum age decides where the age is known: an agent
            # (an old one, or a product's own lenient notion of "current") saying
            # up_to_date does not pass signatures older than it.
            within = age <= config.max_signature_age_days
            current = within if current is None else (current is True and within)
        enabled3.append(enabled)
        if enabled is not False:
            current3.append(and3(enabled, current))
            if enabled and age is not None:
                sig_ages.append(age)
        product = config.approved_antivirus(p["name"])
        if product is None:
            continue
        expiry = to_date(p.get("licence_expiry"))
        if product.licence in ("bundled", "free"):
            licensed: bool | None = True
        elif state == "expired":
            licensed = False
        elif expiry is not None:
            licensed = expiry >= today
            days_left.append((expiry - today).days)
        elif p.get("licensed") is not None:
            licensed = p.get("licensed")
        else:
            licensed = True if config.unknown_licence == "accept" else None
        licensed3.append(licensed)
        ok3.append(and3(enabled, current, licensed))
    _put(facts, "antivirus.enabled", or3(enabled3, complete=complete))
    _put(facts, "antivirus.up_to_date", or3(current3, complete=complete))
    _put(facts, "antivirus.licensed", or3(licensed3, complete=complete))
    _put(facts, "antivirus.approved_active", or3(ok3, complete=complete))
    if sig_ages:
        facts["antivirus.signature_age_days"] = min(sig_ages)
    if days_left:
        facts["antivirus.licence_days_left"] = max(days_left)


def _monitoring_facts(facts: dict[str, Any], report: dict[str, Any],
                      config: ComplianceConfig) -> None:
    if "security_monitoring" not in report:
        return  # section not collected by this agent: every monitoring fact stays unknown
    mon, complete = _section(report, "security_monitoring")
    facts["monitoring.query_failed"] = not complete
    approved = [a for a in mon.get("agents") or []
                if isinstance(a, dict) and config.approved_monitoring(a.get("name", ""))]
    _put(facts, "monitoring.running", or3((a.get("running") for a in approved),
                                          complete=complete))
    if complete or approved:
        facts["monitoring.agents"] = [a["name"] for a in approved if a.get("running") is True]


def _is_lan_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return ip.is_private and not ip.is_loopback and not ip.is_link_local


def _network_facts(facts: dict[str, Any], report: dict[str, Any]) -> None:
    net, complete = _section(report, "network")
    gateway = net.get("default_gateway")
    if gateway:
        facts["network.has_gateway"] = True
        _put(facts, "network.gateway", gateway.get("address"))
    elif complete:
        facts["network.has_gateway"] = False
    checks = net.get("checks") or {}
    for check, fact in (("gateway", "gateway_ok"), ("dns", "dns_ok"), ("internet", "internet_ok")):
        _put(facts, f"network.{fact}", (checks.get(check) or {}).get("ok"))
    addressed = False
    subnets: list[str] = []
    for iface in net.get("interfaces") or []:
        if iface.get("up") is not True or iface.get("kind") == "loopback":
            continue
        for addr in iface.get("addresses") or []:
            try:
                ip = ipaddress.ip_address(addr["address"].split("%")[0])
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local:
                continue
            addressed = True
            if iface.get("kind") in ("wired", "wireless") and _is_lan_address(addr["address"]) \
                    and ip.version == 4 and addr.get("prefixlen") is not None:
                net4 = ipaddress.ip_interface(f"{ip}/{addr['prefixlen']}").network
                subnets.append(str(net4))
    facts["network.subnets"] = sorted(set(subnets))
    has_gw = facts.get("network.has_gateway")
    networked = True if (has_gw or addressed) else (False if complete else None)
    _put(facts, "network.networked", networked)
    lan = and3(bool(subnets) if (subnets or complete) else None, has_gw)
    _put(facts, "network.lan", lan)
    if not complete and not subnets:
        del facts["network.subnets"]


def _printer_facts(facts: dict[str, Any], report: dict[str, Any]) -> None:
    if "printers" not in report:
        return
    section, complete = _section(report, "printers")
    printers = [p for p in section.get("printers") or [] if isinstance(p, dict)]
    if not complete and not printers:
        return
    physical = []
    for p in printers:
        virtual = p.get("virtual")
        if virtual is None:
            name = p.get("name", "").casefold()
            virtual = any(w in name for w in _VIRTUAL_PRINTER_WORDS)
        if not virtual:
            physical.append(p)
    facts["printers.names"] = [p["name"] for p in physical]
    if complete:
        facts["printers.count"] = len(printers)
        facts["printers.physical_count"] = len(physical)
        facts["printers.network_count"] = sum(1 for p in physical if p.get("network") is True)


def _clock_offset(facts: dict[str, Any], report: dict[str, Any], received: dt.datetime) -> None:
    """`received` is the evaluation time at ingest: when the collector received the report.
    Whole minutes, so that the facts of an unchanged machine stay equal from report to
    report (no write) while a clock that is off by minutes still shows."""
    text = report.get("sent_at") or report.get("collected_at")
    if not isinstance(text, str) or received.tzinfo is None:
        return
    try:
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        offset = (stamp - received).total_seconds()
    except (ValueError, OverflowError):
        return
    facts["agent.clock_offset_seconds"] = 60 * round(offset / 60)


def envelope_facts(report: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """The facts that come from the report's envelope and the time it arrived, not from
    its sections: the day, report kind and age, clock offset. An unchanged report
    (kiemke.collector.pipeline.unchanged) compares these alone."""
    today = now.astimezone(dt.timezone.utc).date() if now.tzinfo else now.date()
    facts: dict[str, Any] = {"now": today}
    _put(facts, "report.kind", report.get("kind"))
    collected = to_date(report.get("collected_at"))
    if collected is not None:
        facts["report.age_days"] = (today - collected).days
    _clock_offset(facts, report, now)
    return facts


def facts_from_report(report: dict[str, Any], *, now: dt.datetime, asset: dict | None,
                      config: ComplianceConfig, unit_codes: Sequence[str] = ()
                      ) -> dict[str, Any]:
    """Flatten a v1 report into facts; see FACTS for names and types. `unit_codes`: the
    codes of the machine's unit and its ancestors (per-unit official e-mail domains)."""
    facts = envelope_facts(report, now)
    today = facts["now"]
    identity = report.get("identity") or {}
    _put(facts, "identity.hostname", identity.get("hostname"))
    _put(facts, "identity.platform", identity.get("platform"))
    _os_facts(facts, report, today)
    _hardware_facts(facts, report, config)
    _age_and_depreciation(facts, report, asset, config, today)
    _antivirus_facts(facts, report, config, today)
    _monitoring_facts(facts, report, config)
    _network_facts(facts, report)
    _printer_facts(facts, report)
    workplace_facts(facts, report, config, today, unit_codes)
    return facts


def facts_to_json(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts as JSON-safe values (dates as YYYY-MM-DD) for storage."""
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in facts.items()}


_DATE_FACTS = frozenset(name for name, fact in FACTS.items() if fact.type == DATE)
_DATE_NAMES = tuple(sorted(_DATE_FACTS))


@functools.lru_cache(maxsize=4096)
def _stored_date(text: str) -> dt.date | None:
    # A fleet shares few distinct dates ("now" is the same for every machine of a day):
    # a full re-evaluation parses each once instead of once per machine.
    return to_date(text)


def decode_stored_facts(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (facts_to_json of machine facts, just decoded) made ready for the rules, in
    place: its dates back to datetime.date. Every lookup of a registry fact gives what it
    gives in facts_from_json(data) (a None value reads as a missing one); names outside
    the registry stay, which nothing that evaluates rules reads. The full re-evaluation
    uses it: converting the few dates costs far less than copying every fact."""
    for key in _DATE_NAMES:
        value = data.get(key)
        if value is not None:
            data[key] = _stored_date(value) if isinstance(value, str) else to_date(value)
    return data


def facts_from_json(data: dict[str, Any], registry: dict[str, FactDef] | None = None
                    ) -> dict[str, Any]:
    """Inverse of facts_to_json: dates back to datetime.date, unknown names dropped."""
    if registry is None or registry is FACTS:
        dates: Collection[str] = _DATE_FACTS
        known: Collection[str] = FACTS
    else:
        dates = {name for name, fact in registry.items() if fact.type == DATE}
        known = registry
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or key not in known:
            continue
        if key in dates:
            value = _stored_date(value) if isinstance(value, str) else to_date(value)
        out[key] = value
    return out
