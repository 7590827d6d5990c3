"""The cost model, checked against figures computed by hand."""

from __future__ import annotations

import math

import pytest

from engine.errors import ContractError
from engine.sizing.model import (
    FULL_VCPU_MB,
    ModelParams,
    Prices,
    Workload,
    fit_line,
    lambda_threads,
    load_prices,
    predict,
    recommend,
    vcpu_share,
)

MiB = 1024**2
PRICES = Prices("arm64", gb_second=0.0000133334, request=0.0000002, region="us-east-1",
                recorded="test", source="test")


def test_full_vcpu_matches_the_lambda_transform_thread_rule() -> None:
    from engine.config import FULL_VCPU_MB as HANDLER_FULL_VCPU

    assert FULL_VCPU_MB == HANDLER_FULL_VCPU == 1769
    assert lambda_threads(1768) == 1 and lambda_threads(1769) == 2


@pytest.mark.parametrize(("memory", "threads", "share"), [
    (1769, 1, 1.0), (884.5, 1, 0.5), (3538, 1, 1.0), (3538, 2, 2.0), (10240, 8, 5.788580),
    (10240, 2, 2.0),
])
def test_vcpu_share_is_memory_over_1769_capped_by_threads(memory: float, threads: int,
                                                          share: float) -> None:
    assert vcpu_share(memory, threads) == pytest.approx(share, rel=1e-6)


def test_predict_by_hand() -> None:
    # 3.538 CPU s at 1769 MB (1 vCPU) = 3.538 s; 180 MB of S3 bytes at 90 MB/s = 2 s.
    work = Workload(cpu_s=3.538, io_bytes=180_000_000, peak_rss_bytes=100 * MiB, threads=1)
    p = predict(work, 1769, PRICES, ModelParams())
    assert p.duration_s == pytest.approx(5.538)
    assert p.billed_ms == 5538
    assert p.cost == pytest.approx(0.0000133334 * 1769 / 1024 * 5.538 + 0.0000002)
    assert p.required_mb == pytest.approx(100 * 1.25 + 30)
    assert p.fits_memory and p.fits_time


def test_predict_at_half_a_vcpu_doubles_cpu_time_and_bills_whole_milliseconds() -> None:
    work = Workload(cpu_s=1.0001, io_bytes=0, peak_rss_bytes=10 * MiB, threads=1)
    p = predict(work, 884.5, PRICES, ModelParams())
    assert p.duration_s == pytest.approx(2.0002)
    assert p.billed_ms == 2001  # rounded up to the millisecond


def test_memory_fit_uses_headroom_and_overhead() -> None:
    params = ModelParams(headroom=0.5, overhead_mb=20)
    work = Workload(cpu_s=0.1, io_bytes=0, peak_rss_bytes=156 * MiB)  # needs 156*1.5+20 = 254
    assert predict(work, 256, PRICES, params).fits_memory
    assert not predict(work, 253, PRICES, params).fits_memory


def test_time_fit_keeps_the_margin() -> None:
    params = ModelParams(timeout_s=100, timeout_margin=0.5)
    work = Workload(cpu_s=50.0, io_bytes=0, peak_rss_bytes=MiB)  # 50 s at 1769 MB
    assert predict(work, 1769, PRICES, params).fits_time
    assert not predict(work, 1700, PRICES, params).fits_time


def test_fit_line_is_exact_on_a_line_and_through_the_origin_for_one_point() -> None:
    fit = fit_line([(1, 5), (2, 7), (4, 11)])
    assert (fit.intercept, fit.slope) == pytest.approx((3, 2))
    assert fit.at(10) == pytest.approx(23)
    one = fit_line([(4, 2)])
    assert (one.intercept, one.slope) == (0.0, 0.5)
    with pytest.raises(ValueError):
        fit_line([])


def test_recommend_picks_the_cheapest_setting_that_fits_every_format() -> None:
    works = {1: [Workload(2.0, 0, 150 * MiB, "csv", 1), Workload(3.0, 0, 100 * MiB, "json", 1)]}
    rec = recommend("b", 10, works, PRICES, ModelParams(), memory_settings=(128, 256, 512, 1024))
    # csv needs 150*1.25+30 = 217.5 MB: 128 does not fit. CPU-bound cost is flat in memory
    # (duration halves as memory doubles) except the request price: 256 is cheapest.
    assert rec.memory_mb == 256
    assert rec.worst_format == "json"
    expected = 0.0000133334 * 256 / 1024 * math.ceil(3.0 / (256 / 1769) * 1000) / 1000 + 2e-7
    assert rec.cost == pytest.approx(expected)
    assert [c["fits"] for c in rec.candidates] == [False, True, True, True]


def test_recommend_uses_the_thread_count_lambda_runs_at_each_memory() -> None:
    works = {1: [Workload(1.0, 0, 100 * MiB, "csv", 1)],
             2: [Workload(1.2, 0, 400 * MiB, "csv", 2)]}
    rec = recommend("b", 10, works, PRICES, ModelParams(), memory_settings=(512, 2048))
    threads = {c["memory_mb"]: c["threads"] for c in rec.candidates}
    assert threads == {512: 1, 2048: 2}


def test_recommend_says_so_when_nothing_fits() -> None:
    works = {1: [Workload(1.0, 0, 9000 * MiB, "csv", 1)]}
    rec = recommend("b", 10, works, PRICES, ModelParams(), memory_settings=(128, 1024))
    assert rec.memory_mb is None and "no setting fits" in rec.reason


def test_prices_are_data_with_date_and_source_and_can_be_overridden() -> None:
    arm = load_prices("arm64")
    assert arm.gb_second == pytest.approx(0.0000133334)
    assert arm.recorded and "aws.amazon.com/lambda/pricing" in arm.source
    assert load_prices("x86_64").gb_second > arm.gb_second
    over = load_prices("arm64", gb_second=1.0)
    assert over.gb_second == 1.0 and over.source == "overridden"
    with pytest.raises(ContractError, match="architecture"):
        load_prices("sparc")
