"""A non-editable install (a wheel built from the tracked files, as from a clean clone) holds the
built ops and the bundled Time Machine, and runs the main job for one epoch with no data flag."""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
OFFLINE = "http://127.0.0.1:9"  # the discard port: nothing listens
MAIN_JOB_CHECK = """
import os, sys
import ops, zoo
from recipes import language_model
site = sys.argv[1]
for module in (ops, zoo, language_model):
    assert module.__file__.startswith(site), f"{module.__name__} imported from {module.__file__}, not {site}"
assert ops.is_available(), f"the installed ops do not load: {ops.load_error()}"
language_model.main(["--output-dir", "run", "--epochs", "1", "--layers", "1", "--units", "16",
                     "--embedding-dim", "8", "--batch-size", "256", "--num-steps", "32",
                     "--sample-tokens", "8"])
assert os.path.exists("run/model.keras")
print("INSTALL_OK")
"""


def tracked_files():
    """The repository's tracked files (what a clean clone holds), or None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.split("\0") if name and (REPO / name).is_file()]


@pytest.mark.slow
def test_wheel_install_runs_the_main_job_offline(tmp_path):
    files = tracked_files()
    if files is None:
        pytest.skip("not a git checkout: no tracked files to build from")
    clone = tmp_path / "clone"
    for name in files:
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    # The build needs TensorFlow's headers: use this environment's instead of an isolated one.
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run(build + ["--wheel-dir", str(tmp_path / "wheels"), str(clone)], check=True, timeout=1800)
    (wheel,) = (tmp_path / "wheels").glob("rnn_zoo-*.whl")

    # A fresh environment that sees this one's dependencies (TensorFlow, Keras) through a path
    # entry, but not its editable install of the zoo (a .pth file there is not read from here).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pathlib.Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", site, str(wheel)]
    subprocess.run(install, check=True, timeout=600)

    work = tmp_path / "work"
    work.mkdir()
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "ZOO_DATA_DIR")}
    result = subprocess.run(
        [python, "-c", MAIN_JOB_CHECK, site],
        cwd=work,
        # No network: a download would go to a proxy that refuses it.
        env=dict(env, TF_CPP_MIN_LOG_LEVEL="2", http_proxy=OFFLINE, https_proxy=OFFLINE),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert "INSTALL_OK" in result.stdout, result.stderr[-3000:]
