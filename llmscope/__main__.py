"""``python -m llmscope`` is the ``llmscope`` command."""

import sys

from llmscope.app.cli import main

sys.exit(main())
