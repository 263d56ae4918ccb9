"""python -m sar_core ..."""

import sys

from sar_core.cli import main

sys.exit(main())
