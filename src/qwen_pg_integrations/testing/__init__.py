"""Testing helpers: a local DashScope emulator and pytest fixtures (public API)."""
