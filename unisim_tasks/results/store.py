"""Shared stores of leaderboard submissions: a git repository or a Hugging Face dataset repo.

A store holds one JSON file per submission under ``submissions/<model slug>/<submission id>.json``
(one folder per model, as in MTEB's results repository); any other file is ignored. It is read from
a local cache, ``~/.cache/unisim_bench/leaderboards/<slug>`` (``UNISIM_LEADERBOARD_CACHE`` or
``cache_dir`` elsewhere), which ``pull`` brings up to date:

- ``GitStore``: a local path or any git URL. ``pull`` clones it, or fetches and resets the cache to
  the remote branch; ``add`` commits one file in the cache and pushes it. A failed push leaves the
  store as it was and the cache is dropped (the next ``pull`` clones it afresh).
- ``HfStore``: ``hf://datasets/ORG/NAME``. ``pull`` downloads its ``submissions/`` folder; ``add``
  opens a pull request (``create_commit(..., create_pr=True)``) and never writes to the main
  branch. The token comes from where ``huggingface_hub`` looks (``HF_TOKEN``, a cached login).

The store's content is read and checked by ``submission.parse``: a malformed file is a
``StoreError`` naming it, and nothing is written to a store that holds one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .submission import SubmissionError, conflicts, dumps, parse, problems, store_path

SUBMISSIONS = "submissions"
HF_DATASETS = "hf://datasets/"
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


class StoreError(RuntimeError):
    """A store that cannot be read or written, or that holds a malformed submission."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    default = os.environ.get("UNISIM_LEADERBOARD_CACHE", "~/.cache/unisim_bench/leaderboards")
    return Path(cache_dir or default).expanduser()


def slug(spec: str) -> str:
    """A folder name for a store: its readable tail and a hash of the whole spec."""
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.rstrip("/").removesuffix(".git"))[-40:].strip("-.")
    return f"{tail or 'store'}-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def read_submissions(folder: Path) -> list[tuple[str, dict]]:
    """Every submission under ``folder/submissions`` as ``(path in the store, submission)``."""
    found = []
    for file in sorted((folder / SUBMISSIONS).glob("**/*.json")):
        rel = file.relative_to(folder).as_posix()
        try:
            found.append((rel, parse(file.read_text(), where=rel)))
        except (SubmissionError, UnicodeDecodeError) as e:
            raise StoreError(f"the store holds a malformed submission: {e}") from None
    return found


