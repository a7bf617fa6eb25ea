"""The pure parsers of runtime/cgroups.py, on texts as the kernel writes them."""

import pytest

from base.errors import InvalidArgument
from runtime.cgroups import (
    UNLIMITED,
    check_cgroups_path,
    parse_blkio,
    parse_io_stat,
    parse_keyed,
    parse_limit,
)


def test_keyed_file_skips_lines_that_are_not_key_integer() -> None:
    text = "nr_periods 4\nnr_throttled 1\nthrottled_time 2000\nweird\nname value\n"
    assert parse_keyed(text) == {"nr_periods": 4, "nr_throttled": 1, "throttled_time": 2000}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("max\n", UNLIMITED),
        ("9223372036854771712\n", UNLIMITED),  # v1 PAGE_COUNTER_MAX with 4 KiB pages
        ("33554432\n", 33554432),
        ("0\n", 0),
    ],
)
def test_limit(text: str, value: int) -> None:
    assert parse_limit(text) == value


def test_blkio_sums_reads_and_writes_over_devices() -> None:
    text = (
        "254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 12288\n254:0 Async 0\n"
        "254:0 Discard 0\n254:0 Total 12288\n"
        "253:0 Read 1\n253:0 Write 2\n253:0 Total 3\nTotal 12291\n"
    )
    assert parse_blkio(text) == (4097, 8194)
    assert parse_blkio("Total 0\n") == (0, 0)


def test_io_stat_sums_over_devices() -> None:
    text = (
        "254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
        "253:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=9 dios=9\n"
    )
    assert parse_io_stat(text) == {
        "read_bytes": 101,
        "write_bytes": 202,
        "read_ops": 4,
        "write_ops": 6,
    }
    assert parse_io_stat("") == {"read_bytes": 0, "write_bytes": 0, "read_ops": 0, "write_ops": 0}


def test_cgroups_path_components() -> None:
    assert check_cgroups_path("/cdfs/default/web") == ("cdfs", "default", "web")


@pytest.mark.parametrize(
    "path", ["", "/", "cdfs/x", "/cdfs/../etc", "/cdfs/./x", "/cdfs//x", "/cdfs/x/", "/a\0b"]
)
def test_cgroups_path_refused(path: str) -> None:
    with pytest.raises(InvalidArgument, match="bad cgroups path"):
        check_cgroups_path(path)
