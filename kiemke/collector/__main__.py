"""`python -m kiemke.collector` = `kiemke-collector`."""

import sys

from kiemke.collector.cli import main

sys.exit(main())
