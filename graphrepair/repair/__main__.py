"""``python -m graphrepair.repair``: see :mod:`graphrepair.repair.cli`."""

from graphrepair.repair.cli import main

raise SystemExit(main())
