"""The matching service as a real process, with its clock read from a file.

`python -m clocked_matching` runs exactly what `python -m techbridge_matching` runs, except
that `build_spec` gets a clock that adds the offset (seconds) written in
$E2E_CLOCK_OFFSET_FILE to the real time. The service's own clock seam (`build_spec(clock=)`,
read by every deal route) is the one it offers for moving through public-notice periods; the
end-to-end tests use it to let a notice run without waiting fifteen days.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from techbridge_matching.main import build_spec
from techbridge_shared.envelope import utcnow
from techbridge_shared.service import run_service

OFFSET_FILE = Path(os.environ["E2E_CLOCK_OFFSET_FILE"])


def offset_clock() -> datetime:
    try:
        offset = float(OFFSET_FILE.read_text().strip() or 0)
    except FileNotFoundError:
        offset = 0.0
    return utcnow() + timedelta(seconds=offset)


def build_clocked_spec():
    return build_spec(clock=offset_clock)


if __name__ == "__main__":
    run_service(build_clocked_spec)
