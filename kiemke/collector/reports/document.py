"""A report or ranking as a document: heading, title, numbered sections of tables.

Every renderer (HTML/PDF, XLSX, CSV) draws the same Document, so the formats carry the
same figures. Cell values stay raw (ratios as fractions, dates as dates); each renderer
formats them by the column's kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from kiemke.collector.reports.figures import PeriodReport
from kiemke.collector.reports.periods import ROMAN
from kiemke.collector.reports.ranking import Ranking

# Column kinds: text, int, ratio (0-1 shown as %), points (a change of ratio, shown in
# percentage points), score (0-100), date, datetime, rank_change.
# What the PDF/HTML (the letter sent upward) prints; XLSX, CSV and JSON (the annex) keep
# every row. WeasyPrint's time grows with the pages, and a province's lists run to
# thousands of rows: machine lists stop after PRINT_LIMIT rows with their total, and the
# per-child x rule table is printed only when short (the matrix carries its means).
PRINT_LIMIT = 20
CHILD_TABLE_PRINT_MAX = 60
KINDS = ("text", "int", "ratio", "points", "score", "date", "datetime", "rank_change")


@dataclass
class Column:
    title: str
    kind: str = "text"


@dataclass
class Table:
    caption: str
    columns: list[Column]
    rows: list[list[Any]]
    sheet: str  # XLSX sheet / CSV block name (short)
    # Rows shown in HTML/PDF at most (machine lists of a province run to thousands);
    # XLSX, CSV and JSON keep every row.
    print_limit: int | None = None


@dataclass
class Section:
    number: int
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    @property
    def numeral(self) -> str:
        return roman(self.number)


@dataclass
class Document:
    kind: str  # report | ranking
    lang: str
    parent_name: str | None  # the issuing unit's parent (top-left line)
    issuer: str
    place_date: str
    title: str  # BÁO CÁO / REPORT
    subtitle: str
    sections: list[Section]
    footer: list[str]
    simulated: bool
    timezone: str


def roman(n: int) -> str:
    values = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for v, s in values:
        while n >= v:
            out, n = out + s, n - v
    return out


T: dict[str, dict[str, Any]] = {
    "vi": {
        "nation": "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "motto": "Độc lập - Tự do - Hạnh phúc",
        "number": "Số: ....../BC-......",
        "report": "BÁO CÁO",
        "ranking": "BẢNG XẾP HẠNG",
        "report_sub": "Tình hình ứng dụng công nghệ thông tin của {unit} {period}",
        "ranking_sub": "Ứng dụng công nghệ thông tin của các đơn vị trực thuộc {unit} {period}",
        "place_date": "{place}ngày {d:02d} tháng {m:02d} năm {y}",
        "general": "Thông tin chung",
        "by_rule": "Kết quả theo tiêu chí",
        "by_child": "Kết quả của các đơn vị trực thuộc",
        "failing": "Máy vi phạm tiêu chí nghiêm trọng cuối kỳ",
        "coverage": "Tỷ lệ máy báo cáo",
        "depreciation": "Khấu hao thiết bị",
        "waivers": "Miễn trừ còn hiệu lực trong kỳ",
        "method": "Phương pháp tính điểm",
        "table": "Bảng",
        "counts": "Số máy theo kết quả cuối kỳ",
        "matrix": "Tỷ lệ đạt bình quân kỳ theo đơn vị; cột (n) là tiêu chí số n ở Bảng 1",
        "weight": "Trọng số", "rules_weights": "Tiêu chí và trọng số",
        "columns_note": "Cột (n): tỷ lệ đạt bình quân kỳ của tiêu chí số n ở Bảng 1. Thay đổi "
                        "hạng: ▲ tăng, ▼ giảm so với kỳ trước.",
        "more_rows": "… và {n} dòng nữa (xem bản XLSX, CSV hoặc JSON để có đủ danh sách).",
        "annex": "{caption}: {n} dòng, có đủ trong bản XLSX, CSV hoặc JSON (phụ lục).",
        "no": "STT", "rule": "Tiêu chí", "severity": "Mức độ", "target": "Chỉ tiêu",
        "end": "Cuối kỳ", "mean": "Bình quân kỳ", "worst": "Thấp nhất",
        "worst_day": "Ngày thấp nhất",
        "change": "Thay đổi so với kỳ trước", "gap": "Số máy còn thiếu", "pass": "Đạt",
        "fail": "Không đạt", "unknown": "Không rõ", "na": "Không áp dụng", "exempt": "Miễn trừ",
        "stale": "Mất liên lạc", "unit": "Đơn vị", "machines": "Tổng số máy",
        "active": "Đang báo cáo", "cov_end": "Tỷ lệ báo cáo cuối kỳ",
        "cov_mean": "Tỷ lệ báo cáo bình quân", "host": "Tên máy", "since": "Vi phạm từ",
        "days": "Số ngày vi phạm trong kỳ", "reason": "Lý do", "author": "Người duyệt",
        "from": "Từ", "expires": "Hết hạn", "ended": "Kết thúc trong kỳ",
        "dep_in_service": "Hết khấu hao vẫn sử dụng", "replace": "Cần thay thế năm {y}",
        "rank": "Hạng", "score": "Điểm", "rank_change": "Thay đổi hạng",
        "reporting": "Máy báo cáo bình quân", "note": "Ghi chú",
        "severity_names": {"critical": "nghiêm trọng", "high": "cao", "medium": "trung bình",
                           "low": "thấp"},
        "unit_line": "Đơn vị báo cáo: {path}.",
        "period_line": "Kỳ báo cáo: {label} (từ {first} đến {last}, giờ {tz}); số ngày có số "
                       "liệu: {days}.",
        "partial": "Kỳ báo cáo chưa kết thúc: số liệu tính đến hết ngày {last}.",
        "ruleset_line": "Bộ tiêu chí áp dụng: phiên bản {fp} (áp dụng từ ngày {since}).",
        "rulesets_more": "Trong kỳ có {n} phiên bản bộ tiêu chí: {fps}.",
        "sources_line": "Căn cứ: {sources}.",
        "summary": "Cuối kỳ có {active}/{machines} máy đang báo cáo ({cov}); {met}/{measured} "
                   "tiêu chí đạt chỉ tiêu; {failing} lượt máy vi phạm tiêu chí nghiêm trọng.",
        "none_failing": "Không có máy vi phạm tiêu chí nghiêm trọng vào cuối kỳ.",
        "none_waivers": "Không có miễn trừ nào còn hiệu lực trong kỳ.",
        "previous": "Kỳ trước để so sánh: {p}.",
        "simulated": "SỐ LIỆU MÔ PHỎNG - không phải máy thật.",
        "generated": "Tạo lúc {at} bởi kiemke {version}.",
        "recipients": "Nơi nhận:", "recipients_list": ["- Lãnh đạo đơn vị;",
                                                      "- Hội đồng Thi đua - Khen thưởng;",
                                                      "- Lưu: VT."],
        "signer": "THỦ TRƯỞNG ĐƠN VỊ", "sign_hint": "(Ký, ghi rõ họ tên, đóng dấu)",
        "method_text": [
            "Điểm của một đơn vị trong một ngày = hệ số báo cáo × bình quân có trọng số "
            "của min(1, tỷ lệ đạt / chỉ tiêu) trên các tiêu chí có số liệu ngày đó; điểm "
            "của kỳ là bình quân điểm các ngày, thang 100.",
            "Trọng số theo mức độ: {weights}. Hệ số báo cáo = min(1, tỷ lệ máy báo cáo / "
            "{cov}).",
            "Đơn vị có bình quân dưới {min:g} máy báo cáo không được xếp hạng. Điểm bằng "
            "nhau (làm tròn {dec} chữ số) cùng hạng.",
            "Căn cứ: Công văn {doc} của Ủy ban Dân tộc (đánh giá cuối năm, xây dựng bảng "
            "xếp hạng làm căn cứ bình xét thi đua, khen thưởng).",
        ],
    },
    "en": {
        "nation": "SOCIALIST REPUBLIC OF VIET NAM",
        "motto": "Independence - Freedom - Happiness",
        "number": "No.: ....../BC-......",
        "report": "REPORT",
        "ranking": "RANKING",
        "report_sub": "IT application at {unit}, {period}",
        "ranking_sub": "IT application of the units under {unit}, {period}",
        "place_date": "{place}{y}-{m:02d}-{d:02d}",
        "general": "General information",
        "by_rule": "Results by rule",
        "by_child": "Results of the units below",
        "failing": "Machines failing critical rules at period end",
        "coverage": "Reporting coverage",
        "depreciation": "Depreciation",
        "waivers": "Waivers in force during the period",
        "method": "How the score is computed",
        "table": "Table",
        "counts": "Machines by result at period end",
        "matrix": "Mean ratio over the period by unit; column (n) is rule n of table 1",
        "weight": "Weight", "rules_weights": "Rules and weights",
        "columns_note": "Column (n): the period's mean ratio of rule n in table 1. Rank "
                        "change: ▲ up, ▼ down against the previous period.",
        "more_rows": "… and {n} more rows (the XLSX, CSV and JSON files list them all).",
        "annex": "{caption}: {n} rows, listed in full in the XLSX, CSV and JSON files (annex).",
        "no": "No.", "rule": "Rule", "severity": "Severity", "target": "Target",
        "end": "Period end", "mean": "Period mean", "worst": "Worst day value",
        "worst_day": "Worst day", "change": "Change vs previous period",
        "gap": "Machines still to fix", "pass": "Pass", "fail": "Fail", "unknown": "Unknown",
        "na": "Not applicable", "exempt": "Exempt", "stale": "Stale", "unit": "Unit",
        "machines": "Machines", "active": "Reporting", "cov_end": "Coverage at period end",
        "cov_mean": "Mean coverage", "host": "Hostname", "since": "Failing since",
        "days": "Days failing in period", "reason": "Reason", "author": "Approved by",
        "from": "From", "expires": "Expires", "ended": "Ended in period",
        "dep_in_service": "Fully depreciated, in service", "replace": "To replace in {y}",
        "rank": "Rank", "score": "Score", "rank_change": "Rank change",
        "reporting": "Mean reporting machines", "note": "Note",
        "severity_names": {"critical": "critical", "high": "high", "medium": "medium",
                           "low": "low"},
        "unit_line": "Reporting unit: {path}.",
        "period_line": "Period: {label} ({first} to {last}, {tz} time); days with data: "
                       "{days}.",
        "partial": "The period has not ended: figures up to the end of {last}.",
        "ruleset_line": "Rule set: version {fp} (in force since {since}).",
        "rulesets_more": "{n} rule-set versions were in force during the period: {fps}.",
        "sources_line": "Based on: {sources}.",
        "summary": "At period end {active} of {machines} machines were reporting ({cov}); "
                   "{met} of {measured} rules met their target; {failing} machine x rule "
                   "failures of critical rules.",
        "none_failing": "No machine failed a critical rule at period end.",
        "none_waivers": "No waiver was in force during the period.",
        "previous": "Compared with: {p}.",
        "simulated": "SIMULATED DATA - not real machines.",
        "generated": "Generated at {at} by kiemke {version}.",
        "recipients": "To:", "recipients_list": ["- Unit leadership;",
                                                 "- Emulation and Rewards Council;",
                                                 "- Archive."],
        "signer": "HEAD OF UNIT", "sign_hint": "(signature, full name, seal)",
        "method_text": [
            "A unit's score on a day = coverage factor x weighted mean over the rules "
            "measured that day of min(1, ratio / target); the period's score is the mean of "
            "the daily scores, out of 100.",
            "Weights by severity: {weights}. Coverage factor = min(1, reporting coverage / "
            "{cov}).",
            "Units with fewer than {min:g} reporting machines on average are not ranked. "
            "Equal scores (rounded to {dec} decimals) share a rank.",
            "Based on: Ủy ban Dân tộc letter {doc} (year-end assessment and ranking as the "
            "basis for emulation and rewards).",
        ],
    },
}


def local(value: datetime, tz: str) -> datetime:
    return value.astimezone(ZoneInfo(tz))


def fmt_day(value: date, lang: str) -> str:
    return f"{value.day:02d}/{value.month:02d}/{value.year}" if lang == "vi" else value.isoformat()


def fmt_ratio(value: float | None, lang: str) -> str:
    if value is None:
        return "-"
    text = f"{value * 100:.1f}%"
    return text.replace(".", ",") if lang == "vi" else text


def _place_date(place: str, when: date, lang: str) -> str:
    prefix = f"{place}, " if place else ""
    return T[lang]["place_date"].format(place=prefix, d=when.day, m=when.month, y=when.year)


def _is_simulated(path: str) -> bool:
    return "(mô phỏng)" in path


def _footer(t: dict[str, Any], generated: datetime, tz: str, simulated: bool) -> list[str]:
    from kiemke import __version__

    lines = [t["generated"].format(at=local(generated, tz).strftime("%Y-%m-%d %H:%M %Z"),
                                   version=__version__)]
    return [t["simulated"], *lines] if simulated else lines


def below(unit: Any, path: str) -> str:
    """A unit's path as seen from the report's unit (the lists would repeat its path on
    every row): "LĐLĐ huyện Yên Dũng / Văn phòng" in the province's report."""
    if path.startswith(unit.path + " / "):
        return path[len(unit.path) + 3:]
    return unit.name if path == unit.path else path


