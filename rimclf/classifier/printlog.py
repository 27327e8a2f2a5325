"""The epoch table of the estimator: skorch's ``PrintLog``, coloured only on a terminal."""

from __future__ import annotations

import os
import re
import sys

from skorch.callbacks import PrintLog as _SkorchPrintLog

#: ANSI SGR sequences (colours and their reset), as skorch writes them
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class PrintLog(_SkorchPrintLog):
    """skorch's epoch table, with its colours only where a terminal shows them.

    skorch colours the best value of each column with ANSI escape codes; written to a file or a
    pipe (``rimclf train ... > train.log``) they read as ``\\x1b[36m``. This table keeps them
    only when it is printed (``sink=print``) to a terminal and the ``NO_COLOR`` environment
    variable (https://no-color.org) is unset or empty; otherwise it is the same table without
    them. Parameters as :class:`skorch.callbacks.PrintLog`.
    """

    def _coloured(self) -> bool:
        if os.environ.get("NO_COLOR"):
            return False
        stream = sys.stdout
        return self.sink is print and stream is not None and hasattr(stream, "isatty") and stream.isatty()

    def table(self, row) -> str:
        text = super().table(row)
        return text if self._coloured() else _ANSI.sub("", text)
