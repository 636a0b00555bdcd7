"""``python -m qwen_pg_integrations.cli``: the same as the ``qwen-pg`` command."""

import sys

from . import main

sys.exit(main())
