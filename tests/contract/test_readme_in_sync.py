"""The README's layout and benchmark list name exactly what is in the tree, and its sections end with the licence."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_SKIP = re.compile(r"^\.|^__pycache__$|\.egg-info$|^(build|dist|node_modules)$")
_FILE = re.compile(r"(?<![\w./-])(?:[\w-]+/|[\w-]+\.(?:py|json|ya?ml|toml|md)\b|Dockerfile\b)")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def children(path: Path) -> set[str]:
    return {p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not _SKIP.search(p.name)}


def layout() -> dict[str, list[str]]:
    """The entries of the layout block: name(s) at the left, then the description (continuation lines joined)."""
    (block,) = re.findall(r"```\n(.*?)```", section("Layout"), re.S)
    entries: dict[str, list[str]] = {}
    last = None
    for line in block.splitlines():
        names, _, text = line.partition("  ") if not line.startswith("  ") else line[2:].partition("  ")
        indent = "" if not line.startswith("  ") else "  "
        if not names.strip():  # a continuation of the entry above
            entries[last].append(text.strip())
            continue
        last = indent + names.strip()
        entries[last] = [text.strip()]
    return entries


def test_the_layout_names_every_top_level_directory_and_package():
    entries = layout()
    top = {name for name in entries if not name.startswith(" ")}
    assert top - {"src/driftline/"} | {"src/"} == {d for d in children(ROOT) if d.endswith("/")}, \
        "the README's layout lists other top-level directories than the tree has"
    inner = {n.strip() for name in entries if name.startswith("  ") for n in name.split(",")}
    package = children(ROOT / "src" / "driftline") - {"__init__.py"}
    assert inner == package, f"layout of src/driftline/: missing {sorted(package - inner)}, " \
                             f"not in the tree {sorted(inner - package)}"


def test_the_layout_names_the_files_of_benchmarks_examples_and_deploy():
    entries = layout()
    for directory in ("benchmarks/", "examples/", "deploy/"):
        named = set(_FILE.findall(" ".join(entries[directory])))
        present = children(ROOT / directory)
        assert named == present, f"layout of {directory}: missing {sorted(present - named)}, " \
                                 f"not in the tree {sorted(named - present)}"


def test_the_benchmark_list_runs_every_benchmark_script():
    (block,) = re.findall(r"```sh\n(.*?)```", section("Benchmarks"), re.S)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipes = dict(re.findall(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)+)", makefile, re.M))
    reached = set()
    for line in block.splitlines():
        command = line.split("#")[0].split()
        if not command:
            continue
        if command[0] == "make":
            assert command[1] in recipes, f"README's benchmark list runs `make {command[1]}`, which the Makefile lacks"
            reached |= set(re.findall(r"benchmarks/(\w+\.py)", recipes[command[1]]))
        else:
            reached |= set(re.findall(r"benchmarks/(\w+\.py)", " ".join(command)))
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    assert reached == scripts, f"README's benchmark list: missing {sorted(scripts - reached)}, " \
                               f"not in the tree {sorted(reached - scripts)}"


def test_the_licence_comes_last():
    headings = re.findall(r"^## (.*)$", README, re.M)
    assert headings[-1] == "Licence", f"sections after the licence: {headings[headings.index('Licence') + 1:]}" \
        if "Licence" in headings else "README has no Licence section"
    assert "Apache-2.0" in section("Licence")
