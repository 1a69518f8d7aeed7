"""Identity: machine id sources, placeholder filtering, stability, never failing.

Real values come from the dmidecode dumps published by the GLPI Agent project
(glpi-project/glpi-agent resources/generic/dmidecode, see /work/shared/fixtures/SOURCES.md):
Dell R640 "4C4C4544-0052-4A10-8046-B2C04F313533" / serial "2RJF153", VMware guest
"564D6049-9D7D-6E8B-4A41-7B2DB147ABA7", Surface Go 2 "0e985de7-da00-4662-a18c-a957308c3ad7",
ThinkPad asset tag "TBD By OEM" (placeholder).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

import kiemke
from kiemke.agent.collectors import identity_linux, identity_windows
from kiemke.agent.collectors.base import Context
from kiemke.agent.collectors.identity import (
    build_identity,
    choose_machine_id,
    derive_machine_id,
    normalize_machine_guid,
    normalize_serial,
    normalize_uuid,
    split_fqdn,
)
from kiemke.agent.config import AgentConfig

DELL_UUID = "4C4C4544-0052-4A10-8046-B2C04F313533"
VMWARE_UUID = "564D6049-9D7D-6E8B-4A41-7B2DB147ABA7"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize("raw", [
    "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "03000200-0400-0500-0006-000700080009", "Not Settable", "", None, "not-a-uuid"])
def test_placeholder_uuids_are_ignored(raw):
    assert normalize_uuid(raw) is None


def test_real_uuids_are_canonical():
    assert normalize_uuid(DELL_UUID) == DELL_UUID.lower()
    assert normalize_uuid("{" + VMWARE_UUID.lower() + "}\n") == VMWARE_UUID.lower()


@pytest.mark.parametrize("raw", ["To be filled by O.E.M.", "Default string", "0", "None",
                                 "Not Specified", "System Serial Number", "00000000",
                                 "XXXXXXXXXX", "  ", "TBD By OEM", "<BAD INDEX>"])
def test_placeholder_serials_are_ignored(raw):
    assert normalize_serial(raw) is None


def test_real_serials_kept():
    assert normalize_serial(" 2RJF153 ") == "2RJF153"
    assert normalize_serial(".2RJF153.CNIVC0005G0184.") == "2RJF153.CNIVC0005G0184"
    assert normalize_serial("VMware-56 4d 60 49 9d 7d 6e 8b-4a 41 7b 2d b1 47 ab a7")


def test_machine_guid_forms():
    assert normalize_machine_guid("3d1219c7c4c5404aaa1f6d2a48adfda4\n") == \
        "3d1219c7c4c5404aaa1f6d2a48adfda4"
    assert normalize_machine_guid("{5A0B8C1E-2F3D-4E5F-8A9B-0C1D2E3F4A5B}") == \
        "5a0b8c1e2f3d4e5f8a9b0c1d2e3f4a5b"
    assert normalize_machine_guid("0" * 32) is None


def test_source_order_and_derivation():
    mid, src, changed = choose_machine_id(
        {"smbios_uuid": DELL_UUID, "serial": "2RJF153", "machine_guid": "ab" * 16}, None)
    assert (src, changed) == ("smbios_uuid", True)
    assert mid == derive_machine_id("smbios_uuid", DELL_UUID.lower()) and HEX32.match(mid)
    # Windows (upper case) and Linux (lower case) spellings give the same id
    assert choose_machine_id({"smbios_uuid": DELL_UUID.lower()}, None)[0] == mid
    mid2, src2, _ = choose_machine_id(
        {"smbios_uuid": "03000200-0400-0500-0006-000700080009", "serial": "2RJF153"}, None)
    assert src2 == "serial" and mid2 != mid
    _, src3, _ = choose_machine_id({"serial": "Default string", "machine_guid": "ab" * 16}, None)
    assert src3 == "machine_guid"
    mid4, src4, changed4 = choose_machine_id({}, None)
    assert src4 == "generated" and changed4 and HEX32.match(mid4)


def test_stored_id_kept_when_stronger_source_unreadable():
    uuid_id = derive_machine_id("smbios_uuid", DELL_UUID.lower())
    stored = {"machine_id": uuid_id, "source": "smbios_uuid"}
    # as non-root, product_uuid is unreadable and only machine-id is seen
    assert choose_machine_id({"machine_guid": "ab" * 16}, stored) == (uuid_id, "smbios_uuid",
                                                                       False)
    assert choose_machine_id({"smbios_uuid": DELL_UUID}, stored) == (uuid_id, "smbios_uuid",
                                                                      False)
    generated = {"machine_id": "c" * 31 + "d", "source": "generated"}
    assert choose_machine_id({}, generated) == ("c" * 31 + "d", "generated", False)
    # a real source appearing later wins over a generated id (new id is stored)
    assert choose_machine_id({"serial": "2RJF153"}, generated)[1:] == ("serial", True)


def test_fqdn_split():
    assert split_fqdn("pc01", "pc01.ldld.bacgiang.gov.vn") == ("pc01.ldld.bacgiang.gov.vn",
                                                               "ldld.bacgiang.gov.vn")
    assert split_fqdn("vm", "vm") == (None, None)
    assert split_fqdn("pc", "localhost.localdomain") == (None, None)


def _ctx(tmp_path: Path, platform: str = "linux") -> Context:
    cfg = AgentConfig(unit="Liên đoàn Lao động tỉnh Bắc Giang", state_dir=tmp_path)
    return Context(config=cfg, state_dir=tmp_path, platform=platform)


def test_linux_sysfs_read_and_generated_id_persisted(tmp_path):
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "product_uuid").write_text("03000200-0400-0500-0006-000700080009\n")
    (dmi / "product_serial").write_text("To be filled by O.E.M.\n")
    (dmi / "chassis_asset_tag").write_text("TS-BG-2019-0042\n")
    state = tmp_path / "state"
    state.mkdir()
    ctx = _ctx(state)
    reading = identity_linux.read(ctx, dmi=dmi, machine_id_files=(tmp_path / "none",))
    section = build_identity(ctx, reading.facts, reading.errors)
    assert section["machine_id_source"] == "generated"
    assert section["asset_tag"] == "TS-BG-2019-0042"
    assert section["unit"] == "Liên đoàn Lao động tỉnh Bắc Giang"
    assert section["agent_version"] == kiemke.__version__
    stored = json.loads((state / "identity.json").read_text())
    assert stored == {"machine_id": section["machine_id"], "source": "generated"}
    again = build_identity(ctx, identity_linux.read(ctx, dmi=dmi, machine_id_files=()).facts, [])
    assert again["machine_id"] == section["machine_id"]  # generated once, then kept


def test_linux_permission_becomes_error_entry(tmp_path):
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "product_uuid").write_text(DELL_UUID)
    (dmi / "product_uuid").chmod(0)
    if os.geteuid() != 0:
        reading = identity_linux.read(_ctx(tmp_path), dmi=dmi, machine_id_files=())
        assert reading.errors[0]["kind"] == "permission"
        return
    # root reads 0400 files: fork, drop to `nobody` in the child (as an unprivileged agent
    # run would be) and read there, so the permission path is exercised on CI too.
    tmp_path.chmod(0o755)
    dmi.chmod(0o755)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            reading = identity_linux.read(_ctx(tmp_path), dmi=dmi, machine_id_files=())
            os.write(write_fd, json.dumps(reading.errors).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        out = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert json.loads(out)[0]["kind"] == "permission"


def test_windows_parsers_on_cim_json():
    # Shapes as ConvertTo-Json prints them; values from the captures cited above.
    product = json.loads('{"UUID":"4C4C4544-0052-4A10-8046-B2C04F313533",'
                         '"IdentifyingNumber":"2RJF153"}')
    assert identity_windows.parse_product([product]) == {"smbios_uuid": DELL_UUID,
                                                         "serial": "2RJF153"}
    assert identity_windows.parse_enclosure([{"SMBIOSAssetTag": " "},
                                             {"SMBIOSAssetTag": "9876543210"}]) == "9876543210"
    cs = identity_windows.parse_computer_system([{
        "Name": "PC-KETOAN01", "DNSHostName": "pc-ketoan01", "Domain": "ldld.bacgiang.local",
        "PartOfDomain": True, "Workgroup": None}])
    assert cs == {"domain": "ldld.bacgiang.local", "hostname": "pc-ketoan01"}
    wg = identity_windows.parse_computer_system([{
        "Name": "PC1", "DNSHostName": None, "Domain": "WORKGROUP", "PartOfDomain": False,
        "Workgroup": "WORKGROUP"}])
    assert wg == {"domain": "WORKGROUP", "hostname": "PC1"}


def test_windows_collector_without_powershell_still_yields_identity(tmp_path):
    # On Linux powershell.exe is absent: every query fails, identity must still be complete.
    from kiemke.agent.collectors.identity import IdentityCollector

    section = IdentityCollector().collect(_ctx(tmp_path, platform="windows"))
    assert HEX32.match(section["machine_id"]) and section["platform"] == "windows"
    assert section["machine_id_source"] == "generated"
    assert {e["kind"] for e in section["errors"]} == {"not_found"}
