"""Compliance in the collector: the rules evaluated on ingest, after a rule change and on
a timer (evaluator, bulk), results and per-unit counts (store, digest), figures and
history, waivers and machine moves (admin), the compliance API, CLI and metric families.
wiring.py puts it into an app; docs/design.md shows where it sits in the data flow.
"""
