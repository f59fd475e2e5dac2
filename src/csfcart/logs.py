"""Logging for workflow scripts: everything, warnings included, goes to the rule's log."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager


def setup(path: str, outputs=(), *, threads: int | None = None) -> None:
    """Send logging, warnings and stderr of a rule's script to ``path``; when the script
    ends without error, record checksums of its ``outputs`` (:mod:`csfcart.integrity`).

    ``threads`` (the rule's ``threads``, as Snakemake granted them) caps the native thread
    pools (:func:`limit_threads`).
    """
    if threads is not None:
        limit_threads(threads)
    handle = open(path, "a", buffering=1)
    terminal = sys.stderr
    sys.stderr = handle
    failed = []

    def report(kind, value, tb):
        # the full traceback goes to the log; the terminal gets the message and where to look
        import traceback

        failed.append(kind)
        traceback.print_exception(kind, value, tb, file=handle)
        print(f"error: {value}\n(full log: {path})", file=terminal)

    sys.excepthook = report
    if outputs:
        import atexit

        from csfcart.integrity import record

        atexit.register(lambda: None if failed else record(list(outputs)))
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    # rule scripts draw figures to files: the non-interactive backend, chosen here (not at
    # import of the package, so that notebooks keep theirs)
    import matplotlib

    matplotlib.use("Agg")


def limit_threads(threads: int) -> None:
    """Cap OpenMP, BLAS and numba thread pools at ``threads``.

    Snakemake runs jobs side by side on the cores it was given; a job whose libraries start a
    thread per core (scikit-learn's gradient boosting, BLAS) then competes with its neighbours,
    and OpenMP's waiting threads slow every job several-fold. Pools loaded later read the
    environment; those already loaded are capped through threadpoolctl.
    """
    threads = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = threads
    if "numba" in sys.modules:  # numba reads its setting once, at import
        import numba

        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = threads
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(threads))


@contextmanager
def step(name: str, logger: logging.Logger | None = None):
    """Log the start and the duration of a long step (``with step("leiden clustering"):``)."""
    log = logger or logging.getLogger("csfcart")
    log.info("%s ...", name)
    start = time.perf_counter()
    yield
    log.info("%s: done in %.1f s", name, time.perf_counter() - start)
