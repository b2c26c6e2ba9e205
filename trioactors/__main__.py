"""`python -m trioactors` is the `trioactors` command."""

import sys

from .cli.main import main

sys.exit(main())
