"""The response cache: exact and semantic lookups of earlier answers (see docs/cache.md).

Modules: :mod:`.keys` (what partitions the cache and what makes two requests the same), :mod:`.store`
(the diskcache store and the in-memory vector index), :mod:`.embed` (embedding models), :mod:`.guard` (the
difference guard that keeps semantic hits precise), :mod:`.config` (the ``[cache]`` table).
"""
