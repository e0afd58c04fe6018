"""`offpilot bench replay`: type real files into the real server as an editor would.

One module per concern: `session` types the files and collects what the user waited for and
the server's trace records, `load` keeps cores busy (`--load N`), `summary` turns the figures
into the report, `cli` is the command.
"""

from offpilot.bench.replay.cli import add_parser

__all__ = ["add_parser"]
