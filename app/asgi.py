"""ASGI entry point for uvicorn (`keyscope serve` and `uvicorn keyscope.app.asgi:app`).

A configuration error ends the process with one line on stderr and exit code 2 (the same as
the `keyscope` command), not a traceback through uvicorn's importer.
"""

import sys

from keyscope.app.errors import ConfigurationError
from keyscope.app.main import create_app

try:
    app = create_app()
except ConfigurationError as exc:
    print(f"keyscope: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)
