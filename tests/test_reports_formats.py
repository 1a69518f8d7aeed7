"""Period reports and rankings as files, through the CLI and the API, on a SIMULATED
fleet (kiemke/collector/reports/simulate.py) whose history ends yesterday: the PDF read
back with pdftotext and rendered with pdftoppm, the XLSX reopened with openpyxl, the
CSV's BOM, and bad parameters answered with the parameter's name. About 60 s (WeasyPrint
lays out two PDFs)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone

import pytest
from collector_helpers import admin_token
from conftest import REPO, collector_cmd, missing_component
from openpyxl import load_workbook

from kiemke.collector.app import create_app
from kiemke.collector.db.engine import make_engine
from kiemke.collector.db.migrate import upgrade
from kiemke.collector.reports import simulate
from kiemke.collector.reports.figures import build_period_report
from kiemke.collector.reports.periods import local_day, month, parse_period
from kiemke.collector.reports.ranking import build_ranking
from kiemke.collector.reports.render import render_ranking
from kiemke.compliance import default_rules_dir, load_rules

TZ = "Asia/Ho_Chi_Minh"


def last_month() -> str:
    today = local_day(datetime.now(timezone.utc), TZ)
    first = today.replace(day=1) - timedelta(days=1)
    return month(first.year, first.month).text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("formats")
    url = f"sqlite:///{folder / 'kiemke.db'}"
    upgrade(url)
    engine = make_engine(url)
    ruleset = load_rules([default_rules_dir()])
    today = local_day(datetime.now(timezone.utc), TZ)
    sim = simulate.Simulation(ruleset.machine_rules, start=today - timedelta(days=75), days=75,
                              seed=11, districts=2, offices_per_district=2,
                              machines_per_office=(6, 10), tz=TZ)
    info = simulate.load(engine, ruleset, sim)
    engine.dispose()
    env = {**os.environ, "KIEMKE_DATABASE_URL": url, "KIEMKE_DATA_DIR": str(folder / "data"),
           "KIEMKE_MAINTENANCE_INTERVAL": "0", "KIEMKE_REPORT_PLACE": "Bắc Giang"}
    app = create_app({"database_url": url, "data_dir": str(folder / "data"),
                      "maintenance_interval": 0})
    yield {"url": url, "env": env, "info": info, "sim": sim, "folder": folder, "app": app,
           "token": admin_token(app)}
    app.extensions["kiemke"].engine.dispose()


def cli(fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*collector_cmd(), *args], env=fleet["env"], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def expected(fleet, lang: str = "vi"):
    engine = make_engine(fleet["url"])
    with engine.connect() as conn:
        report = build_period_report(conn, simulate.ROOT, parse_period(last_month()), lang,
                                     timezone=TZ, now=datetime.now(timezone.utc))
    engine.dispose()
    return report


def pct(value: float) -> str:
    return f"{value * 100:.1f}%".replace(".", ",")


def tools() -> None:
    for tool in ("pdftotext", "pdftoppm", "pdffonts"):
        if shutil.which(tool) is None:
            missing_component(f"{tool} (poppler-utils) is not installed")


def test_pdf_report_reads_back_with_diacritics_titles_and_figures(fleet, tmp_path):
    tools()
    out = tmp_path / "bao-cao.pdf"
    result = cli(fleet, "report", "--unit", simulate.ROOT, "--period", last_month(),
                 "--format", "pdf", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True,
                          text=True, check=True).stdout
    flat = " ".join(text.split())
    report = expected(fleet)
    p = parse_period(last_month())
    for needle in ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
                   "BÁO CÁO", "Tình hình ứng dụng công nghệ thông tin",
                   f"tháng {p.first.month} năm {p.first.year}", "Bắc Giang, ngày",
                   "I. THÔNG TIN CHUNG", "II. KẾT QUẢ THEO TIÊU CHÍ", "Bảng 1.",
                   "SỐ LIỆU MÔ PHỎNG", "LĐLĐ huyện Yên Dũng (mô phỏng)",
                   f"phiên bản {report.ruleset[:12]}"):
        assert needle in flat, needle
    # Every cited document once, although two rules' sources both name 1935/QĐ-VPCP.
    cited = flat.split("Căn cứ:", 1)[1].split(".", 1)[0] if "Căn cứ:" in flat else ""
    assert cited.count("1935/") == 1, cited
    # The unit name, rule titles and figures as computed (table cells wrap: compare words).
    words = set(re.findall(r"\w+", flat))
    assert set(re.findall(r"\w+", "Liên đoàn Lao động tỉnh Bắc Giang")) <= words
    for figure in report.rules[:6]:
        assert set(re.findall(r"\w+", figure.title)) <= words, figure.title
        assert pct(figure.end_value) in flat and pct(figure.mean) in flat, figure.rule_id
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True,
                           check=True).stdout
    assert "DejaVu" in fonts
    assert all(line.split()[-5] == "yes" for line in fonts.splitlines()[2:])  # embedded
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", str(out)], capture_output=True, text=True, check=True).stdout)[1])
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(out), str(tmp_path / "page")],
                   check=True, timeout=120)
    rendered = sorted(tmp_path.glob("page-*.png"))
    assert len(rendered) == pages >= 2
    assert all(p.stat().st_size > 2000 for p in rendered)


def test_xlsx_report_reopens_with_values_formats_and_frozen_headers(fleet, tmp_path):
    out = tmp_path / "bao-cao.xlsx"
    result = cli(fleet, "report", "--unit", simulate.ROOT, "--period", last_month(),
                 "-o", str(out))  # the format from the extension
    assert result.returncode == 0, result.stderr
    wb = load_workbook(out)
    assert wb.sheetnames[:3] == ["thong-tin", "2-rules", "2-counts"]
    assert {"3-matrix", "3-children", "4-failing", "5-coverage", "6-depreciation",
            "7-waivers"} <= set(wb.sheetnames)
    report = expected(fleet)
    ws = wb["2-rules"]
    assert ws.freeze_panes == "A3"
    assert [c.value for c in ws[2]][:5] == ["STT", "Tiêu chí", "Mức độ", "Chỉ tiêu", "Cuối kỳ"]
    for row, figure in zip(ws.iter_rows(min_row=3, values_only=True), report.rules,
                           strict=True):
        assert row[1] == figure.title
        assert row[4] == pytest.approx(figure.end_value)
        assert row[5] == pytest.approx(figure.mean)
        assert row[9] == figure.gap
    assert ws["E3"].number_format == "0.0%" and ws["H3"].number_format == "DD/MM/YYYY"
    failing = wb["4-failing"]
    assert failing.max_row - 2 == len(report.failing)
    assert failing["E3"].number_format == "DD/MM/YYYY HH:MM"
    info = [c.value for c in wb["thong-tin"]["A"] if c.value]
    assert info[2] == "Liên đoàn Lao động tỉnh Bắc Giang (mô phỏng)"  # the issuing unit
    assert any(str(v).startswith("SỐ LIỆU MÔ PHỎNG") for v in info)


def test_csv_has_a_bom_and_the_figures(fleet, tmp_path):
    out = tmp_path / "bao-cao.csv"
    assert cli(fleet, "report", "--unit", "SIM-11", "--period", last_month(), "--format",
               "csv", "-o", str(out)).returncode == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    report = expected(fleet)
    header = rows.index(["STT", "Tiêu chí", "Mức độ", "Chỉ tiêu", "Cuối kỳ", "Bình quân kỳ",
                         "Thấp nhất", "Ngày thấp nhất", "Thay đổi so với kỳ trước",
                         "Số máy còn thiếu"])
    first = rows[header + 1]
    assert first[1] == report.rules[0].title
    assert float(first[4]) == pytest.approx(report.rules[0].end_value)


def test_api_report_json_and_html_and_ranking(fleet):
    client = fleet["app"].test_client()
    auth = {"Authorization": f"Bearer {fleet['token']}"}
    resp = client.get("/api/v1/period-reports", headers=auth,
                      query_string={"unit": simulate.ROOT, "period": last_month()})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    want = expected(fleet).as_dict()
    body.pop("generated_at"), want.pop("generated_at")
    assert body == want
    resp = client.get("/api/v1/period-reports", headers=auth, query_string={
        "unit": "SIM-11-1", "period": last_month(), "format": "html", "lang": "en"})
    assert resp.status_code == 200 and resp.content_type.startswith("text/html")
    page = resp.get_data(as_text=True)
    assert "SOCIALIST REPUBLIC OF VIET NAM" in page and "LĐLĐ huyện Yên Dũng" in page
    resp = client.get("/api/v1/rankings", headers=auth,
                      query_string={"parent": simulate.ROOT, "period": last_month(),
                                    "format": "xlsx"})
    assert resp.status_code == 200
    assert "attachment" in resp.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(resp.data))
    ranking = wb["2-ranking"]
    ranks = [r[0] for r in ranking.iter_rows(min_row=3, values_only=True)]
    assert ranks == [1, 2]
    doc = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/period-reports", "/api/v1/rankings"):
        assert set(doc["paths"][path]["get"]["responses"]) >= {"200", "400", "401", "404",
                                                               "405"}


def test_ranking_pdf_names_the_method_and_the_units(fleet, tmp_path):
    tools()
    engine = make_engine(fleet["url"])
    with engine.connect() as conn:
        ranking = build_ranking(conn, simulate.ROOT, parse_period(last_month()), "vi",
                                timezone=TZ, now=datetime.now(timezone.utc), place="Bắc Giang")
    engine.dispose()
    out = tmp_path / "xep-hang.pdf"
    out.write_bytes(render_ranking(ranking, "pdf"))
    flat = " ".join(subprocess.run(["pdftotext", str(out), "-"], capture_output=True,
                                   text=True, check=True).stdout.split())
    assert "BẢNG XẾP HẠNG" in flat and "878/UBDT-TTTT" in flat
    for row in ranking.rows:
        assert f"{row.score:.2f}".replace(".", ",") in flat


BAD = [
    ({"unit": "Không có đơn vị này"}, 404, "unit", "no unit with id, code or path"),
    ({"period": "2026-13"}, 400, "period", "the month must be 1 to 12"),
    ({"period": "tháng 11"}, 400, "period", "is not a period"),
    ({"period": "2099-01"}, 400, "period", "has not begun yet"),
    ({"period": "1990"}, 404, "period", "no closed day"),
    ({"format": "docx"}, 400, "format", "format 'docx' is not known"),
    ({"lang": "fr"}, 400, "lang", "use vi or en"),
    ({"colour": "red"}, 400, "colour", "unknown query parameter"),
]


@pytest.mark.parametrize(("change", "status", "field", "message"), BAD)
def test_api_bad_input_names_the_parameter(fleet, change, status, field, message):
    client = fleet["app"].test_client()
    query = {"unit": simulate.ROOT, "period": last_month(), "format": "json", **change}
    resp = client.get("/api/v1/period-reports", query_string=query,
                      headers={"Authorization": f"Bearer {fleet['token']}"})
    assert resp.status_code == status
    body = resp.get_json()
    assert body["field"] == field and message in body["message"], body


def test_api_needs_an_admin_token(fleet):
    resp = fleet["app"].test_client().get("/api/v1/rankings", query_string={
        "parent": simulate.ROOT, "period": last_month()})
    assert resp.status_code == 401 and resp.get_json()["field"] == "Authorization"


@pytest.mark.parametrize(("args", "needle"), [
    (["--unit", "Không có"], "--unit: unit: no unit with id, code or path 'Không có'"),
    (["--period", "2099"], "--period: period '2099' has not begun yet"),
    (["--format", "docx"], "argument --format: invalid choice: 'docx'"),
])
def test_cli_bad_input_names_the_option_and_writes_nothing(fleet, tmp_path, args, needle):
    out = tmp_path / "x.pdf"
    base = {"--unit": simulate.ROOT, "--period": last_month(), "--format": "json"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = cli(fleet, "report", *[x for kv in base.items() for x in kv], "-o", str(out))
    assert result.returncode == 2
    assert needle in result.stderr, result.stderr
    assert not out.exists()


def test_cli_ranking_json_to_stdout(fleet):
    result = cli(fleet, "ranking", "--parent", simulate.ROOT, "--period", last_month(),
                 "--format", "json", "-o", "-")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert [r["rank"] for r in body["rows"]] == [1, 2]
    assert body["parent_name"] == simulate.ROOT
    assert date.fromisoformat(body["last_day"]) <= parse_period(last_month()).last
