"""The ``churnwatch`` command line (:mod:`streams.cli.main`) and its subcommands."""
