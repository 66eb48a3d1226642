"""The server process tunes the cyclic GC once it is up (llmgw.proxy.runner.tune_gc)."""

from __future__ import annotations

import gc

from llmgw.proxy.runner import GC_GEN0_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 1000      # modules, classes and the like: never scanned again
        assert gc.isenabled()                    # cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
