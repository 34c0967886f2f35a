import sys

from experiments.tables import main

sys.exit(main())
