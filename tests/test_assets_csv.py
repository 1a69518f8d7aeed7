"""Asset register CSV: formats Excel writes (BOM, ';'), Vietnamese text, every error path."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from assets_helpers import HEADER

from kiemke.collector.assets.csv_import import (
    RegisterError,
    parse_cost,
    parse_date,
    parse_register,
    sniff_delimiter,
)
from kiemke.collector.assets.identifiers import host_key, serial_key, tag_key
from kiemke.collector.units import Unit
from kiemke.compliance.config import DEFAULT_DEPRECIATION

CATS = DEFAULT_DEPRECIATION.categories
TODAY = dt.date(2024, 6, 1)
UNITS = [Unit(1, None, "Liên đoàn Lao động tỉnh Bắc Giang", "LDLD-BG",
              "Liên đoàn Lao động tỉnh Bắc Giang", 0),
         Unit(2, 1, "LĐLĐ huyện Yên Thế", None,
              "Liên đoàn Lao động tỉnh Bắc Giang / LĐLĐ huyện Yên Thế", 1),
         Unit(3, 1, "Văn phòng", None, "Liên đoàn Lao động tỉnh Bắc Giang / Văn phòng", 1),
         Unit(4, 2, "Văn phòng", None,
              "Liên đoàn Lao động tỉnh Bắc Giang / LĐLĐ huyện Yên Thế / Văn phòng", 2)]


def parse(text: str, *, bom: bool = False, encoding: str = "utf-8"):
    data = ("\ufeff" if bom else "").encode() + text.encode(encoding)
    return parse_register(data, "assets.csv", CATS, UNITS, today=TODAY)


def problems(text: str) -> list[str]:
    with pytest.raises(RegisterError) as exc:
        parse(text)
    return [str(p) for p in exc.value.problems]


def test_excel_vietnamese_locale_bom_semicolon_and_day_first_dates():
    text = ("Mã tài sản;Số serial;Tên máy;Loại tài sản;Ngày mua;Nguyên giá;Đơn vị;Mô tả\r\n"
            "LĐLĐ-MT-2019-014;7XK2P53;PC-KETOAN-01;desktop_computer;15/03/2020;"
            "15.000.000;LDLD-BG;Máy tính phòng Kế toán\r\n"
            ";;PC-VANTHU-02;Máy vi tính xách tay;01/02/2021;\"18,500,000\";"
            "Liên đoàn Lao động tỉnh Bắc Giang / LĐLĐ huyện Yên Thế;Laptop Văn thư\r\n")
    rows = parse(text, bom=True)
    assert [(r.line, r.asset_tag, r.serial, r.hostname, r.category, r.purchase_date, r.cost,
             r.unit_id, r.description) for r in rows] == [
        (2, "LĐLĐ-MT-2019-014", "7XK2P53", "PC-KETOAN-01", "desktop_computer",
         dt.date(2020, 3, 15), 15_000_000, 1, "Máy tính phòng Kế toán"),
        (3, None, None, "PC-VANTHU-02", "laptop_computer", dt.date(2021, 2, 1), 18_500_000, 2,
         "Laptop Văn thư"),
    ]


def test_comma_file_iso_dates_without_bom_and_blank_lines_skipped():
    text = (f"{HEADER}\n"
            "TS-01,ABC123,,Desktop_Computer,2022-02-28,15000000,,Máy chủ trì\n"
            ",,,,,,,\n"
            "\n"
            "TS-02,,pc-02.ldld.local,laptop_computer,2023-12-31,,,\n")
    rows = parse(text)
    assert [(r.line, r.category, r.purchase_date, r.cost) for r in rows] == [
        (2, "desktop_computer", dt.date(2022, 2, 28), 15_000_000),
        (5, "laptop_computer", dt.date(2023, 12, 31), None)]
    assert rows[1].host_key == "pc-02"


def test_every_bad_row_is_reported_with_line_column_and_what_to_do():
    text = (f"{HEADER}\n"
            "TS-01,SN-0001,,desktop_computer,2022-02-28,15000000,,ok\n"            # 2 fine
            "TS-02,SN-0002,,printer,2022-02-28,15000000,,Máy in\n"                 # 3
            "TS-03,SN-0003,,desktop_computer,2022-02-28,15tr,,\n"                  # 4
            "TS-04,\"To be filled by O.E.M.\",,desktop_computer,2022-02-28,1,,\n"  # 5 fine
            ",To be filled by O.E.M.,,desktop_computer,2022-02-28,1,,\n"           # 6
            "TS-07,SN-0007,,desktop_computer,31/02/2022,15000000,,\"Ghi chú\n"
            "hai dòng\"\n"                                                          # 7-8
            "TS-01,SN-0009,,desktop_computer,2030-01-01,15000000,,\n"              # 9
            ",,,desktop_computer,2022-01-01,1,,\n"                                 # 10
            "TS-11,SN-0011,,desktop_computer,2022-01-01,1,Văn phòng,\n"           # 11
            "TS-12,SN-0012,,desktop_computer,2022-01-01,1,Sở Nội vụ,\n"           # 12
            "TS-13,SN-0013,,desktop_computer,2022-01-01,1,,x,extra\n"              # 13
            "TS-14,SN-0014,,,,,,\n")                                               # 14
    got = problems(text)
    assert got == [
        "assets.csv line 3, category: 'printer' is not a category in rules/depreciation.yml. "
        "Use one of desktop_computer, laptop_computer, or remove rows that are not computers",
        "assets.csv line 4, cost: '15tr' is not an amount in đồng. Write a whole number such "
        "as 15000000 or 15.000.000.",
        "assets.csv line 6, serial: 'To be filled by O.E.M.' is a placeholder, not a serial "
        "number. Give the real serial (on the label), an asset_tag or a hostname",
        "assets.csv line 7, purchase_date: '31/02/2022' is not a date. Use YYYY-MM-DD, e.g. "
        "2022-02-28 (or DD/MM/YYYY, e.g. 28/02/2022).",
        "assets.csv line 9, asset_tag: 'TS-01' is already on line 2: each asset appears once "
        "in the register",
        "assets.csv line 9, purchase_date: '2030-01-01' is in the future. Check the year",
        "assets.csv line 10, asset_tag: the row has no asset_tag, serial or hostname: give at "
        "least one so the machine can be found",
        "assets.csv line 11, unit: several units are named 'Văn phòng'; write the full path, "
        "e.g. 'Liên đoàn Lao động tỉnh Bắc Giang / Văn phòng', or the unit code",
        "assets.csv line 12, unit: 'Sở Nội vụ' is not a unit in kiemke. Use a code, name or "
        "path shown by `kiemke-collector units list`, or leave it empty",
        "assets.csv line 13: 9 cells but the header has 8; a value probably contains the "
        "delimiter: put that value in double quotes",
        "assets.csv line 14, category: empty. Use one of desktop_computer, laptop_computer "
        "(rules/depreciation.yml)",
        "assets.csv line 14, purchase_date: empty. Write the date the asset was bought or put "
        "in use, e.g. 2022-02-28",
    ]


def test_duplicate_serials_differ_only_in_case_and_blanks():
    got = problems(f"{HEADER}\n,7XK2P53,,desktop_computer,2022-01-01,1,,\n"
                   f",7xk2p53 ,,desktop_computer,2022-01-01,1,,\n")
    assert got == ["assets.csv line 3, serial: '7xk2p53' is already on line 2: each asset "
                   "appears once in the register"]


def test_file_level_problems():
    assert problems("") == ["assets.csv: the file is empty; the first line must be the "
                            "header: " + ",".join(HEADER.split(","))]
    got = problems("asset_tag,purchase_date\nTS-1,2022-01-01\n")
    assert got == ["assets.csv line 1: the header has no column category, cost; the first "
                   "line must name the columns, e.g. " + HEADER]
    got = problems("category,purchase_date,cost\ndesktop_computer,2022-01-01,1\n")
    assert got == ["assets.csv line 1: the header needs at least one of asset_tag, serial, "
                   "hostname to find the machines"]


def test_not_utf8_names_the_line_and_how_to_save_from_excel():
    text = f"{HEADER}\nTS-01,,,desktop_computer,2022-01-01,1,,Phòng Tài vụ\n"
    # Windows-1258 (the legacy Vietnamese code page) writes tone marks as combining bytes.
    got = problems_bytes(unicodedata.normalize("NFD", text).encode("cp1258"))
    assert got == ["assets.csv line 2: the file is not UTF-8 (byte 0xcc). In Excel use File > "
                   "Save As > 'CSV UTF-8 (Comma delimited) (*.csv)' so that Vietnamese letters "
                   "survive"]


def problems_bytes(data: bytes) -> list[str]:
    with pytest.raises(RegisterError) as exc:
        parse_register(data, "assets.csv", CATS, UNITS, today=TODAY)
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize(("text", "value"), [
    ("15000000", 15_000_000), ("15.000.000", 15_000_000), ("15,000,000", 15_000_000),
    ("15 000 000 đ", 15_000_000), ("15.000.000 VNĐ", 15_000_000), ("15000000.00", 15_000_000),
    ("15.000", 15_000), ("0", 0)])
def test_cost_formats(text, value):
    assert parse_cost(text) == value


@pytest.mark.parametrize("text", ["15.000.000,50", "1.5", "-5", "15.00.000", "abc"])
def test_cost_rejected(text):
    with pytest.raises(ValueError, match="is not an amount in đồng"):
        parse_cost(text)


@pytest.mark.parametrize(("text", "value"), [
    ("2022-02-28", dt.date(2022, 2, 28)), ("28/02/2022", dt.date(2022, 2, 28)),
    ("1/2/2021", dt.date(2021, 2, 1)), ("29/02/2024", dt.date(2024, 2, 29))])
def test_dates(text, value):
    assert parse_date(text) == value


@pytest.mark.parametrize("text", ["29/02/2023", "02/28/2022", "2022/02/28", "28-02-2022"])
def test_dates_rejected(text):
    with pytest.raises(ValueError, match=f"'{text}' is not a date. Use YYYY-MM-DD"):
        parse_date(text)


def test_sniffer_prefers_the_delimiter_that_gives_known_columns():
    assert sniff_delimiter("asset_tag;serial;category;purchase_date;cost") == ";"
    assert sniff_delimiter("asset_tag,serial,category,purchase_date,cost") == ","
    # Commas inside a Vietnamese header cell do not fool it.
    assert sniff_delimiter("Mã tài sản;Nguyên giá (đồng, VNĐ);Loại;Ngày mua;cost") == ";"
    assert sniff_delimiter("asset_tag\tserial\tcategory\tpurchase_date\tcost") == "\t"


def test_identifier_keys():
    assert serial_key(" 7xk2p53 ") == "7XK2P53"
    assert serial_key(".2RJF153.CN.") == "2RJF153.CN"
    assert serial_key("To be filled by O.E.M.") is None
    assert serial_key("0000000") is None
    assert tag_key(" LĐLĐ-MT-2019-014 ") == "lđlđ-mt-2019-014"
    assert tag_key("No Asset Tag") is None
    assert host_key("PC-KeToan-01.ldld.bacgiang.gov.vn") == "pc-ketoan-01"
    assert host_key("  ") is None


def test_the_shipped_example_register_imports():
    from pathlib import Path

    from kiemke.collector.assets.csv_import import read_register

    example = Path(__file__).resolve().parent.parent / "deploy/examples/assets.example.csv"
    rows, data = read_register(example, CATS, UNITS, today=TODAY)
    assert data.startswith(b"\xef\xbb\xbf")  # saved the way Excel saves "CSV UTF-8"
    assert [(r.line, r.category, r.purchase_date, r.cost, r.unit_id) for r in rows] == [
        (2, "desktop_computer", dt.date(2019, 3, 15), 15_000_000, 3),
        (3, "desktop_computer", dt.date(2021, 8, 2), 13_500_000, None),
        (4, "laptop_computer", dt.date(2022, 1, 10), 21_990_000, None),
        (5, "desktop_computer", dt.date(2018, 11, 20), 12_000_000, 2),
    ]
    assert rows[3].description == "Máy tính Ban Tổ chức (không có số serial trên nhãn)"
