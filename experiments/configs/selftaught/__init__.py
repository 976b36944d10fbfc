"""Configs of the self-taught family (tlax.selftaught)."""
