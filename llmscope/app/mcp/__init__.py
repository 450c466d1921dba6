"""The MCP server: llmscope's reads (findings, clusters, records, experiments) as read-only
tools for an engineer's own agent, on stdio (``llmscope mcp``) and at ``/mcp`` of
``llmscope serve``."""
