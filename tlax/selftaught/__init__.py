"""Self-taught learning and self-taught clustering."""
