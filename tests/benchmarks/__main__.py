"""``python -m tests.benchmarks [--quick] [--output PATH]``: see bench_main.py."""

import sys

from .bench_main import main

sys.exit(main())
