"""``python -m conjugacy``: the same command line as the ``conjugacy`` script."""

from conjugacy.cli import main

main()
