"""`python -m nn` is the `tensorgrad` command."""

import sys

from nn.cli import main

sys.exit(main())
