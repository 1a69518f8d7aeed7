"""The kiemke agent: collects facts on one PC and reports them to the collector."""
