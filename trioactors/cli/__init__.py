"""Subcommands of the `trioactors` command line, one module each."""
