"""The feature tests hold on an AVX2 machine too: a few of them rerun here with numpy's AVX-512 kernels off.

numpy picks its float32 ``log10``/``exp``/... kernels at run time: on an AVX-512 CPU
``10 * log10(1e-10)`` is ``-100.00000762939453``, on an AVX2 one ``-100.0``. The suite compares
computed floats with tolerances so that it passes on both; this test keeps it honest by running
representative feature tests and the log-mel docstring example in a subprocess under
``NPY_DISABLE_CPU_FEATURES`` (the ``other_simd_env`` fixture; skipped on CPUs without AVX-512).
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Tests whose numbers pass through the SIMD-dispatched float32 kernels (log10 of the dB scale, exp, ...).
REPRESENTATIVE = [
    "tests/features/test_representations.py::test_silence_column_is_the_feature_of_silence",
    "tests/features/test_representations.py::test_logmel_matches_librosa",
    "tests/features/test_representations.py::test_mfcc_matches_librosa",
    "tests/features/test_representations.py::test_blocks_do_not_change_the_numbers",
    "tests/test_doctests.py::test_docstring_examples[mirdl.features.representations]",
]

#: Reports what the subprocess's numpy runs, then the tests.
CHILD = """
import sys
try:
    from numpy._core._multiarray_umath import __cpu_features__
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__
import pytest
still_on = [name for name in sys.argv[1].split() if __cpu_features__.get(name)]
print("still on:", still_on)
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[2:]]))
"""


def test_feature_tests_pass_with_avx512_kernels_disabled(other_simd_env):
    disabled = other_simd_env["NPY_DISABLE_CPU_FEATURES"]
    result = subprocess.run([sys.executable, "-c", CHILD, disabled, *REPRESENTATIVE], cwd=REPO,
                            env=other_simd_env, capture_output=True, text=True, timeout=300)
    assert "still on: []" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"{len(REPRESENTATIVE) + 1} passed" in result.stdout  # logmel_matches_librosa has 2 cases
