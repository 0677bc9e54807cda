"""``python -m fedtts.app.cli``: the ``fedtts`` command."""

from fedtts.app.cli.main import main

raise SystemExit(main())
