"""llmscope's length limits: the light SDK owns them (``llmscope_sdk.limits``, which documents
each), so the wire shapes the SDK validates and the store's columns are sized by one definition."""

from llmscope_sdk.limits import *  # noqa: F403
from llmscope_sdk.limits import RECORD_COLUMNS as RECORD_COLUMNS
