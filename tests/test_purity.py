"""models/ must stay pure: no Kafka, Faust or project modules outside itself."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"faust", "aiokafka", "kafka", "mode", "streams", "extraction_watch"}


def test_importing_models_loads_no_kafka_side_module():
    code = (
        "import sys, models, models.engine, models.contract;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    assert "models" in loaded and "river" in loaded
    assert not FORBIDDEN & set(loaded), FORBIDDEN & set(loaded)


def test_models_source_never_reads_the_clock():
    offenders = []
    for path in (ROOT / "models").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.strip()
            if code.startswith((">>>", "...")):
                continue  # doctest examples may seed their own randomness
            for needle in ("time.time(", "datetime.now(", "datetime.utcnow(", "time.monotonic(",
                           "perf_counter(", "import random", "from random", "import time"):
                if needle in code:
                    offenders.append(f"{path.name}:{number}: {needle}")
    assert offenders == []
