"""OCOP bot wiring: settings, application factory, channel adapters, CLI."""
