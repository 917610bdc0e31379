import sys
from pathlib import Path

# The harness lives beside these tests, not in an installed package.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
