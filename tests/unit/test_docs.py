"""The docs a person navigates: links that resolve, no pointers outside the repository, a short
README whose Python example runs as written.

Files are those git would commit: tracked, plus new files not ignored (``git ls-files --cached
--others --exclude-standard``), so a new page is checked before its first commit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from functools import cache
from pathlib import Path

import pytest

from engine.config import parse_size
from engine.gen import generate

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: The front door stays short: a table of contents, the essentials, links to docs/.
README_MAX_BYTES = 16_000
#: Names of files outside the repository (the founders' notes). Nothing committed may point at
#: them: what the project needs from them lives in docs/ and docs/adr/.
OUTSIDE = ("../shared", "/work/shared", "DESIGN.md", "ADRs.md", "ANCHORS.md", "STYLE.md")
#: This file names them to look for them.
THIS = Path(__file__).resolve().relative_to(REPO).as_posix()
#: Pages whose ```python blocks run as tests: the page → the heading of the section that holds
#: them (``None``: every block of the page).
RUNNABLE = {"README.md": "From Python", "docs/python-api.md": None}

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@cache
def repository_files() -> tuple[str, ...]:
    """Every file git would commit, as paths relative to the repository."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout: {error}")
    names = sorted({name for name in listed.decode().split("\0") if name})
    return tuple(name for name in names if (REPO / name).is_file())


def markdown_files() -> list[str]:
    return [name for name in repository_files() if name.endswith(".md")]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The numbered lines of Markdown outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match[1]
        elif fence is not None and match and match[1][0] == fence[0] \
                and len(match[1]) >= len(fence) and not match[2].strip():
            fence = None
        elif fence is None:
            lines.append((number, line))
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text in lower case, punctuation dropped, spaces -."""
    text = CODE_SPAN.sub(lambda m: m[2].strip(), heading)
    text = LINK.sub(lambda m: m[1], text)
    text = text.replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor of a Markdown file's headings, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match[2])
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return frozenset(found)


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every inline link and image outside code."""
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        for match in LINK.finditer(CODE_SPAN.sub("code", line)):
            found.append((number, match[2]))
    return found


def broken(page: str, target: str) -> str | None:
    """Why a relative link of ``page`` does not resolve, or ``None`` when it does."""
    path_part, _, anchor = target.partition("#")
    source = REPO / page
    resolved = (source.parent / urllib.parse.unquote(path_part)).resolve() if path_part \
        else source
    if not resolved.is_relative_to(REPO):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading with the anchor #{anchor} in {resolved.relative_to(REPO)}"
    return None


def test_every_relative_link_in_the_markdown_resolves() -> None:
    pages = markdown_files()
    assert "README.md" in pages
    problems = [f"{page}:{number}: ({target}) {why}"
                for page in pages
                for number, target in links((REPO / page).read_text(encoding="utf-8"))
                if target and not SCHEME.match(target)
                and (why := broken(page, target)) is not None]
    assert not problems, "links that do not resolve:\n" + "\n".join(problems)


def test_the_link_checker_finds_a_broken_link_and_a_missing_anchor() -> None:
    assert broken("README.md", "docs/no-such-page.md") == "no such file"
    assert broken("README.md", "#no-such-heading") is not None
    assert broken("docs/memory.md", "../../outside.md") == "points outside the repository"
    assert broken("README.md", "#quick-start") is None
    assert github_anchor("DynamoDB record (table `METADATA_TABLE`, on-demand)") == \
        "dynamodb-record-table-metadata_table-on-demand"
    assert github_anchor("2. Build the layer") == "2-build-the-layer"


def test_nothing_points_at_a_file_outside_the_repository() -> None:
    problems: list[str] = []
    for name in repository_files():
        if name == THIS:
            continue
        data = (REPO / name).read_bytes()
        if b"\0" in data:
            continue  # binary (images)
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            problems += [f"{name}:{number}: {outside}" for outside in OUTSIDE if outside in line]
    assert not problems, "pointers to files outside the repository:\n" + "\n".join(problems)


def test_the_readme_stays_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size:,} bytes, over {README_MAX_BYTES:,}: move the detail to docs/")


def python_blocks(text: str, section: str | None) -> list[str]:
    """The ```python blocks of a page, or of its section under the heading ``section``."""
    blocks: list[str] = []
    inside = section is None
    level = 0
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None:
            if line.strip().startswith("```"):
                blocks.append("\n".join(block) + "\n")
                block = None
            else:
                block.append(line)
            continue
        heading = HEADING.match(line)
        if heading and section is not None:
            if inside and len(heading[1]) <= level:
                break
            if heading[2] == section:
                inside, level = True, len(heading[1])
        elif inside and re.match(r"^```python\s*$", line):
            block = []
    return blocks


@pytest.fixture
def example_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the examples expect around them: orders.csv (``chunkwise gen orders --size 1MB``)
    and the repository's contracts/, as the working directory."""
    generate("orders", tmp_path / "orders.csv", size=parse_size("1MB"))
    shutil.copytree(REPO / "contracts", tmp_path / "contracts")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("page", sorted(RUNNABLE))
def test_the_python_examples_run_as_written(page: str, example_dir: Path) -> None:
    blocks = python_blocks((REPO / page).read_text(encoding="utf-8"), RUNNABLE[page])
    where = f'{page}, section "{RUNNABLE[page]}"' if RUNNABLE[page] else page
    assert blocks, f"no ```python block in {where}: the example is missing"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        exec(compile(block, f"{page} (python example)", "exec"), namespace)


def test_an_example_is_found_only_in_its_section() -> None:
    text = "# A\n```python\nfirst = 1\n```\n## From Python\n```python\nx = 1\n```\n## Next\n" \
           "```python\nlater = 1\n```\n"
    assert python_blocks(text, "From Python") == ["x = 1\n"]
    assert python_blocks(text, "Missing") == []
    assert len(python_blocks(text, None)) == 3
