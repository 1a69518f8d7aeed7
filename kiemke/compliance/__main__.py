"""python -m kiemke.compliance check|test [PATH ...]"""

import sys

from .cli import main

sys.exit(main())
