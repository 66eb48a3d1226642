"""Features of the command line around the proxy: ``llmgw replay`` (:mod:`.replay`), ``llmgw smoke``
(:mod:`.smoke`) and ``llmgw cost`` (:mod:`.report`). Each sends its traffic through the real pipeline or reads
the request log; none is on the proxy's request path."""
