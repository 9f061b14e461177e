"""Torch side: chat with a loaded model (the web process reaches it through engine.facade)."""
