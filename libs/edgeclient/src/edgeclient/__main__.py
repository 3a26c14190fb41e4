"""``python -m edgeclient`` is ``edgectl``."""

from __future__ import annotations

from edgeclient.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
