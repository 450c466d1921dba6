"""``python -m llmscope`` is the ``llmscope`` command."""

import sys

from llmscope.cli import main

sys.exit(main())
