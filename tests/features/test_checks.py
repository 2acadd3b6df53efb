"""Tests of mirdl.features.checks: the one definition of each argument check."""
import numpy as np
import pytest

from mirdl.errors import ConfigError
from mirdl.features.checks import boolean, choice, finite_float, fraction, integer, non_negative_float, positive_float

NUMPY_INTS = [np.int8(3), np.int16(3), np.int32(3), np.int64(3), np.uint8(3), np.uint64(3)]


@pytest.mark.parametrize("value", [3, *NUMPY_INTS])
def test_integer_accepts_python_and_numpy_integers_as_int(value):
    result = integer(value, name="n", minimum=1)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, np.float32(3), "3", None])
def test_integer_refuses_bools_floats_and_strings(value):
    with pytest.raises(ConfigError, match=r"^n=.* must be an integer"):
        integer(value, name="n")


def test_integer_bounds_name_the_value_and_the_range():
    with pytest.raises(ConfigError, match=r"^hop_length=0 must be an integer >= 1$"):
        integer(0, name="hop_length", minimum=1)
    with pytest.raises(ConfigError, match=r"^spec.channels=65 must be an integer in \[1, 64\]$"):
        integer(65, name="spec.channels", minimum=1, maximum=64)
    with pytest.raises(ConfigError, match=r"^x=np.int64\(9\) must be an integer <= 8$|^x=9 must be an integer <= 8$"):
        integer(np.int64(9), name="x", maximum=8)
    assert integer(np.int64(64), name="c", minimum=1, maximum=64) == 64


@pytest.mark.parametrize("value", [0.25, 1, np.float32(0.25), np.float64(0.25), np.int64(1)])
def test_floats_accept_numpy_numbers(value):
    assert type(finite_float(value, name="x")) is float
    assert positive_float(value, name="x") == pytest.approx(float(value))
    assert fraction(value, name="x") == pytest.approx(float(value))


@pytest.mark.parametrize("check, value, message", [
    (finite_float, float("nan"), "must be finite"),
    (finite_float, True, "must be a number"),
    (finite_float, np.bool_(False), "must be a number"),
    (positive_float, 0.0, "must be > 0"),
    (non_negative_float, -1e-9, "must be >= 0"),
    (fraction, 1.5, r"must be a number in \[0, 1\]"),
    (fraction, np.float32(-0.5), r"must be a number in \[0, 1\]"),
])
def test_float_checks_name_the_bad_value(check, value, message):
    with pytest.raises(ConfigError, match=r"^rate=.* " + message):
        check(value, name="rate")


def test_non_negative_float_accepts_zero():
    assert non_negative_float(np.int32(0), name="x") == 0.0


def test_choice_returns_the_option_and_refuses_bools_for_numbers():
    assert type(choice(np.str_("hdf5"), name="f", options=("hdf5", "parquet"))) is str
    assert choice(np.int64(2), name="channels", options=(1, 2)) == 2
    with pytest.raises(ConfigError, match=r"^channels=True must be one of \[1, 2\]$"):
        choice(True, name="channels", options=(1, 2))
    with pytest.raises(ConfigError, match=r"^store.format='zarr' must be one of \['hdf5', 'parquet'\]$"):
        choice("zarr", name="store.format", options=("hdf5", "parquet"))


def test_boolean_refuses_numbers_and_strings():
    assert boolean(np.bool_(True), name="cache") is True
    for value in (1, "yes", None):
        with pytest.raises(ConfigError, match=r"^cache=.* must be true or false$"):
            boolean(value, name="cache")


def test_argparse_type_reports_the_requirement_without_the_parameter_name():
    import argparse

    from mirdl.features.checks import argparse_type

    parse = argparse_type(integer, int, minimum=1)
    assert parse("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match=r"^0 must be an integer >= 1$"):
        parse("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^three is not an integer$"):
        parse("three")


def test_check_errors_keep_their_parts_through_pickling():
    # Beam moves exceptions between worker processes.
    import pickle

    from mirdl.features.checks import CheckError

    with pytest.raises(CheckError) as info:
        integer(0, name="hop_length", minimum=1)
    again = pickle.loads(pickle.dumps(info.value))
    assert isinstance(again, ConfigError) and isinstance(again, ValueError)
    assert (again.name, again.value, again.requirement, str(again)) == (
        "hop_length", 0, "must be an integer >= 1", "hop_length=0 must be an integer >= 1")
    assert str(again.renamed("--hop-length")) == "--hop-length=0 must be an integer >= 1"
