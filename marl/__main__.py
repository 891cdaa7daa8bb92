"""`python -m marl` is the `marl` command."""

import sys

from marl.cli import main

sys.exit(main())
