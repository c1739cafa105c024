"""The package's own tests under the older stack of ``constraints/llava-next.txt`` (the one
LLaVA-NeXT needs: transformers 4.45, tokenizers 0.20, huggingface_hub 0.x, datasets 3.6 and what
datasets 3.6 pins), without a second venv.

Every line of the constraints file is installed with ``pip install --target OVERLAY --no-deps``
from PyPI into a folder kept for the pytest session; a subprocess then runs ``OLD_STACK_TESTS`` with
that folder first on ``PYTHONPATH``, so those packages shadow this venv's and everything else
(torch, lmms-eval, ...) stays this venv's. The versions such a subprocess imports are checked:
they must be the overlay's and satisfy the constraints, so the run cannot silently test the
default stack. Skipped only when PyPI cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints" / "llava-next.txt"

# The subset run under the old stack (about 1.5 min on 2 cores): the data layer (schema, sampling,
# every builder writing its sets with datasets 3.6 and the store reading them back, tarballs,
# read-only roots, clean-up), the prepare CLI, the task YAMLs and hooks through lmms-eval, answer
# parsing, the mini benchmark, scoring, and the weight-free baselines end to end via the lmms-eval CLI.
OLD_STACK_TESTS = (
    "tests/test_tasks.py",
    "tests/test_parsing.py",
    "tests/test_mini.py",
    "tests/test_sampling.py",
    "tests/test_scoring.py",
    "tests/test_retrieval_metric.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_builder_*.py")),
    "tests/test_data_tarballs.py",
    "tests/test_data_cleanup.py",
    "tests/test_data_csv_errors.py",
    "tests/test_data_readonly.py",
    "tests/test_prepare_cli.py",
    "tests/test_unisim_classic.py",
)

_REPORT = """\
import importlib, importlib.metadata as md, json, sys
names = {names!r}
print(json.dumps({{n: [md.version(n), importlib.import_module(m).__file__] for n, m in names.items()}}))
"""


def _requirements() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in CONSTRAINTS.read_text().splitlines())
    return [line for line in lines if line]


def _module_name(requirement: str) -> tuple[str, str]:
    from packaging.requirements import Requirement

    name = Requirement(requirement).name
    return name, name.replace("-", "_")


def _index_unreachable(project: str) -> str | None:
    """Why pip's index cannot be read (``None`` when it can): pip's own messages do not tell a
    network failure from a missing release (``from versions: none`` for both)."""
    import urllib.request

    index = os.environ.get("PIP_INDEX_URL")
    if not index:
        got = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                             capture_output=True, text=True)  # fmt: skip
        index = got.stdout.strip() if got.returncode == 0 and got.stdout.strip() else "https://pypi.org/simple"
    url = f"{index.rstrip('/')}/{project}/"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read(1)
    except OSError as e:  # URLError, timeouts, refused connections
        return f"{url}: {e}"
    return None


@pytest.fixture(scope="session")
def overlay(tmp_path_factory) -> Path:
    from packaging.requirements import Requirement

    target = tmp_path_factory.mktemp("old_stack_overlay")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--target", str(target), "-r", str(CONSTRAINTS)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode:
        why = _index_unreachable(Requirement(_requirements()[0]).name)
        if why:
            pytest.skip(f"PyPI unreachable, so the old-stack overlay cannot be installed: {why}")
        pytest.fail(f"pip could not install the old stack into the overlay:\n{(done.stdout + done.stderr)[-4000:]}")
    return target


def _env(overlay: Path, tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(overlay), str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", UNISIM_DATA_DIR=str(tmp / "data"))  # its own sets
    return env


def test_overlay_shadows_the_default_stack_with_the_constrained_versions(overlay, tmp_path):
    from packaging.requirements import Requirement

    requirements = _requirements()
    assert {Requirement(r).name for r in requirements} >= {"transformers", "tokenizers", "huggingface_hub", "datasets"}
    names = dict(_module_name(r) for r in requirements)
    done = subprocess.run([sys.executable, "-c", _REPORT.format(names=names)], capture_output=True, text=True,
                          env=_env(overlay, tmp_path), cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for requirement in requirements:
        req = Requirement(requirement)
        found, where = seen[req.name]
        assert req.specifier.contains(found, prereleases=True), (req.name, found)
        assert Path(where).resolve().is_relative_to(overlay.resolve()), (req.name, where)


def test_package_tests_pass_under_the_old_stack(overlay, tmp_path):
    from packaging.requirements import Requirement

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         "--basetemp", str(tmp_path / "basetemp"), *OLD_STACK_TESTS],
        capture_output=True, text=True, env=_env(overlay, tmp_path), cwd=ROOT, timeout=900,
    )  # fmt: skip
    out = done.stdout + done.stderr
    # The run's own report (tests/conftest.py's summary line): "dependencies: transformers 4.45.2, ..."
    summary = next((l for l in reversed(out.splitlines()) if l.startswith("dependencies: ")), "")
    reported = dict(item.rsplit(" ", 1) for item in summary.removeprefix("dependencies: ").split(", ") if " " in item)
    for requirement in map(Requirement, _requirements()):
        if requirement.name in reported:
            assert requirement.specifier.contains(reported[requirement.name], prereleases=True), summary
    assert {"transformers", "datasets"} <= set(reported), out[-3000:]
    assert done.returncode == 0, out[-6000:]
