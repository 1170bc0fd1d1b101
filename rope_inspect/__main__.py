"""Allow `python -m rope_inspect`."""

from rope_inspect.cli import main

raise SystemExit(main())
