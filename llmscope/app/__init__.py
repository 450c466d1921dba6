"""The application above the parts: the ``llmscope`` command's assembler and the demo.

Only this package may import the collector, the analysis and the dashboard together; the base
(``llmscope``) and each part import none of it (``tests/test_architecture.py`` checks).
"""
