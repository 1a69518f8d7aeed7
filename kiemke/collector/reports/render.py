"""Rendering reports and rankings: pdf, xlsx, csv, html, json.

`render_report(report, fmt)` / `render_ranking(ranking, fmt)` -> bytes. JSON is the
figures themselves (as_dict); the other formats draw the Document (document.py). The
PDF is the HTML page printed by WeasyPrint (A4, fonts embedded).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from kiemke.collector.reports.document import (
    Column,
    Document,
    fmt_day,
    fmt_ratio,
    local,
    ranking_document,
    report_document,
)
from kiemke.collector.reports.figures import PeriodReport
from kiemke.collector.reports.ranking import Ranking

FORMATS = ("pdf", "xlsx", "csv", "html", "json")
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "json": "application/json",
}


def render_report(report: PeriodReport, fmt: str) -> bytes:
    if fmt == "json":
        return _json(report.as_dict())
    return RENDERERS[fmt](report_document(report))


def render_ranking(ranking: Ranking, fmt: str) -> bytes:
    if fmt == "json":
        return _json(ranking.as_dict())
    return RENDERERS[fmt](ranking_document(ranking))


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")


# ------------------------------------------------------------------ text of a cell

def cell_text(value: Any, col: Column, doc: Document) -> str:
    lang = doc.lang
    if value is None:
        return "-" if col.kind != "text" else ""
    if col.kind == "ratio":
        return fmt_ratio(value, lang)
    if col.kind == "points":
        text = f"{value * 100:+.1f}"
        return (text.replace(".", ",") + " điểm %") if lang == "vi" else text + " pp"
    if col.kind == "score":
        text = f"{value:.2f}"
        return text.replace(".", ",") if lang == "vi" else text
    if col.kind == "rank_change":
        return "=" if value == 0 else (f"▲{value}" if value > 0 else f"▼{-value}")
    if col.kind == "int":
        return f"{value:,}".replace(",", ".") if lang == "vi" else f"{value:,}"
    if col.kind == "datetime" and isinstance(value, datetime):
        return local(value, doc.timezone).strftime(
            "%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M")
    if col.kind == "date" and isinstance(value, date):
        return fmt_day(value, lang)
    return str(value)


# ------------------------------------------------------------------ HTML and PDF

CSS = """
@page { size: A4; margin: 20mm 15mm 20mm 30mm;
        @bottom-center { content: counter(page) "/" counter(pages); font-size: 9pt; } }
@page wide { size: A4 landscape; margin: 15mm 15mm 15mm 20mm;
             @bottom-center { content: counter(page) "/" counter(pages); font-size: 9pt; } }
