from __future__ import annotations

import sys

from chat_cli.app import main

if __name__ == "__main__":
    sys.exit(main())
