"""llmscope: record every LLM call, cluster what people ask, find drift and thumbs-down hotspots.

The parts are its folders, in the order the data flows: ``llmscope.collector`` writes records,
``llmscope.analysis`` reads them and writes runs, ``llmscope.dashboard`` reads, and
``llmscope.app`` assembles them into the ``llmscope`` command. The modules beside them are what
the parts share: settings (``llmscope.config``), the store's schema and engine
(``llmscope.db``), the public record shapes (``llmscope.schema``) and the CLI helpers.
"""

__version__ = "0.1.0"
