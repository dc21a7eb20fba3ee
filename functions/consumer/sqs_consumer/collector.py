"""Where the cyclic garbage collector is paused: work that makes many objects a collection would only
scan for nothing, because they live as long as the process or reference counting frees them.

- The function's init (``init_pause``, imported first by handler.py): with the collector on, the
  modules, classes, models and validators the init makes set off about forty collections, each scanning
  what is already loaded: a tenth of the cold start. Paused while they load, then frozen (``gc.freeze``:
  out of every later collection's scan, as they never become garbage) and the collector resumed.
- A client's creation (clients.py, on the first batch): botocore's modules, the session's handlers and
  the service model; paused, not frozen: the batch's own objects are alive meanwhile.
- The counting and the response past the commit floor (pipeline/settlement.py).
- ``load_and_freeze``: what the first invocation loads before any record is parsed (botocore and the
  DynamoDB model, when every batch claims its records), frozen like the init's: nothing of a batch is
  alive yet that could become cyclic garbage, only the event (decoded JSON, without cycles).

Only what the import itself left as cyclic garbage (a few hundred objects) is frozen with the rest
(docs/decisions/079-cold-start-without-collections.md).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Whether the init paused the collector, and has not resumed it yet.
_INIT = {"paused": False}


def pause_for_init() -> None:
    """Pause the collector until ``resume_after_init`` (nothing when it is off already)."""
    if gc.isenabled():
        gc.disable()
        _INIT["paused"] = True


def resume_after_init() -> None:
    """Freeze what the init made and resume the collector, when ``pause_for_init`` paused it."""
    if _INIT["paused"]:
        _INIT["paused"] = False
        gc.freeze()
        gc.enable()


def load_and_freeze(load: Callable[[], object]) -> None:
    """Run ``load`` without collections, then freeze what exists (call it only before a batch's objects)."""
    with paused():
        load()
    gc.freeze()


@contextmanager
def paused() -> Iterator[None]:
    """The block without collections, and the collector as it was after it: what the block made that
    became garbage goes in a later collection."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