def report_document(r: PeriodReport) -> Document:
    t = T[r.lang]
    lang = r.lang
    sev = t["severity_names"]
    measured = [f for f in r.rules if f.end_value is not None]
    general = Section(1, t["general"], [
        t["unit_line"].format(path=r.unit.path),
        t["period_line"].format(label=r.period.label(lang), first=fmt_day(r.first_day, lang),
                                last=fmt_day(r.last_day, lang), tz=r.timezone,
                                days=r.days_reported),
        *([] if r.complete else [t["partial"].format(last=fmt_day(r.last_day, lang))]),
        t["ruleset_line"].format(fp=r.ruleset[:12], since=fmt_day(r.ruleset_since, lang)),
        *([t["rulesets_more"].format(n=len(r.rulesets_in_period),
                                     fps=", ".join(fp[:12] for fp in r.rulesets_in_period))]
          if len(r.rulesets_in_period) > 1 else []),
        t["previous"].format(p=r.previous_period),
        *([t["sources_line"].format(sources=", ".join(r.sources))] if r.sources else []),
        t["summary"].format(active=r.coverage.active, machines=r.coverage.machines,
                            cov=fmt_ratio(r.coverage.end_value, lang),
                            met=sum(1 for f in measured if f.meets_target),
                            measured=len(measured), failing=len(r.failing)),
    ])
    rule_cols = [Column(t["no"], "int"), Column(t["rule"]), Column(t["severity"]),
                 Column(t["target"], "ratio"), Column(t["end"], "ratio"),
                 Column(t["mean"], "ratio"), Column(t["worst"], "ratio"),
                 Column(t["worst_day"], "date"), Column(t["change"], "points"),
                 Column(t["gap"], "int")]
    rule_rows = [[i, f.title, sev.get(f.severity, f.severity), f.target, f.end_value, f.mean,
                  f.worst, f.worst_day, f.change, f.gap] for i, f in enumerate(r.rules, start=1)]
    count_cols = [Column(t["no"], "int"), Column(t["rule"]), Column(t["pass"], "int"),
                  Column(t["fail"], "int"), Column(t["unknown"], "int"),
                  Column(t["na"], "int"), Column(t["exempt"], "int"), Column(t["stale"], "int")]
    count_rows = [[i, f.title, f.counts["pass"], f.counts["fail"], f.counts["unknown"],
                   f.counts["not_applicable"], f.counts["exempt"], f.counts["stale"]]
                  for i, f in enumerate(r.rules, start=1)]
    tables_n = 0

    def caption(text: str) -> str:
        nonlocal tables_n
        tables_n += 1
        return f"{t['table']} {tables_n}. {text}"

    by_rule = Section(2, t["by_rule"], [], [
        Table(caption(t["by_rule"]), rule_cols, rule_rows, "rules"),
        Table(caption(t["counts"]), count_cols, count_rows, "counts")])
    child_cols = [Column(t["unit"]), Column(t["rule"]), Column(t["target"], "ratio"),
                  Column(t["end"], "ratio"), Column(t["mean"], "ratio"),
                  Column(t["worst"], "ratio"), Column(t["change"], "points"),
                  Column(t["gap"], "int")]
    child_rows = [[c.name, f.title, f.target, f.end_value, f.mean, f.worst, f.change, f.gap]
                  for c in r.children for f in c.rules]
    # Rules by their number in table 1: the matrix must fit an A4 page.
    matrix_cols = [Column(t["unit"]), *(Column(f"({i})", "ratio")
                                        for i in range(1, len(r.rules) + 1))]
    matrix_rows = [[c.name, *(f.mean for f in c.rules)] for c in r.children]
    by_child = Section(3, t["by_child"], [], [
        Table(caption(t["matrix"]), matrix_cols, matrix_rows, "matrix"),
        Table(caption(t["by_child"]), child_cols, child_rows, "children",
              None if len(child_rows) <= CHILD_TABLE_PRINT_MAX else 0)])
    fail_cols = [Column(t["no"], "int"), Column(t["host"]), Column(t["unit"]),
                 Column(t["rule"]), Column(t["since"], "datetime"), Column(t["days"], "int"),
                 Column(t["reason"])]
    fail_rows = [[i, f.hostname, below(r.unit, f.unit_path), f.rule_title, f.since,
                  f.days_in_period, f.reason or ""] for i, f in enumerate(r.failing, start=1)]
    failing = Section(4, t["failing"], [] if fail_rows else [t["none_failing"]],
                      [Table(caption(t["failing"]), fail_cols, fail_rows, "failing",
                             PRINT_LIMIT)])
    cov_cols = [Column(t["unit"]), Column(t["machines"], "int"), Column(t["active"], "int"),
                Column(t["stale"], "int"), Column(t["cov_end"], "ratio"),
                Column(t["cov_mean"], "ratio")]
    cov_rows = [[r.unit.name, r.coverage.machines, r.coverage.active, r.coverage.stale,
                 r.coverage.end_value, r.coverage.mean],
                *([c.name, c.coverage.machines, c.coverage.active, c.coverage.stale,
                   c.coverage.end_value, c.coverage.mean] for c in r.children)]
    coverage = Section(5, t["coverage"], [], [Table(caption(t["coverage"]), cov_cols, cov_rows,
                                                    "coverage")])
    dep_cols = [Column(t["unit"]), Column(t["dep_in_service"], "int"),
                Column(t["replace"].format(y=r.next_year), "int")]
    dep_rows = [[r.unit.name, r.depreciated_in_service, r.replace_next_year],
                *([c.name, c.depreciated_in_service, c.replace_next_year] for c in r.children)]
    depreciation = Section(6, t["depreciation"], [], [
        Table(caption(t["depreciation"]), dep_cols, dep_rows, "depreciation")])
    w_cols = [Column(t["no"], "int"), Column(t["host"]), Column(t["unit"]), Column(t["rule"]),
              Column(t["reason"]), Column(t["author"]), Column(t["from"], "datetime"),
              Column(t["expires"], "datetime"), Column(t["ended"], "datetime")]
    titles = {f.rule_id: f.title for f in r.rules}
    w_rows = [[i, w.hostname, below(r.unit, w.unit_path), titles.get(w.rule_id, w.rule_id),
               w.reason, w.author, w.created_at, w.expires_at, w.ended_at]
              for i, w in enumerate(r.waivers, start=1)]
    waivers = Section(7, t["waivers"], [] if w_rows else [t["none_waivers"]],
                      [Table(caption(t["waivers"]), w_cols, w_rows, "waivers", PRINT_LIMIT)])
    simulated = _is_simulated(r.unit.path)
    return Document(
        "report", lang, r.unit.parent_name, r.unit.name,
        _place_date(r.place, local(r.generated_at, r.timezone).date(), lang), t["report"],
        t["report_sub"].format(unit=r.unit.name, period=r.period.label(lang)),
        [general, by_rule, by_child, failing, coverage, depreciation, waivers],
        _footer(t, r.generated_at, r.timezone, simulated), simulated, r.timezone)


