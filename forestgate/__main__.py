"""`python -m forestgate` runs the command line."""

from forestgate.cli import main

raise SystemExit(main())
