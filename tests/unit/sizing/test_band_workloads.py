"""From measured children to a band's workload: warm CPU, INIT, the first call, the peaks."""

from __future__ import annotations

import pytest

from engine.config import DEFAULT_BLOCK_SIZE, MiB
from engine.sizing.measure import Measurement
from engine.sizing.model import ModelParams, Prices, predict, recommend
from engine.sizing.sweep import SweepConfig, band_workloads, fit_measurements, value_at

PRICES = Prices("arm64", gb_second=0.0000133334, request=0.0000002, region="us-east-1",
                recorded="test", source="test")


def _m(size: int, *, process_cpu: float, init: float, cold: float, warm: float,
       cold_peak: int, warm_peak: int) -> Measurement:
    return Measurement(
        src="x", format="csv", size_bytes=size, block_size=DEFAULT_BLOCK_SIZE, threads=1,
        contract=None, exit_code=0, killed=False, peak_rss_bytes=max(cold_peak, warm_peak),
        cpu_s=process_cpu, wall_s=1.0, init_cpu_s=init, init_peak_rss_bytes=60 * MiB,
        cold_cpu_s=cold, cold_peak_rss_bytes=cold_peak, warm_cpu_s=warm,
        warm_baseline_rss_bytes=90 * MiB, warm_peak_rss_bytes=warm_peak,
        phases_done=["init", "cold", "warmup", "warm"],
        report={"bytes_in": size, "bytes_out": size * 3 // 10},
    )


# A 1 MB and a 10 MB CSV: the process spends 0.35 and 0.45 CPU s, of which INIT 0.2, the cold
# conversion 0.1 and 0.18, the warm one 0.03 and 0.1.
MEASURED = [
    _m(10**6, process_cpu=0.35, init=0.21, cold=0.10, warm=0.03, cold_peak=106 * MiB,
       warm_peak=105 * MiB),
    _m(10**7, process_cpu=0.45, init=0.19, cold=0.18, warm=0.10, cold_peak=118 * MiB,
       warm_peak=121 * MiB),
]


def test_a_band_is_priced_on_the_warm_conversion_not_the_process() -> None:
    cfg = SweepConfig(sizes=(10**6, 10**7))
    (work,) = band_workloads(MEASURED, 10**6, cfg)[1]
    assert work.cpu_s == 0.03  # the 1 MB file's warm conversion, not its process's 0.35 s
    assert work.init_cpu_s == pytest.approx(0.20)  # median over the sizes
    assert work.first_call_cpu_s == pytest.approx(0.07)  # cold - warm, within the band
    assert work.peak_rss_bytes == 106 * MiB  # the larger of the cold and warm peaks
    assert work.io_bytes == 1_300_000
    # Issue 20's bar: the warm duration at 192 MB within 30 % of warm CPU / 0.108 + S3 time.
    p = predict(work, 192, PRICES, ModelParams())
    measured = 0.03 / 0.108 + 1_300_000 / 90e6
    assert abs(p.duration_s - measured) / measured < 0.30
    (ten,) = band_workloads(MEASURED, 10**7, cfg)[1]
    assert ten.cpu_s == 0.10 and ten.peak_rss_bytes == 121 * MiB
    assert ten.first_call_cpu_s == pytest.approx((0.07 + 0.08) / 2)


def test_between_measured_sizes_the_warm_cpu_is_interpolated() -> None:
    (work,) = band_workloads(MEASURED, 5_500_000, SweepConfig())[1]
    assert work.cpu_s == pytest.approx(0.03 + 0.07 * 0.5)
    assert value_at([(1, 2.0), (1, 4.0), (3, 5.0)], 2) == pytest.approx(4.0)  # repeats averaged


def test_the_fits_report_warm_cpu_per_gb_init_and_the_first_call() -> None:
    fits, _ = fit_measurements(MEASURED, SweepConfig())
    (fit,) = fits
    assert fit["cpu_s_per_gb"] == pytest.approx((0.10 - 0.03) / 9e6 * 1e9, abs=1e-3)  # rounded
    assert fit["init_cpu_s"] == pytest.approx(0.2)
    assert fit["first_call_cpu_s"] == pytest.approx(0.075)
    assert fit["rss_max_mib"] == 121


def test_the_recommendation_says_what_cold_starts_cost_at_the_stated_share() -> None:
    cfg = SweepConfig(sizes=(10**6, 10**7))
    rec = recommend("<= 1 MB", 10**6, band_workloads(MEASURED, 10**6, cfg), PRICES,
                    ModelParams(cold_share=0.01), memory_settings=(128, 192, 256))
    assert rec.memory_mb == 192  # needs 106 * 1.25 + 30 = 162.5 MB
    assert rec.cold_share == 0.01
    assert rec.duration_s < 0.35 < rec.cold_duration_s
    assert 0 < rec.cold_cost_share < 0.2
