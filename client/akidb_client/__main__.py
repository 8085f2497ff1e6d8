"""`python -m akidb_client`: the `akidb` command."""

import sys

from akidb_client.cli import main

sys.exit(main())
