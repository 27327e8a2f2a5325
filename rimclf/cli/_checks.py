"""Every option checked before the first slow step, with the library's own checks.

:func:`check_options` runs first in each subcommand's ``run``: the output location against the
command's inputs (:func:`rimclf._atomic.check_output_location`: never an input, never the
current folder), the model settings (:func:`rimclf._validation.check_model_config`, with the
size limits), the decision threshold, the device, the job count. A
:class:`~rimclf.errors.ParameterError` from these names the option as it is typed
(``--epochs: max_epochs=-1 is not valid; it must be ...``).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Mapping

#: ModelConfig fields whose option is not ``--<field with dashes>``
_OPTION_OF = {"max_epochs": "--epochs", "n_jobs": "-j/--jobs", "n_trials": "--trials", "n_workers": "--workers",
              "n_folds": "--folds"}


@contextlib.contextmanager
def naming_options(args: argparse.Namespace) -> Iterator[None]:
    """A :class:`~rimclf.errors.ParameterError` about one of ``args``' settings, raised inside the
    block, names the option as typed: ``--epochs: max_epochs=-1 is not valid; ...``."""
    from rimclf.errors import ParameterError

    try:
        yield
    except ParameterError as exc:
        text = str(exc)
        name = text.split("=", 1)[0] if "=" in text else ""
        if name in _OPTION_OF or (name.isidentifier() and name in vars(args) and not name.startswith("_")):
            raise ParameterError(f"{_OPTION_OF.get(name, '--' + name.replace('_', '-'))}: {text}") from None
        raise


def check_options(args: argparse.Namespace, inputs: Mapping[str, object] | None = None, *, out: bool = True) -> None:
    """Check the parsed options of a subcommand before any work (see the module docstring).

    What the command reads is found in ``args`` as the library finds it in a function's
    arguments (:func:`rimclf._atomic.known_inputs`: ``cohort``, ``model``, ``--qsm/--flair/--mask``,
    ``--cache``), plus ``inputs`` (``{what: path or paths}``); ``out``: whether the command has
    ``-o/--out``.
    """
    from rimclf._atomic import check_output_location, known_inputs
    from rimclf._validation import check_int, check_model_config, check_n_jobs, check_threshold_settings

    arguments = dict(vars(args))
    if not isinstance(arguments.get("model"), str) or getattr(args, "command", None) != "predict":
        arguments.pop("model", None)  # `tune --model` names a kind of model, not a folder
    inputs = {**known_inputs(arguments), **(inputs or {})}
    with naming_options(args):
        if out:
            check_output_location(args.out, inputs, name="-o")
        if hasattr(args, "max_epochs") or hasattr(args, "patch_shape"):
            from rimclf.cli._options import model_config

            check_model_config(model_config(args))
        if getattr(args, "threshold", None) is not None:
            check_threshold_settings(args.target_specificity, args.threshold_cv, args.threshold)
        if hasattr(args, "jobs"):
            check_n_jobs(args.jobs)
        for name, option, low in (("n_trials", "trials", 1), ("n_workers", "workers", 1), ("n_folds", "folds", 2)):
            if hasattr(args, option):
                check_int(getattr(args, option), name, min=low)
        if getattr(args, "device", None) is not None:
            from rimclf.classifier.device import resolve_device

            resolve_device(args.device)

