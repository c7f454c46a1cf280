"""`python -m kubetune.cli`: the `kubetune` command."""

import sys

from . import main

sys.exit(main())
