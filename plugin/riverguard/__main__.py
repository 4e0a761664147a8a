"""``python -m riverguard`` is the ``riverguard`` command."""

import sys

from .cli import main

sys.exit(main())
