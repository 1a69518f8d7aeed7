"""The kiemke collector: receives agent reports, stores them, serves APIs and /metrics."""
