"""pytest plugin (registered through the ``pytest11`` entry point): DashScope emulator fixtures."""
