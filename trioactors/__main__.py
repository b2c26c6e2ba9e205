"""`python -m trioactors` is the `trioactors` command."""

import sys

from .cli import main

sys.exit(main())
