import sys
from pathlib import Path

# Test modules import the shared builders in valuation_helpers.py (pytest runs with importlib mode).
sys.path.insert(0, str(Path(__file__).resolve().parent))
