"""The lab: namespace testbeds and the embedded apiserver, for tests and `openelb lab`."""
