"""riverguard benchmarks: ``python -m tests.benchmarks`` (``make bench``); not part of the test suite.

Files are named ``bench_*.py`` and ``__main__.py`` so pytest collects no test
items from them (it only imports them for doctests, and they hold none).
"""
