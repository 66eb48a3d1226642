"""The running proxy: the aiohttp application and its handlers (:mod:`.app`), the stage runner
(:mod:`.pipeline`), the process runner (:mod:`.runner`), in-process serving for smoke and replay
(:mod:`.inprocess`), and what the server exposes about itself (:mod:`.metrics`, :mod:`.events`)."""
