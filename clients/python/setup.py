"""Packaging of the Chasqui Python client.

A setup.py and no pyproject.toml on purpose: pip then builds with the
setuptools already installed (Debian 12's python3-setuptools, or the one in
a venv) instead of fetching one into an isolated build environment, so
`pip install ./clients/python` works with no package index.
"""

from setuptools import setup

setup(
    name="chasqui",
    version="0.1.0",
    description="Client of the Chasqui edge: instrument processes write observatory "
    "operations records with retries that never duplicate",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # Debian 12 ships python3-grpcio 1.51 and python3-protobuf 3.21.
    install_requires=["grpcio>=1.51", "protobuf>=3.21"],
    packages=[
        "chasqui",
        "chasqui.ops",
        "chasqui.ops.v1",
        "chasqui.edge",
        "chasqui.edge.v1",
        "chasqui.central",
        "chasqui.central.v1",
    ],
    package_data={"chasqui": ["py.typed"], "": ["*.pyi"]},
    zip_safe=False,
)
