import sys

from enliven.cli import main

sys.exit(main())
