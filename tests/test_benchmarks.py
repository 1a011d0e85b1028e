"""The GPU benchmark's code runs end to end on the CPU, so it works when a GPU is at hand."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--quick"]
    command += ["--seeds", "2", "--work-dir", str(tmp_path / "work"), "--json", str(out)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    result = json.loads(out.read_text())
    assert {row["encoder"] for row in result["extraction"]} == {"resnet18", "clip"}
    for row in result["extraction"]:
        assert row["max |device − cpu| / max |cpu|"] == 0.0
        assert row["workers"] == 2 and row["image side"] == 48
        assert row["images/s end to end"] > 0 and row["images/s forward only"] > 0
    assert [row["condition"] for row in result["training"]] == [
        "concat n=256",
        "xattn_txt2img n=256",
    ]
    for row in result["training"]:
        assert row["ratio"] > 0 and math.isfinite(row["s per seed-epoch vmapped"])
        # With --device cpu the device run and the CPU reference are the same computation.
        assert row["accuracy on device"] == row["accuracy on cpu"]


@pytest.mark.slow
def test_study_gpu_benchmark_runs_on_cpu(tmp_path):
    out = tmp_path / "study_gpu.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "study_gpu.py"), "--device", "cpu"]
    command += ["--quick", "--jobs-per-device", "1,2", "--work-dir", str(tmp_path / "work")]
    subprocess.run(command + ["--json", str(out)], check=True, cwd=ROOT, capture_output=True)
    result = json.loads(out.read_text())
    assert [row["jobs per device"] for row in result["grid"]] == [1, 2]
    for row in result["grid"]:
        # the quick grid: concat and cross-attention on clip@raw, one scale, two seeds
        assert row["jobs"] == 2 and 0 < row["seed-epochs"] <= 2 * 2 * 3
        assert row["wall s"] > 0 and row["utilisation %"] is None  # nvidia-smi: CUDA only
        # a seed's numbers do not depend on how many jobs share the device
        assert row["max |Δ test accuracy|"] == 0.0
    assert [row["job"] for row in result["per-run"]] == [
        "clip@raw concat n=512",
        "clip@raw xattn_txt2img n=512",
    ]
    assert all(row["ratio"] > 0 for row in result["per-run"])
