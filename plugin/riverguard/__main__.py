"""``python -m riverguard`` is the ``riverguard`` command."""

import sys

from ._entry import main

sys.exit(main())
