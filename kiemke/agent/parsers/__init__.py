"""Pure parsers over captured tool output (WMI/CIM JSON, vendor CLIs, /sys, /proc).

Every function here takes text or bytes and returns plain data, so every platform's
parsing is tested on Linux against real captured output (tests/fixtures/).
"""
