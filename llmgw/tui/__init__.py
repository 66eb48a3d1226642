"""``llmgw tail``: a live terminal view of the requests flowing through a running ``llmgw serve``.

Modules: :mod:`.source` (the :class:`~.source.RecordSource` protocol, :class:`~.source.Status`, a fixture source),
:mod:`.http_source` (the ``GET /admin/events`` client), :mod:`.feed` (the bounded, filterable, pausable model),
:mod:`.render` (cells and detail text from a record), :mod:`.redact` (masking secrets in bodies),
:mod:`.table` and :mod:`.detail` (the widgets) and :mod:`.app` (the Textual application and its factory).
Importing this package imports nothing heavy; :mod:`.app` needs Textual.
"""
