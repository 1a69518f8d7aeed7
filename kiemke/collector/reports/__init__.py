"""Period reports and the ranking, built from the replayable history (issue 9).

Python API (also used by the web console), see docs/reports.md:
- `history.run_daily_job(engine, ruleset, config, now)`: close the local days that
  ended, once across collector instances; catches up missed days;
- `figures.build_period_report(conn, unit, period, lang, ...) -> PeriodReport`;
- `ranking.build_ranking(conn, parent, period, lang, ...) -> Ranking`;
- `render.render(document_or_data, fmt, lang) -> bytes` for pdf, xlsx, csv, html, json.
`init_app(app)` (kiemke/collector/reports/integration.py) registers the API and the
daily job.
"""
