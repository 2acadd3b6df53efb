"""``python -m mirdl`` is the ``mirdl`` command."""
import sys

from mirdl.cli import main

sys.exit(main())
