"""The response cache: exact and semantic lookups of earlier answers (see docs/cache.md).

Modules: :mod:`.keys` (what partitions the cache and what makes two requests the same), :mod:`.base` (the
entry and store types), :mod:`.store` (the diskcache store), :mod:`.redis_store` (the shared one),
:mod:`.index` (the in-memory vector index), :mod:`.embed` (embedding models), :mod:`.difference` (the difference
guard that keeps semantic hits precise), :mod:`.playback` (a cached answer as a reply or a stream),
:mod:`.config` (the ``[cache]`` table).
"""
