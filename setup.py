"""Install mirdl: ``pip install -e .[dev,interop]`` (add ``[tfio]`` where tensorflow-io loads)."""
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "mirdl" / "__init__.py").read_text()).group(1)

# Lower bounds are the versions this project is tested with (see README, "Install").
INSTALL_REQUIRES = [
    "numpy>=1.26",
    "scipy>=1.11",
    "librosa>=0.11",
    "soundfile>=0.12.1",
    "soxr>=0.5",
    "av>=18.1",  # PyAV (bundled FFmpeg): decodes what libsndfile cannot (m4a/AAC, WMA, WebM)
    "pyyaml>=6.0",
    "tqdm>=4.66",
    "h5py>=3.11",
    "pyarrow>=17",
    "google-crc32c>=1.5",  # TFRecord's CRC32C in C: shards are written without importing TensorFlow
    "isal>=1.7",  # ISA-L's CRC-32 (~15x zlib's): Parquet page checksums checked by the raw page reader
    "apache-beam>=2.77",
    "tensorflow>=2.17",
    "tensorboard>=2.17",  # TensorFlow >= 2.20 no longer installs it; `mirdl train` writes its logs
    "jams>=0.3.4",
    "mir_eval>=0.8",
    "scikit-learn>=1.5",
    "matplotlib>=3.8",
]

EXTRAS_REQUIRE = {
    "dev": ["pytest>=8", "hypothesis>=6.100", "pandas>=2.2"],
    # Other tools that open a store directly (tested in tests/store/test_interop.py), and the
    # local S3 server the object-storage tests start (moto's server mode, on 127.0.0.1).
    "interop": ["tensorflow-datasets>=4.9.10", "datasets>=5.2", "duckdb>=2.0", "mlcroissant>=1.1.1",
                "moto[server]>=5.2.6", "boto3>=1.44"],
    # Locks and catalog versions on s3:// are conditional PUTs (If-None-Match), sent through boto3;
    # everything else on object storage goes through pyarrow.fs (a core dependency).
    "s3": ["boto3>=1.44"],
    # tensorflow-io's last release (0.37.1) loads its native ops only with TensorFlow 2.17.
    "tfio": ["tensorflow-io==0.37.1", "tensorflow==2.17.1", "numpy<2"],
}

setup(
    name="mirdl",
    version=VERSION,
    description="Audio corpora to sharded deep-learning feature stores, streamed into Keras models",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # features/ and pipelines/ are folders at the top of the repository but import as
    # mirdl.features and mirdl.pipelines, so they never clash with a user's own features.py.
    packages=["mirdl", "mirdl.commands", "mirdl.store", "mirdl.features", "mirdl.pipelines", "mirdl_tf",
              "mirdl_tf.models"],
    package_dir={"mirdl.features": "features", "mirdl.pipelines": "pipelines"},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["mirdl=mirdl.cli:main"]},
)
