"""Benchmarks of tracker-links against the alternatives, in one run (issue 7).

Run ``python -m benchmarks`` (the full run, a few minutes) or ``python -m benchmarks --quick``
(a tiny smoke run). Every measurement runs the fake Tracker in its own process over loopback
(:mod:`benchmarks._server`) and the client under test in another fresh process
(:mod:`benchmarks._worker`), so server CPU never counts as client CPU. See ``--help``.
"""
