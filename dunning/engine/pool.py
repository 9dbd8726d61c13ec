"""Rendering messages in worker processes, so that a big run uses every core.

Rendering (Babel formatting and two template renders per message) is most of a run's
CPU time and needs no database, so with ``DUNNING["RENDER_PROCESSES"] = N`` (N > 1) a run
hands each batch's messages to N forked workers (by default one per core, at most 4) and meanwhile claims and records the next
batch. The workers inherit the run (its policies and templates) at fork time; they never
touch the database, and they leave with ``os._exit`` so the parent's connections are left
alone. Where ``fork`` is not available the run renders in its own process, as with N = 1.

A render stops itself at ``RENDER_TIME_LIMIT`` (dunning.sandbox checks the deadline as the
template renders). Should one ever be stuck where no check runs, a watchdog in the run's
process kills the worker once its message has taken :func:`hard_limit` seconds: that
message fails with its reason, the worker pool is started afresh, and the other messages
of the chunk are rendered again by the new workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from django.utils.translation import gettext as _

from ..sandbox import format_seconds, render_time_limit

logger = logging.getLogger("dunning.run")

def default_processes():
    """``RENDER_PROCESSES`` when unset: one worker per core, at most 4 (1 on one core)."""
    return max(1, min(os.cpu_count() or 1, 4))


def hard_limit():
    """Seconds after which the watchdog takes a worker's render for stuck: well past the
    point where the render would have stopped itself."""
    return render_time_limit() * 3 + 1


# The run the workers render for; set in the parent just before the workers are forked.
_run = None
# What each chunk's worker is doing, in memory shared with the workers: per slot, the
# worker's pid, the index of the message it renders and when it started it (0: idle).
_progress = None
FIELDS = 3


def _render(slot, items):
    base = slot * FIELDS
    _progress[base] = os.getpid()
    rendered = []
    for index, item in enumerate(items):
        _progress[base + 1] = index
        _progress[base + 2] = time.monotonic()
        rendered.append(_run.render_item(item))
    _progress[base + 2] = 0.0
    return rendered


class Chunk:
    __slots__ = ("future", "slot", "items", "generation", "killed")

    def __init__(self, future, slot, items, generation):
        self.future, self.slot, self.items = future, slot, items
        self.generation = generation  # of the workers it was given to
        self.killed = None  # (index of the stuck message, reason) once its worker is killed


class RenderPool:
    def __init__(self, run, processes):
        global _run, _progress
        _run = run
        self.processes = processes
        # Chunks in flight: at most two batches' (one rendering, one being sent).
        self.slots = 4 * processes
        _progress = multiprocessing.get_context("fork").RawArray("d", self.slots * FIELDS)
        self._next_slot = 0
        self.generation = 0  # how often the workers were replaced
        self.executor = self._executor()

    def _executor(self):
        return ProcessPoolExecutor(
            max_workers=self.processes, mp_context=multiprocessing.get_context("fork")
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

    def _submit(self, items):
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.slots
        base = slot * FIELDS
        _progress[base : base + FIELDS] = [0.0] * FIELDS
        return Chunk(self.executor.submit(_render, slot, items), slot, items, self.generation)

    def submit(self, items):
        """Split ``items`` over the workers; returns the chunks, in order."""
        size = max(1, -(-len(items) // self.processes))
        return [self._submit(items[i : i + size]) for i in range(0, len(items), size)]

    def results(self, chunks):
        rendered = []
        for chunk in chunks:
            rendered.extend(self._result(chunk))
        return rendered

    def _result(self, chunk):
        """The chunk's renderings. A message stuck past :func:`hard_limit` fails (its
        worker is killed, the workers are replaced) and the rest of the chunk is rendered
        again by the new workers, as are the chunks the old workers had not finished."""
        original, positions, out = chunk.items, list(range(len(chunk.items))), {}
        while True:
            try:
                rendered = self._wait(chunk)
            except BrokenProcessPool:
                if chunk.killed is not None:
                    stuck, reason = chunk.killed
                    out[positions.pop(stuck)] = reason
                    self._replace_workers()
                elif chunk.generation == self.generation:
                    raise  # a worker died of something else: the run renders in-process
                if not positions:
                    break
                chunk = self._submit([original[i] for i in positions])
                continue
            out.update(zip(positions, rendered, strict=True))
            break
        return [out[i] for i in range(len(original))]

    def _replace_workers(self):
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.generation += 1
        self.executor = self._executor()

    def _wait(self, chunk):
        while True:
            try:
                return chunk.future.result(timeout=0.25)
            except FutureTimeout:
                self._watch(chunk)

    def _watch(self, chunk):
        base = chunk.slot * FIELDS
        pid, index, started = _progress[base : base + FIELDS]
        limit = hard_limit()
        if not started or time.monotonic() - started < limit or chunk.killed is not None:
            return
        reason = _("the template took longer than %(seconds)s s to render; its render "
                   "was stopped") % {"seconds": format_seconds(limit)}
        chunk.killed = (int(index), reason)
        logger.error("A render worker (pid %d) was stuck for %s s; killed", int(pid), limit)
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass

    def close(self):
        self.executor.shutdown(wait=True, cancel_futures=True)
