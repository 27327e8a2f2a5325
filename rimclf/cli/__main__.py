"""``python -m rimclf.cli``: the ``rimclf`` command without its console script."""

import sys

from rimclf.cli import main

sys.exit(main())
