"""The `hallgate` command: serve, run the billing simulator, act as a terminal, administer.

Each group of subcommands lives in its own module; gateway/cli/main.py puts them together. This
package file stays empty, so the subcommand modules can import their shared helpers
(gateway/cli/connect.py) without importing the whole command back.
"""
