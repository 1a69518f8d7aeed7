"""The asset register and per-machine depreciation (docs/assets.md).

csv_import (parse + validate a register file), matching (rows to machines), store (the
tables: import, the ingest step's work, lookup), depreciation (per machine and per unit,
through kiemke.compliance.depreciation), metrics, api, cli, state (what the app keeps);
wiring.py puts it into an app.
"""
