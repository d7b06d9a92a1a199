"""The sandbox: the real bot against the built-in emulators, and a web chat to try it in."""
