"""The pieces of `kiemke-collector setup` that need no installed package (≈ 5 s: openssl).

The whole command runs against the installed .deb in tests/test_packaging_deb.py.
"""

from __future__ import annotations

import subprocess

import pytest
from conftest import REPO

from kiemke.collector.setup_cmd import SetupError, check_hostname, install_tls, nginx_site

TEMPLATE = (REPO / "deploy" / "nginx" / "kiemke-collector.conf").read_text("utf-8")


def test_nginx_site_names_this_server_and_its_certificate(tmp_path):
    site = nginx_site(TEMPLATE, "kiemke.bacgiang.gov.vn", tmp_path)
    names = [line.split("#")[0].strip() for line in site.splitlines()
             if line.strip().startswith("server_name")]
    assert names and set(names) == {"server_name kiemke.bacgiang.gov.vn;"}
    assert "example.gov.vn" not in site
    assert f"ssl_certificate     {tmp_path / 'collector.crt'};" in site
    assert f"ssl_certificate_key {tmp_path / 'collector.key'};" in site
    with pytest.raises(SetupError, match="server_name"):
        nginx_site("server { listen 443; }", "x.example", tmp_path)


@pytest.mark.parametrize("name", ["kiemke bacgiang", "-kiemke.gov.vn", "kiemke..gov.vn",
                                  "kiêmke.gov.vn", ""])
def test_hostname_must_be_a_dns_name_or_address(name):
    with pytest.raises(SetupError, match="--hostname"):
        check_hostname(name)


def test_hostname_is_normalised():
    assert check_hostname(" Kiemke.BacGiang.gov.vn. ") == "kiemke.bacgiang.gov.vn"
    assert check_hostname("10.20.0.5") == "10.20.0.5"


def _cert(tmp_path, name):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-keyout", str(tmp_path / f"{name}.key"),
                    "-out", str(tmp_path / f"{name}.crt")], check=True, capture_output=True)
    return str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key")


def test_tls_agency_certificate_must_match_its_key_and_self_signed_is_kept(tmp_path):
    tls = tmp_path / "tls"
    crt_a, key_a = _cert(tmp_path, "a")
    _crt_b, key_b = _cert(tmp_path, "b")
    with pytest.raises(SetupError, match="does not belong"):
        install_tls("kiemke.example.gov.vn", tls, crt_a, key_b)
    with pytest.raises(SetupError, match="both --cert"):
        install_tls("kiemke.example.gov.vn", tls, crt_a, None)
    assert "agency" in install_tls("kiemke.example.gov.vn", tls, crt_a, key_a)
    assert (tls / "collector.key").stat().st_mode & 0o777 == 0o600
    (tls / "collector.crt").unlink()
    made = install_tls("127.0.0.1", tls, None, None)
    assert "self-signed" in made
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                           str(tls / "collector.crt")], capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.1" in text
    assert "kept" in install_tls("127.0.0.1", tls, None, None)
