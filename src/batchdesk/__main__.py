import sys

from batchdesk.cli import main

sys.exit(main())
