"""llmscope: record every LLM call, cluster what people ask, find drift and thumbs-down hotspots.

This package (the repository's ``llmscope/`` folder) holds what the collector, the analysis and
the dashboard share: settings (``llmscope.config``), the store's schema and engine
(``llmscope.db``), the public record shapes (``llmscope.schema``) and the CLI.
"""

__version__ = "0.1.0"
