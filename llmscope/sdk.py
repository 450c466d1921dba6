"""The Python SDK under its first name: ``llmscope.sdk`` re-exports ``llmscope_sdk``.

The SDK lives in its own light distribution (``sdk/``, ``pip install ./sdk``, imported as
``llmscope_sdk``), so an app that only sends records installs neither the server nor the
analysis stack. This module keeps ``from llmscope.sdk import Client, configure_tracing``
working, with the same objects.
"""

from llmscope_sdk import Client, configure_tracing

__all__ = ["Client", "configure_tracing"]
