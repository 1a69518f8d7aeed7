"""The asset register and per-machine depreciation (docs/assets.md).

csv_import (parse + validate a register file), matching (rows to machines), store (the
tables: import, ingest step, lookup), depreciation (per machine and per unit, through
kiemke.compliance.depreciation), metrics, api, cli; integration.init_app plugs it in.
"""
