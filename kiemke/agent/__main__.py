"""`python -m kiemke.agent` = `kiemke-agent` (one import of kiemke.agent.cli)."""

import sys

from kiemke.agent.cli import main

sys.exit(main())