class Store:
    """What every store offers; ``spec`` is what the user wrote, ``cache`` the local copy."""

    def __init__(self, spec: str, cache: Path) -> None:
        self.spec, self.cache = spec, cache

    def pull(self) -> Path:
        raise NotImplementedError

    def submissions(self) -> list[tuple[str, dict]]:
        return read_submissions(self.cache)

    def proposed(self) -> dict[str, str]:
        """Submissions proposed but not merged yet: submission id -> where (none for a git store)."""
        return {}

    def add(self, path: str, text: str, message: str) -> str:
        """Write one new file to the store; returns where it went (a commit or a pull request)."""
        raise NotImplementedError


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **_GIT_ENV})
    if done.returncode != 0:
        raise StoreError(f"git {args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


class GitStore(Store):
    def pull(self) -> Path:
        try:
            _git("ls-remote", "--heads", self.spec)
        except StoreError:
            raise StoreError(
                f"{self.spec} is not a git repository that can be read (a new store is made with "
                f"`git init --bare {self.spec}`)"
            ) from None
        if (self.cache / ".git").is_dir() and self._origin() == self.spec:
            _git("fetch", "--quiet", "origin", cwd=self.cache)
            branch = _git("symbolic-ref", "--short", "HEAD", cwd=self.cache)
            if _git("branch", "--remotes", "--list", f"origin/{branch}", cwd=self.cache):
                _git("reset", "--quiet", "--hard", f"origin/{branch}", cwd=self.cache)
                _git("clean", "--quiet", "-fdx", cwd=self.cache)
        else:
            shutil.rmtree(self.cache, ignore_errors=True)
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            _git("clone", "--quiet", self.spec, str(self.cache))
        return self.cache

    def _origin(self) -> str | None:
        try:
            return _git("remote", "get-url", "origin", cwd=self.cache)
        except StoreError:
            return None

    def add(self, path: str, text: str, message: str) -> str:
        target = self.cache / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        try:
            _git("add", "--", path, cwd=self.cache)
            _git(*_identity_flags(self.cache), "commit", "--quiet", "-m", message, "--", path, cwd=self.cache)
            _git("push", "--quiet", "origin", "HEAD", cwd=self.cache)
        except StoreError as e:
            shutil.rmtree(self.cache, ignore_errors=True)  # the local commit is gone with it
            raise StoreError(f"could not write {path} to {self.spec}, which is unchanged: {e}") from None
        return f"commit {_git('rev-parse', '--short', 'HEAD', cwd=self.cache)} pushed to {self.spec}"


def _identity_flags(repo: Path) -> list[str]:
    """A committer for a machine with no git identity configured (git refuses to commit without)."""
    try:
        _git("config", "user.email", cwd=repo)
        return []
    except StoreError:
        return ["-c", "user.name=unisim-bench", "-c", "user.email=unisim-bench@localhost"]


class HfStore(Store):
    def __init__(self, spec: str, cache: Path, api=None) -> None:
        super().__init__(spec, cache)
        self.repo_id = spec[len(HF_DATASETS) :].strip("/")
        if self.repo_id.count("/") != 1:
            raise StoreError(f"a Hugging Face store is {HF_DATASETS}ORG/NAME, not {spec}")
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi()
        self.api = api

    def pull(self) -> Path:
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=self.cache.name + ".", dir=self.cache.parent))
        try:
            self.api.snapshot_download(
                self.repo_id, repo_type="dataset", local_dir=str(fresh), allow_patterns=[f"{SUBMISSIONS}/**"]
            )
        except Exception as e:  # offline, no such repo, no access: the hub's message says which
            shutil.rmtree(fresh, ignore_errors=True)
            raise StoreError(f"could not read the Hugging Face dataset {self.repo_id}: {e}") from None
        shutil.rmtree(self.cache, ignore_errors=True)
        fresh.rename(self.cache)
        return self.cache

    def proposed(self) -> dict[str, str]:
        """The ids in the titles of the dataset's open pull requests (``add`` puts them there)."""
        found = {}
        try:
            prs = list(self.api.get_repo_discussions(
                self.repo_id, repo_type="dataset", discussion_type="pull_request", discussion_status="open"
            ))  # fmt: skip
        except Exception as e:
            raise StoreError(f"could not list the pull requests of {self.repo_id}: {e}") from None
        for pr in prs:
            for submission_id in re.findall(r"\[([0-9a-f]{16})\]", pr.title):
                found[submission_id] = f"open pull request #{pr.num} of {self.repo_id}"
        return found

    def add(self, path: str, text: str, message: str) -> str:
        from huggingface_hub import CommitOperationAdd

        try:
            info = self.api.create_commit(
                self.repo_id,
                [CommitOperationAdd(path_in_repo=path, path_or_fileobj=text.encode())],
                commit_message=message,
                repo_type="dataset",
                create_pr=True,
            )
        except Exception as e:
            raise StoreError(f"could not open a pull request on {self.repo_id}: {e}") from None
        return f"pull request {info.pr_url}"


def open_store(spec: str, cache_dir: str | os.PathLike | None = None, api=None) -> Store:
    """The store ``spec`` names: ``hf://datasets/ORG/NAME``, a git URL or a local path."""
    if spec.startswith("hf://"):
        return HfStore(spec, cache_root(cache_dir) / slug(spec), api)
    if "://" not in spec and not re.match(r"^[\w.-]+@[\w.-]+:", spec):  # a local path, not scp-like user@host:
        spec = str(Path(spec).expanduser().resolve())
    return GitStore(spec, cache_root(cache_dir) / slug(spec))


def submit(store: Store, submission: dict) -> str:
    """Check ``submission`` against ``store`` (brought up to date first) and add it; returns where it
    went. ``SubmissionError`` with every reason when it is refused: then nothing is written."""
    store.pull()
    existing = store.submissions()
    reasons = problems(submission) + conflicts(submission, existing, store.proposed())
    if reasons:
        raise SubmissionError(refusal(reasons))
    message = f"Add {submission['model']['name']} [{submission['id']}]"
    return store.add(store_path(submission), dumps(submission), message)


def refusal(reasons: list[str]) -> str:
    return "refused:\n" + "\n".join(f"  - {r}" for r in reasons)
