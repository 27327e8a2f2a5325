"""Packaging for rimclf.

``pip install .`` (after a CPU build of torch, see README "Install") gives the default model,
which needs no compiler. pyradiomics is the optional extra ``rimclf[radiomics]``: 3.0.1 has no
binary wheel and must be built with ``--no-build-isolation`` against an already installed numpy
(``pip install numpy setuptools wheel && pip install --no-build-isolation pyradiomics==3.0.1``).
``make install`` (or ``make test`` / ``make demo``) installs everything: torch, then pyradiomics,
then rimclf with the ``dev`` extra.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version: dict[str, str] = {}
exec((HERE / "rimclf" / "_version.py").read_text(), version)

# Ranges known to work together (checked with the versions in README "Tested versions").
# imbalanced-learn follows scikit-learn's private API closely, so both are bounded above.
INSTALL_REQUIRES = [
    "numpy>=1.26,<3",
    "scipy>=1.11",
    "pandas>=2.1,<4",
    "nibabel>=5.1,<6",
    "pybids>=0.16,<1",  # finds BIDS files (sessions, derivatives) and sidecar metadata; 0.16 reads is_derivative
    "torch>=2.2",
    "skorch>=1.0,<2",
    "scikit-learn>=1.6,<1.10",
    "imbalanced-learn>=0.13,<0.15",
    "pyyaml>=6",  # the radiomics parameter files (rimclf/data/qsmrim_params.yaml) are read without pyradiomics
    "optuna>=4.2,<6",
    "optuna-integration>=4.2,<6",
    "joblib>=1.3",
    "tqdm>=4.60",
    "matplotlib>=3.7",
]

EXTRAS_REQUIRE = {
    # radiomics feature sets and baselines; install it first as README "Install" shows (no wheel)
    "radiomics": ["pyradiomics>=3.0.1,<3.1"],
    "dask": ["dask[distributed]>=2024.1"],
    "postgres": ["psycopg2-binary>=2.9"],
    "notebooks": ["nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29"],
    # make docs: Sphinx with MyST (the Markdown guides) and numpydoc (the API reference)
    "docs": ["sphinx>=7.2", "myst-parser>=2", "numpydoc>=1.6"],
}
EXTRAS_REQUIRE["dev"] = sorted(
    {
        "pytest>=8", *EXTRAS_REQUIRE["radiomics"], *EXTRAS_REQUIRE["dask"], *EXTRAS_REQUIRE["postgres"], *EXTRAS_REQUIRE["notebooks"],
        *EXTRAS_REQUIRE["docs"],
    }
)

setup(
    name="rimclf",
    version=version["__version__"],
    description="Chronic active (paramagnetic rim) MS lesion classification on QSM: QSMRim-Net as sklearn estimators",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # rimclf/data holds data files only (no __init__.py): it is listed as a package of its own so
    # that setuptools installs its files without a "package would be ignored" warning
    packages=[*find_packages(include=["rimclf", "rimclf.*"]), "rimclf.data"],
    package_data={"rimclf.data": ["*.yaml", "*.pt", "*.json"]},
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["rimclf=rimclf.cli:main"]},
    license="BSD-3-Clause",
    license_files=["LICENSE"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Intended Audience :: Science/Research",
    ],
)
