"""What a training shows on the console, by the estimator's ``verbose``.

- ``verbose=0``: nothing.
- ``verbose=1``: a progress bar over the epochs (tqdm, on standard error, only where standard
  error is a terminal) and, when the training ends, one summary line (:class:`TrainingSummary`).
- ``verbose>=2``: also skorch's epoch table (:class:`PrintLog`).
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import Any

from skorch.callbacks import Callback
from skorch.callbacks import PrintLog as _SkorchPrintLog

#: ANSI SGR sequences (colours and their reset), as skorch writes them
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: ``verbose`` from which the epoch table is printed
TABLE_VERBOSITY = 2


class PrintLog(_SkorchPrintLog):
    """skorch's epoch table, printed only with ``verbose >= 2``, coloured only on a terminal.

    skorch colours the best value of each column with ANSI escape codes; written to a file or a
    pipe (``rimclf train ... > train.log``) they read as ``\\x1b[36m``. This table keeps them
    only when it is printed (``sink=print``) to a terminal and the ``NO_COLOR`` environment
    variable (https://no-color.org) is unset or empty; otherwise it is the same table without
    them. With ``sink=print`` the table is printed only when the net's ``verbose`` is at least 2
    (``rimclf ... -v``); ``verbose=1`` shows :class:`TrainingSummary` instead. Parameters as
    :class:`skorch.callbacks.PrintLog`.
    """

    def _coloured(self) -> bool:
        if os.environ.get("NO_COLOR"):
            return False
        stream = sys.stdout
        return self.sink is print and stream is not None and hasattr(stream, "isatty") and stream.isatty()

    def table(self, row) -> str:
        text = super().table(row)
        return text if self._coloured() else _ANSI.sub("", text)

    def _sink(self, text, verbose):
        if self.sink is not print or verbose >= TABLE_VERBOSITY:
            self.sink(text)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class TrainingSummary(Callback):
    """A progress bar over the epochs of one training and one summary line at its end.

    With the net's ``verbose >= 1``: a tqdm bar (epochs, with the last train loss) on standard
    error while training, only where standard error is a terminal, removed when the training
    ends; then one line on standard output, e.g. ``trained 30 epochs on 287 lesions in 2.4 s:
    train loss 0.312``, with the last ``valid_loss`` when the net holds out a validation split.
    Nothing with ``verbose=0``.

    Parameters
    ----------
    desc : str, default="training"
        The bar's label.

    Examples
    --------
    >>> from rimclf.classifier import QSMRimNetClassifier
    >>> net = QSMRimNetClassifier(verbose=1)      # bar and summary line; verbose=2 adds the epoch table
    """

    def __init__(self, desc: str = "training") -> None:
        self.desc = desc

    def initialize(self):
        self.bar_ = None
        self.started_ = None
        self.n_samples_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs) -> None:
        self.started_ = time.perf_counter()
        self.n_samples_ = None if y is None else len(y)
        self.bar_ = None
        if net.verbose >= 1 and _is_terminal(sys.stderr):
            from tqdm.auto import tqdm

            self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch", file=sys.stderr, leave=False,
                             dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs) -> None:
        if self.bar_ is not None:
            loss = net.history[-1].get("train_loss")
            if loss is not None:
                self.bar_.set_postfix_str(f"train loss {loss:.4f}", refresh=False)
            self.bar_.update(1)

    def on_train_end(self, net, **kwargs) -> None:
        if self.bar_ is not None:
            self.bar_.close()
            self.bar_ = None
        if net.verbose >= 1:
            print(self.summary(net), flush=True)

    def summary(self, net) -> str:
        """The summary line of the net's last training."""
        history = net.history
        n_epochs = len(history)
        seconds = time.perf_counter() - self.started_ if self.started_ is not None else float("nan")
        on = f" on {self.n_samples_} lesions" if self.n_samples_ is not None else ""
        text = f"trained {n_epochs} epoch{'s' if n_epochs != 1 else ''}{on} in {seconds:.1f} s"
        losses = [f"{name.replace('_', ' ')} {history[-1][name]:.4f}"
                  for name in ("train_loss", "valid_loss") if n_epochs and name in history[-1]]
        return text + (": " + ", ".join(losses) if losses else "")
