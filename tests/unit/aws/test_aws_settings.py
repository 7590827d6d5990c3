from __future__ import annotations

import pytest

from engine.aws import settings as s
from engine.aws.settings import Settings, SettingsError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.metadata_table is None
    assert settings.max_single_bytes == 500 * 10**6
    assert settings.range_bytes == 256 * 10**6
    assert settings.service_name == "chunkwise"


def test_reads_the_names_of_docs_pipeline() -> None:
    env = {
        "METADATA_TABLE": "t", "PROCESSED_BUCKET": "p", "DLQ_URL": "https://q",
        "CONTRACTS_URI": "s3://c/contracts/", "MAX_SINGLE_BYTES": "1GB", "RANGE_BYTES": "64MiB",
        "MIN_THROUGHPUT": "5MB", "POWERTOOLS_SERVICE_NAME": "svc",
        "POWERTOOLS_METRICS_NAMESPACE": "ns",
    }
    settings = Settings.from_env(env)
    assert (settings.metadata_table, settings.processed_bucket, settings.dlq_url) == (
        "t", "p", "https://q")
    assert settings.contracts_uri == "s3://c/contracts/"
    assert settings.max_single_bytes == 10**9
    assert settings.range_bytes == 64 * 2**20
    assert settings.min_throughput == 5 * 10**6
    assert (settings.service_name, settings.metrics_namespace) == ("svc", "ns")
    assert s.METADATA_TABLE == "METADATA_TABLE" and s.RANGE_BYTES == "RANGE_BYTES"


def test_explicit_arguments_beat_the_environment() -> None:
    settings = Settings.from_env({"METADATA_TABLE": "env", "RANGE_BYTES": "1MB"},
                                 metadata_table="arg", range_bytes=123)
    assert settings.metadata_table == "arg"
    assert settings.range_bytes == 123


def test_empty_variable_is_unset_and_bad_sizes_are_refused() -> None:
    assert Settings.from_env({"PROCESSED_BUCKET": ""}).processed_bucket is None
    with pytest.raises(SettingsError, match="MAX_SINGLE_BYTES"):
        Settings.from_env({"MAX_SINGLE_BYTES": "lots"})
    with pytest.raises(SettingsError, match="RANGE_BYTES must be positive"):
        Settings.from_env({"RANGE_BYTES": "0"})
    with pytest.raises(SettingsError, match="unknown"):
        Settings.from_env({}, bucket="x")


def test_require_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="DLQ_URL is not set"):
        Settings.from_env({}).require("dlq_url")
    assert Settings.from_env({"DLQ_URL": "u"}).require("dlq_url") == "u"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.range_bytes = 1  # type: ignore[misc]


def test_map_max_concurrency_is_a_positive_count() -> None:
    assert Settings.from_env({}).map_max_concurrency == s.DEFAULT_MAP_MAX_CONCURRENCY == 10
    assert Settings.from_env({"MAP_MAX_CONCURRENCY": "3"}).map_max_concurrency == 3
    with pytest.raises(SettingsError, match="MAP_MAX_CONCURRENCY: not a whole number"):
        Settings.from_env({"MAP_MAX_CONCURRENCY": "3MB"})
    with pytest.raises(SettingsError, match="MAP_MAX_CONCURRENCY must be positive"):
        Settings.from_env({"MAP_MAX_CONCURRENCY": "0"})
