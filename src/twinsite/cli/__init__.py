"""The ``twinsite`` command line: one module per subcommand, wired together in :mod:`twinsite.cli.main`."""
