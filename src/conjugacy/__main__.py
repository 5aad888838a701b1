"""``python -m conjugacy``: the same command line as the ``conjugacy`` script."""

from conjugacy._launch import main

main()