def ranking_document(k: Ranking) -> Document:
    t = T[k.lang]
    lang = k.lang
    weights = ", ".join(f"{t['severity_names'].get(s, s)} {w:g}" for s, w in
                        sorted({r.severity: k.weights[r.id] for r in k.rules}.items(),
                               key=lambda sw: -sw[1]))
    method = Section(1, t["method"], [
        t["period_line"].format(label=k.period.label(lang), first=fmt_day(k.first_day, lang),
                                last=fmt_day(k.last_day, lang), tz=k.timezone,
                                days=k.days_reported),
        *([] if k.complete else [t["partial"].format(last=fmt_day(k.last_day, lang))]),
        t["ruleset_line"].format(fp=k.ruleset[:12], since=fmt_day(k.first_day, lang))
        .split(" (")[0] + ".",
        t["previous"].format(p=k.previous_period),
        *(line.format(weights=weights, cov=fmt_ratio(k.coverage_target, lang),
                      min=k.min_reporting_machines, dec=2, doc=k.method_source)
          for line in t["method_text"]),
    ])
    cols = [Column(t["rank"], "int"), Column(t["unit"]), Column(t["score"], "score"),
            Column(t["rank_change"], "rank_change"), Column(t["cov_mean"], "ratio"),
            Column(t["reporting"], "score"),
            *(Column(f"({i})", "ratio") for i in range(1, len(k.rules) + 1)),
            Column(t["note"])]
    rows = [[row.rank, row.name, row.score, row.rank_change, row.coverage,
             row.reporting_machines, *(row.rules.get(r.id) for r in k.rules), row.note]
            for row in k.rows]
    legend = [Column(t["no"], "int"), Column(t["rule"]), Column(t["severity"]),
              Column(t["weight"], "score")]
    legend_rows = [[i, r.title, t["severity_names"].get(r.severity, r.severity), k.weights[r.id]]
                   for i, r in enumerate(k.rules, start=1)]
    method.tables.append(Table(f"{t['table']} 1. {t['rules_weights']}", legend, legend_rows,
                               "weights"))
    table = Section(2, t["ranking"].capitalize() if lang == "vi" else "Ranking",
                    [t["columns_note"]],
                    [Table(f"{t['table']} 2. {t['ranking'].capitalize()}", cols, rows,
                           "ranking")])
    simulated = _is_simulated(k.parent_path)
    return Document(
        "ranking", lang, None, k.parent_name,
        _place_date(k.place, local(k.generated_at, k.timezone).date(), lang), t["ranking"],
        t["ranking_sub"].format(unit=k.parent_name, period=k.period.label(lang)),
        [method, table], _footer(t, k.generated_at, k.timezone, simulated), simulated,
        k.timezone)


__all__ = ["ROMAN", "Column", "Document", "Section", "Table", "ranking_document",
           "report_document"]
