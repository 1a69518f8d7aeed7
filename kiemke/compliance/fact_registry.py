"""The fact registry: every fact a rule may read, with its type and meaning.

kiemke.compliance.facts derives these from a report; the rule loader checks every name a
rule uses against this table, and docs/rules.md lists it. Adding a fact is one line
here plus its derivation in facts.py (and a line in docs/rules.md).
"""

from __future__ import annotations

from .values import BOOL, DATE, LIST, NUMBER, STRING, FactDef
from .workplace import WORKPLACE_FACTS

F = FactDef
FACTS: dict[str, FactDef] = {
    # evaluation context
    "now": F(DATE, "the evaluation date (UTC): days_since() counts to it"),
    "report.kind": F(STRING, "periodic or full"),
    "report.age_days": F(NUMBER, "days between collection and evaluation"),
    "agent.clock_offset_seconds": F(NUMBER, "how far the machine's clock is ahead (+) or "
                                    "behind (-) the collector's: the report's sent_at (else "
                                    "collected_at) minus the time the collector received it, "
                                    "rounded to whole minutes"),
    "identity.hostname": F(STRING, "host name"),
    "identity.platform": F(STRING, "windows, linux, darwin or other"),
    # operating system
    "os.family": F(STRING, "windows, linux, darwin or other"),
    "os.name": F(STRING, "product name, e.g. Microsoft Windows 11 Pro"),
    "os.version": F(STRING, "version as reported"),
    "os.supported": F(BOOL, "still supported by its vendor (agent's end-of-support table)"),
    "os.end_of_support": F(DATE, "vendor end-of-support date"),
    "os.support_days_left": F(NUMBER, "days until end of support (negative when past)"),
    # hardware
    "hardware.chassis": F(STRING, "desktop, laptop, all-in-one, server, virtual, other"),
    "hardware.is_virtual": F(BOOL, "a virtual machine"),
    "hardware.memory_gb": F(NUMBER, "memory visible to the OS, GiB, one decimal"),
    "hardware.cpu_cores": F(NUMBER, "physical CPU cores (logical when physical is unknown)"),
    "hardware.cpu_threads": F(NUMBER, "logical processors"),
    "hardware.disk_total_gb": F(NUMBER, "sum of disk sizes, GB (10^9 bytes, as sold)"),
    "hardware.has_ssd": F(BOOL, "at least one SSD or NVMe disk"),
    "hardware.meets_min_spec": F(BOOL, "meets minimum_spec in approved.yml"),
    "hardware.below_spec": F(LIST, "which parts are below minimum_spec, e.g. RAM 2 GB < 4 GB"),
    "hardware.manufacture_date": F(DATE, "manufacture date from firmware (may be estimated)"),
    "hardware.age_years": F(NUMBER, "age in years (one decimal) from purchase or manufacture"),
    "hardware.age_estimated": F(BOOL, "age comes from an estimated manufacture date"),
    # asset register
    "asset.registered": F(BOOL, "the machine is in the imported asset register"),
    "asset.purchase_date": F(DATE, "purchase / in-use date from the asset register"),
    "asset.cost": F(NUMBER, "purchase cost (nguyên giá) from the asset register"),
    # depreciation (rules/depreciation.yml)
    "depreciation.status": F(STRING, "in_service, fully_depreciated or overdue_for_replacement"),
    "depreciation.category": F(STRING, "asset category, e.g. desktop_computer"),
    "depreciation.useful_life_years": F(NUMBER, "useful life of the category"),
    "depreciation.fully_depreciated_on": F(DATE, "first day with nothing left to depreciate"),
    "depreciation.replacement_year": F(NUMBER, "forecast year of replacement"),
    "depreciation.book_value": F(NUMBER, "remaining book value (needs purchase cost)"),
    "depreciation.estimated": F(BOOL, "based on an estimated manufacture date"),
    # antivirus
    "antivirus.products": F(NUMBER, "number of antivirus products found"),
    "antivirus.names": F(LIST, "names of the antivirus products found"),
    "antivirus.approved": F(LIST, "found products that are on the approved list"),
    "antivirus.approved_active": F(BOOL, "an approved product is enabled, up to date and licensed"),
    "antivirus.enabled": F(BOOL, "some product is enabled (not off, snoozed, expired, passive)"),
    "antivirus.up_to_date": F(BOOL, "some enabled product has current signatures"),
    "antivirus.licensed": F(BOOL, "some approved product is licensed (có bản quyền)"),
    "antivirus.licence_days_left": F(NUMBER, "days until the best approved licence expires"),
    "antivirus.signature_age_days": F(NUMBER, "age of the newest signatures of enabled products"),
    "antivirus.query_failed": F(BOOL, "the antivirus collector reported errors"),
    # security monitoring
    "monitoring.running": F(BOOL, "an approved security-monitoring agent is running"),
    "monitoring.agents": F(LIST, "approved monitoring agents that are running"),
    "monitoring.query_failed": F(BOOL, "the monitoring collector reported errors"),
    # network
    "network.networked": F(BOOL, "has a gateway or an up interface with a non-link-local address"),
    "network.has_gateway": F(BOOL, "has a default gateway"),
    "network.gateway": F(STRING, "default gateway address"),
    "network.gateway_ok": F(BOOL, "the gateway answered the agent's probe"),
    "network.dns_ok": F(BOOL, "DNS resolution worked"),
    "network.internet_ok": F(BOOL, "the configured Internet probe succeeded"),
    "network.lan": F(BOOL, "an up wired/wireless interface with a private address, and a gateway"),
    "network.subnets": F(LIST, "private IPv4 subnets of up wired/wireless interfaces (CIDR)"),
    # printers
    "printers.count": F(NUMBER, "printers installed, including PDF/XPS writers"),
    "printers.physical_count": F(NUMBER, "physical printers (not PDF/XPS/fax/OneNote writers)"),
    "printers.network_count": F(NUMBER, "physical network printers"),
    "printers.names": F(LIST, "names of the physical printers"),
    **WORKPLACE_FACTS,
}
