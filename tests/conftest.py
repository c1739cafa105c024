import os

# Tests never reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_terminal_summary(terminalreporter):
    """The resolved versions CI ran with, so a break by a new dependency release is easy to pin down
    (a summary hook, since ``-q`` hides the report header)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("lmms-eval", "filelock", "torch", "transformers", "datasets", "open_clip_torch", "peft", "accelerate")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} absent")
    terminalreporter.write_line("dependencies: " + ", ".join(found))
