"""One module per ``swapcam`` sub-command: ``add_parser(subparsers)`` and a handler returning an exit status."""
