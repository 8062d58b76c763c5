"""``python -m tvm_morello`` is the ``tvm-morello`` command."""
import sys

from .cli import main

sys.exit(main())
