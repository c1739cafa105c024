"""The wheel ships the product's own namespaces (and their task files), nothing generic."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_product_namespaces_with_their_task_files(tmp_path):
    source = tmp_path / "src"  # setuptools writes build/ next to the sources: keep it out of the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "venv", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = tmp_path.glob("unisim_bench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"unisim_tasks", "unisim_models"}
    assert "unisim_tasks/tasks/_default_template_yaml" in names
    assert "unisim_tasks/tasks/unisim_img2afc_nights.yaml" in names
    assert any(n.startswith("unisim_tasks/tasks/templates/") and n.endswith(".jinja") for n in names)
    assert "unisim_models/chat_templates/llava_in_order.jinja" in names  # the in-order LLaVA template
    assert "unisim_tasks/results/paper_table6_core.csv" in names  # the paper's rows for the report
    assert "unisim_tasks/results/page_template.html" in names  # the leaderboard page
