"""The development environment of callfilter: not deployed, not on Airflow's path.

`devenv` (embedded PostgreSQL, sample data, the simulator process, a local Airflow's settings) and
`simulator` (the vendor on a laptop: `python -m callfilter_dev.simulator`) serve the demo, the tests
and the benchmarks. The deployable code is the `callfilter` package under plugins/; this package puts
plugins/ on sys.path, as every Airflow component has it, so `callfilter` imports the same way here.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"

if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
