"""``python -m action``: the container's entrypoint."""

import sys

from action import main

sys.exit(main())
