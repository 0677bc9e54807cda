"""``python -m fedtts …`` is the ``fedtts`` command."""

from fedtts.app.cli import main

raise SystemExit(main())
