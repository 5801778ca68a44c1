"""`python -m edgecam` runs the CLI."""

from .cli import main

main(prog_name="edgecam")
