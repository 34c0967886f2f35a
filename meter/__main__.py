import sys

from meter.cli import main

sys.exit(main())
