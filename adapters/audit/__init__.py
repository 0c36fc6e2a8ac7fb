"""The audit chain on Redis, one module per concern so each can be read and changed on its own."""
