"""Model files, importable from here as before: they live in :mod:`rimclf.model_files`."""

from rimclf.errors import ModelVersionWarning
from rimclf.model_files import FORMAT, FORMAT_VERSION, load_model, save_model

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelVersionWarning", "load_model", "save_model"]