div.landscape { page: wide; }
body { font-family: "DejaVu Serif", "Times New Roman", serif; font-size: 10.5pt;
       line-height: 1.35; color: #000; }
.heading { width: 100%; border-collapse: collapse; margin-bottom: 6mm; }
.heading td { vertical-align: top; text-align: center; border: none; padding: 0; }
.heading .left { width: 42%; } .heading .right { width: 58%; }
.org { text-transform: uppercase; font-size: 10pt; }
.issuer { text-transform: uppercase; font-weight: bold; font-size: 10pt; }
.nation { font-weight: bold; font-size: 10pt; }
.motto { font-weight: bold; font-size: 11pt; }
.rule-line { width: 35%; margin: 1mm auto 2mm auto; border-top: 0.6pt solid #000; }
.place { font-style: italic; margin-top: 2mm; }
.simulated { border: 1.2pt solid #b00; color: #b00; font-weight: bold; text-align: center;
             padding: 1.5mm; margin: 3mm 0; }
h1 { text-align: center; font-size: 14pt; margin: 4mm 0 0 0; }
.subtitle { text-align: center; font-weight: bold; font-size: 12pt; margin: 1mm 10mm 6mm; }
h2 { font-size: 11.5pt; margin: 5mm 0 2mm 0; text-transform: uppercase; }
p { margin: 1mm 0; }
table.data { width: 100%; border-collapse: collapse; margin: 1mm 0 4mm 0; font-size: 8pt;
             page-break-inside: auto; }
table.data caption { caption-side: top; text-align: left; font-style: italic;
                     font-weight: bold; padding-bottom: 1mm; }
table.data th, table.data td { border: 0.5pt solid #000; padding: 0.8mm 1.2mm; }
table.data th { background: #eee; font-weight: bold; text-align: center; }
table.data thead { display: table-header-group; }
table.data tr { page-break-inside: avoid; }
td.num { text-align: right; white-space: nowrap; }
td.wide { width: 30%; }
table.fixed { table-layout: fixed; }
table.fixed td { overflow-wrap: break-word; }
table.fixed td.wide { width: auto; }
p.more { font-style: italic; font-size: 9pt; }
.signature { width: 100%; margin-top: 8mm; border-collapse: collapse; page-break-inside: avoid; }
.signature td { border: none; vertical-align: top; width: 50%; }
.signature .who { text-align: center; font-weight: bold; }
.signature .hint { text-align: center; font-style: italic; font-size: 9pt; }
.recipients { font-size: 9pt; }
.footer { margin-top: 10mm; font-size: 8pt; color: #444; }
"""


LANDSCAPE = ("matrix", "failing", "waivers")
KIND_WIDTHS = {"int": 6.0, "datetime": 13.0, "date": 10.0, "ratio": 8.0, "points": 10.0,
               "score": 8.0, "rank_change": 8.0}


def _colgroup(columns: Any) -> str:
    fixed = sum(KIND_WIDTHS.get(c.kind, 0.0) for c in columns)
    texts = sum(1 for c in columns if c.kind not in KIND_WIDTHS)
    rest = max(100.0 - fixed, 10.0) / max(texts, 1)
    widths = [KIND_WIDTHS.get(c.kind, rest) for c in columns]
    return "<colgroup>" + "".join(f'<col style="width:{w:.1f}%">' for w in widths) + \
        "</colgroup>"


def _table_html(table: Any, doc: Document, more: str, annex: str) -> str:
    limit = len(table.rows) if table.print_limit is None else table.print_limit
    if limit == 0:  # left to the annex (XLSX, CSV, JSON): say where it is
        note = annex.format(caption=table.caption, n=len(table.rows))
        return f'<p class="more">{html.escape(note)}</p>'
    head = "".join(f"<th>{html.escape(c.title)}</th>" for c in table.columns)
    body = []
    first_text = next((i for i, c in enumerate(table.columns) if c.kind == "text"), -1)
    # The long lists (those with a print limit) get a fixed layout, the widths set here
    # by column kind: WeasyPrint lays it out several times faster than measuring every
    # cell's text.
    fixed = table.print_limit is not None
    cols = _colgroup(table.columns) if fixed else ""
    for row in table.rows[:limit]:
        cells = []
        for i, (value, col) in enumerate(zip(row, table.columns, strict=True)):
            cls = ' class="num"' if col.kind not in ("text", "datetime", "date") else \
                ' class="txt"'
            if i == first_text:
                cls = ' class="wide"'

            cells.append(f"<td{cls}>{html.escape(cell_text(value, col, doc))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cut = len(table.rows) - limit
    note = f'<p class="more">{html.escape(more.format(n=cut))}</p>' if cut > 0 else ""
    return (f'<table class="data{" fixed" if fixed else ""}">'
            f"<caption>{html.escape(table.caption)}</caption>{cols}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}")


def render_html(doc: Document) -> bytes:
    from kiemke.collector.reports.document import T

    t = T[doc.lang]
    e = html.escape
    parts = [f'<!DOCTYPE html><html lang="{doc.lang}"><head><meta charset="utf-8">',
             f"<title>{e(doc.title)} - {e(doc.subtitle)}</title><style>{CSS}</style>",
             "</head><body>",
             '<table class="heading"><tr><td class="left">',
             f'<div class="org">{e(doc.parent_name)}</div>' if doc.parent_name else "",
             f'<div class="issuer">{e(doc.issuer)}</div><div class="rule-line"></div>',
             f'<div>{e(t["number"])}</div></td>',
             f'<td class="right"><div class="nation">{e(t["nation"])}</div>',
             f'<div class="motto">{e(t["motto"])}</div><div class="rule-line"></div>',
             f'<div class="place">{e(doc.place_date)}</div></td></tr></table>']
    if doc.simulated:
        parts.append(f'<div class="simulated">{e(t["simulated"])}</div>')
    parts.append(f"<h1>{e(doc.title)}</h1><div class=\"subtitle\">{e(doc.subtitle)}</div>")
    for section in doc.sections:
        parts.append(f"<h2>{section.numeral}. {e(section.title)}</h2>")
        parts.extend(f"<p>{e(p)}</p>" for p in section.paragraphs)
        for table in section.tables:
            if table.rows:
                block = _table_html(table, doc, t["more_rows"], t["annex"])
                # Wide tables (the unit x rule matrix, the machine lists) on landscape
                # pages: they fit their rows in a third of the pages.
                wide = table.sheet in LANDSCAPE and (table.print_limit != 0)
                parts.append(f'<div class="landscape">{block}</div>' if wide else block)
    recipients = "<br>".join(e(x) for x in t["recipients_list"])
    parts.append(f'<table class="signature"><tr><td class="recipients"><b><i>'
                 f'{e(t["recipients"])}</i></b><br>{recipients}</td>'
                 f'<td><div class="who">{e(t["signer"])}</div>'
                 f'<div class="hint">{e(t["sign_hint"])}</div></td></tr></table>')
    parts.append('<div class="footer">' + "<br>".join(e(x) for x in doc.footer) + "</div>")
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


def render_pdf(doc: Document) -> bytes:
    from weasyprint import HTML  # imported here: loading pango costs ~0.3 s

    return bytes(HTML(string=render_html(doc).decode("utf-8")).write_pdf())


# ------------------------------------------------------------------ XLSX and CSV

XLSX_FORMATS = {"ratio": "0.0%", "points": '+0.0" pp";-0.0" pp";0.0" pp"', "int": "#,##0",
                "score": "0.00", "date": "DD/MM/YYYY", "datetime": "DD/MM/YYYY HH:MM",
                "rank_change": '"▲"0;"▼"0;"="'}


def _xlsx_value(value: Any, col: Column, doc: Document) -> Any:
    if isinstance(value, datetime):
        return local(value, doc.timezone).replace(tzinfo=None)
    return value


def render_xlsx(doc: Document) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    thin = Side(style="thin", color="999999")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    fill = PatternFill("solid", fgColor="EEEEEE")
    info = wb.create_sheet("info" if doc.lang == "en" else "thong-tin")
    info.append([doc.title])
    info["A1"].font = Font(bold=True, size=14)
    info.append([doc.subtitle])
    info.append([doc.issuer])
    info.append([doc.place_date])
    if doc.simulated:
        info.append([doc.footer[0]])
    for section in doc.sections:
        if section.paragraphs:
            info.append([])
            info.append([f"{section.numeral}. {section.title}"])
            info.cell(info.max_row, 1).font = bold
            for p in section.paragraphs:
                info.append([p])
    info.append([])
    for line in doc.footer:
        info.append([line])
    info.column_dimensions["A"].width = 120
    used: set[str] = {info.title}
    for section in doc.sections:
        for table in section.tables:
            name = f"{section.number}-{table.sheet}"[:31]
            while name in used:
                name = name[:29] + "_2"
            used.add(name)
            ws = wb.create_sheet(name)
            ws.append([table.caption])
            ws["A1"].font = bold
            ws.append([c.title for c in table.columns])
            for i, _col in enumerate(table.columns, start=1):
                cell = ws.cell(2, i)
                cell.font, cell.fill, cell.border = bold, fill, border
                cell.alignment = Alignment(wrap_text=True, vertical="center",
                                           horizontal="center")
            for row in table.rows:
                ws.append([_xlsx_value(v, c, doc) for v, c in zip(row, table.columns,
                                                                   strict=True)])
                r = ws.max_row
                for i, col in enumerate(table.columns, start=1):
                    cell = ws.cell(r, i)
                    cell.border = border
                    if col.kind in XLSX_FORMATS:
                        cell.number_format = XLSX_FORMATS[col.kind]
            ws.freeze_panes = "A3"  # caption and header stay in view
            for i, col in enumerate(table.columns, start=1):
                width = 40 if col.kind == "text" and i <= 4 else 14
                ws.column_dimensions[get_column_letter(i)].width = width
            ws.row_dimensions[2].height = 45
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _csv_value(value: Any, col: Column, doc: Document) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return local(value, doc.timezone).isoformat(timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6g}" if col.kind not in ("ratio", "points") else f"{value:.6f}"
    return str(value)


def render_csv(doc: Document) -> bytes:
    """All tables one after another: a line with the table's caption, its header, its
    rows, a blank line. Ratios are fractions (0.873 = 87.3 %), times local ISO 8601.
    UTF-8 with a BOM so that Excel shows Vietnamese correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([doc.title, doc.subtitle])
    if doc.simulated:
        writer.writerow([doc.footer[0]])
    for section in doc.sections:
        for table in section.tables:
            writer.writerow([])
            writer.writerow([f"{section.numeral}. {section.title}", table.caption])
            writer.writerow([c.title for c in table.columns])
            for row in table.rows:
                writer.writerow([_csv_value(v, c, doc) for v, c in
                                 zip(row, table.columns, strict=True)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


RENDERERS: dict[str, Callable[[Document], bytes]] = {
    "pdf": render_pdf, "xlsx": render_xlsx, "csv": render_csv, "html": render_html}
