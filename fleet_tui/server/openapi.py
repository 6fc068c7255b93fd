"""The gateway's OpenAPI document, kept in the repo as `openapi.json` beside this file.

`python -m fleet_tui.server.openapi` rewrites it from the app; a test checks that the document
the server serves at `/api/fleet/v1/openapi.json` equals the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OPENAPI_FILE = Path(__file__).with_name("openapi.json")


def document() -> dict[str, Any]:
    """The OpenAPI document of the app (no database is touched)."""
    from fleet_tui.server.app import create_app

    return create_app("postgresql:///unused").openapi()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    OPENAPI_FILE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OPENAPI_FILE}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
