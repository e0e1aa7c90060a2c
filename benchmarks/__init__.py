"""Benchmarks and test benches of the forms service (run as modules, e.g.
``python -m benchmarks.scanbench.generate``); not part of the installed package."""
