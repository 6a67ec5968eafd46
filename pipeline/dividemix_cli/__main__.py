import sys

from dividemix_cli import main

sys.exit(main())
