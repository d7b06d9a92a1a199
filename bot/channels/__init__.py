"""Channel adapters: turn a messenger's updates into events and replies into messages."""
