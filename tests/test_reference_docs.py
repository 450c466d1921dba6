"""The docs site: generated reference pages match the code, user docs carry no development
bookkeeping, and docstrings cite only files that exist."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from llmscope.app.reference import PAGES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("relative", sorted(PAGES))
def test_generated_reference_page_is_up_to_date(relative: str) -> None:
    committed = (ROOT / relative).read_text()
    assert committed == PAGES[relative](), "regenerate with: python -m llmscope.app.reference"


def test_the_run_report_page_names_every_key_of_the_report() -> None:
    from llmscope.report import ClusterEntry, RunReport

    page = (ROOT / "docs" / "reference" / "run-report.md").read_text()
    for model in (RunReport, ClusterEntry):
        assert f"### {model.__name__}" in page
        for key in model.model_fields:
            assert f"| `{key}` |" in page, key


def _tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).exists()]


def _user_docs() -> list[Path]:
    readmes = [ROOT / "README.md", ROOT / "sdk" / "README.md", ROOT / "deploy" / "README.md"]
    return [*readmes, *_tracked("docs/*.md", "docs/**/*.md")]


# What belongs in commit messages and issues, not in documentation a user reads.
_BOOKKEEPING = {
    "issue number": re.compile(r"\b(?:issues?|PR|pull request) #?\d+\b|\(#\d+\)", re.IGNORECASE),
    "load average": re.compile(
        r"\bload averages?\b|\bload\s*[≈~]\s*\d|\bload \d+(?:\.\d+)?\s*(?:[–-]|to)\s*\d",
        re.IGNORECASE,
    ),
    "commit hash": re.compile(r"`[0-9a-f]{7,40}`|\bcommit [0-9a-f]{7,40}\b"),
}


# A docs page including text kept elsewhere (pymdownx.snippets): `--8<-- "path:section"`.
_SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"$')


def _included(page: Path) -> list[tuple[str, str]]:
    """The lines a page includes from other files, each with where it comes from."""
    lines = []
    for line in page.read_text().splitlines():
        match = _SNIPPET.match(line.strip())
        if not match:
            continue
        path, section = match.groups()
        text = (ROOT / path).read_text()
        if section:
            text = text.split(f"--8<-- [start:{section}]", 1)[1]
            text = text.split(f"--8<-- [end:{section}]", 1)[0].split("\n", 1)[1]
        lines += [
            (f"{path}:{section} (in {page.name})", included) for included in text.splitlines()
        ]
    return lines


def test_user_docs_carry_no_issue_numbers_commit_hashes_or_load_averages() -> None:
    found = []
    for path in _user_docs():
        where = str(path.relative_to(ROOT))
        lines = [(f"{where}:{n}", line) for n, line in enumerate(path.read_text().splitlines(), 1)]
        for origin, line in lines + _included(path):
            for what, pattern in _BOOKKEEPING.items():
                if pattern.search(line):
                    found.append(f"{origin}: {what}: {line.strip()}")
    assert found == []


def test_every_included_section_exists() -> None:
    """The site's build fails on a missing file; a missing section would include nothing."""
    for path in _user_docs():
        for line in path.read_text().splitlines():
            match = _SNIPPET.match(line.strip())
            if match and match.group(2):
                text = (ROOT / match.group(1)).read_text()
                assert f"--8<-- [start:{match.group(2)}]" in text, line
                assert f"--8<-- [end:{match.group(2)}]" in text, line


def test_the_bookkeeping_check_catches_each_kind() -> None:
    lines = {
        "issue number": ["Measured before issue 12 landed.", "the pooling fix (#31)"],
        "load average": ["Two runs (load average 7–9).", "one run (load ≈ 10)", "load 2-7"],
        "commit hash": ["against the commit before it (`2c6fe64`)"],
    }
    for what, examples in lines.items():
        for line in examples:
            assert _BOOKKEEPING[what].search(line), line
    fine = ["p50 0.28 ms at 20 in flight", "cluster #6 draws thumbs-down", "the load of a flood"]
    assert not any(p.search(line) for p in _BOOKKEEPING.values() for line in fine)


# A path in a docstring: folders and a file name with a known extension, or a top-level *.md.
_CITED = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|ya?ml|toml|json)|[A-Z][A-Z_]+\.md)(?![\w/])"
)
# Where a docstring's relative path may start: the repository, a package's folder, its own folder.
_BASES = ["", "llmscope", "sdk/src", "sdk/src/llmscope_sdk", "deploy"]


_DOCUMENTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _cites_a_missing_file(source: Path, cited: str) -> bool:
    here = source.parent.relative_to(ROOT)
    bases = [ROOT / base for base in _BASES] + [ROOT / here] + [ROOT / p for p in here.parts[:1]]
    folder, _, name = cited.rpartition("/")
    if folder and (name.split(".")[0].isupper() or not any((b / folder).is_dir() for b in bases)):
        return False  # a placeholder (benchmarks/NAME.py) or a path outside the repository's tree
    return not any((base / cited).exists() for base in bases)


def test_docstrings_cite_only_files_in_the_repository() -> None:
    missing = []
    for source in _tracked("*.py"):
        tree = ast.parse(source.read_text())
        documented = [tree, *(n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED))]
        docstrings = "\n".join(ast.get_docstring(node) or "" for node in documented)
        for cited in _CITED.findall(docstrings):
            if "<" not in cited and _cites_a_missing_file(source, cited):
                missing.append(f"{source.relative_to(ROOT)}: {cited}")
    assert missing == []
