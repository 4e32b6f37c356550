"""Test support: real servers on 127.0.0.1 (uvicorn for host apps, the LLM simulator upstream)."""
