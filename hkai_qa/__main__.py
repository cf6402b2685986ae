"""`python -m hkai_qa` runs the command line."""

from hkai_qa.cli import main

main()
