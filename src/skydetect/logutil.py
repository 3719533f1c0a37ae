"""Logging for the workflow's script drivers (no Snakemake import here)."""

from __future__ import annotations

import logging
import sys


def setup_script_logging(log_path: str | None, name: str = "skydetect") -> logging.Logger:
    """Send logging (and uncaught warnings/tracebacks) of a script driver to its rule log.

    Call as ``log = setup_script_logging(snakemake.log[0])`` at the top of a script.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    logger = logging.getLogger(name)

    def _excepthook(exc_type, exc, tb):
        logger.error("failed", exc_info=(exc_type, exc, tb))

    sys.excepthook = _excepthook
    return logger
