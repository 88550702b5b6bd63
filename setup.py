"""The triage's scanning core, compiled at install (gcc and the Python headers: see
src/allies/triage/logparse.py). Everything else is in pyproject.toml; the extension is declared here
because setuptools still calls `[tool.setuptools.ext-modules]` experimental and warns at every build."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "allies.triage._logscan",
            sources=["src/allies/triage/_logscan.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
        )
    ]
)
