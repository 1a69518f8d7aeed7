"""`python -m kiemke.collector` = `kiemke-collector`.

Running the package (not `-m kiemke.collector.cli`) keeps kiemke.collector.cli imported
once, so its exception classes are the same objects for every module that imports them.
"""

import sys

from kiemke.collector.cli import main

sys.exit(main())
