"""Upstream model providers: the OpenAI-compatible client and the built-in LLM simulator.

Nothing is imported here on purpose: ``import tidegate`` must stay fast, and the simulator (aiohttp
server, numpy) is only loaded by the tests, benchmarks and ``tidegate simulate`` that use it.
"""
