"""``call``: the command line run in this process, as the CLI tests use it."""

from lrkit.cli import main


def call(capsys, *args):
    """``lrkit ARGS`` through ``main`` in this process: (exit status, stdout, stderr)."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err
