import sys

from batchsvc.cli import main

sys.exit(main())
