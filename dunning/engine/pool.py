"""Rendering messages in worker processes, so that a big run uses every core.

Rendering (Babel formatting and two template renders per message) is most of a run's
CPU time and needs no database, so with ``DUNNING["RENDER_PROCESSES"] = N`` (N > 1) a run
hands each batch's messages to N forked workers (by default one per core, at most 4) and meanwhile claims and records the next
batch. The workers inherit the run (its policies and templates) at fork time; they never
touch the database, and they leave with ``os._exit`` so the parent's connections are left
alone. Where ``fork`` is not available the run renders in its own process, as with N = 1.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

logger = logging.getLogger("dunning.run")

def default_processes():
    """``RENDER_PROCESSES`` when unset: one worker per core, at most 4 (1 on one core)."""
    return max(1, min(os.cpu_count() or 1, 4))


# The run the workers render for; set in the parent just before the workers are forked.
_run = None


def _render(items):
    return [_run.render_item(item) for item in items]


class RenderPool:
    def __init__(self, run, processes):
        global _run
        _run = run
        self.processes = processes
        self.executor = ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("fork")
        )

    @classmethod
    def start(cls, run, processes):
        """A pool, or None when one is not wanted or not possible here: one process asked
        for, no ``fork`` on this platform, or a daemonic process (a django-q2 worker, say),
        which may not have children."""
        if (
            processes < 2
            or "fork" not in multiprocessing.get_all_start_methods()
            or multiprocessing.current_process().daemon
        ):
            return None
        try:
            return cls(run, processes)
        except Exception:  # noqa: BLE001 - rendering in-process is always possible
            logger.exception("Could not start the render pool; rendering in-process")
            return None

    def submit(self, items):
        """Split ``items`` over the workers; returns the futures, in order."""
        size = max(1, -(-len(items) // self.processes))
        return [self.executor.submit(_render, items[i : i + size]) for i in range(0, len(items), size)]

    @staticmethod
    def results(futures):
        rendered = []
        for future in futures:
            rendered.extend(future.result())
        return rendered

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)
