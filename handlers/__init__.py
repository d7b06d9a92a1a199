"""Conversations and commands, written against channel-neutral events and replies."""
