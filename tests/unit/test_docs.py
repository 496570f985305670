"""The README and docs/ stay honest: their code parses, their commands and flags exist, their links resolve."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from bench.tables import rendered
from offload_server.main import build_parser as server_parser
from offload_server.quantize.cli import build_parser as quantize_parser
from offload_tools.cli import build_parser as offload_parser

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(page.read_text()) if lang == language]


def commands(body: str) -> list[list[str]]:
    """Shell lines of a bash block: continuations joined, comments and environment assignments dropped."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def compose_profiles_and_services() -> tuple[set[str], set[str]]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {p for s in services.values() for p in s.get("profiles", [])}, set(services)


def check(words: list[str]) -> None:
    tool, args = words[0], words[1:]
    if tool == "make":
        targets = {a for a in args if not re.fullmatch(r"[A-Z_]+=.*", a)}  # `make demo MODEL=x`: a variable
        assert targets <= make_targets(), f"no such make target: {args}"
    elif tool == "offload":
        offload_parser().parse_args(args)  # SystemExit on an unknown command or flag
    elif tool == "offload-server" and args[:1] == ["quantize"]:
        quantize_parser().parse_args(args[1:])
    elif tool == "offload-server":
        server_parser().parse_args(args)
    elif tool.startswith(("scripts/", "bench/")):
        assert (ROOT / tool).is_file(), f"no such script: {tool}"
    elif tool == "docker" and args[:1] == ["compose"]:
        profiles, services = compose_profiles_and_services()
        named = [args[i + 1] for i, a in enumerate(args) if a == "--profile"]
        assert set(named) <= profiles, f"no such compose profile: {named}"
        files = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
        assert all((ROOT / f).is_file() for f in files), files
        if "up" in args:
            after = args[args.index("up") + 1 :]
            assert set(a for a in after if not a.startswith("-")) <= services, after


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_parse(page: Path) -> None:
    for body in blocks(page, "python"):
        ast.parse(body)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_shell_commands_name_existing_targets_commands_and_flags(page: Path) -> None:
    for body in blocks(page, "bash"):
        for words in commands(body):
            check(words)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_named_files_exist(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
        if not target.startswith("http"):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    first = blocks(ROOT / "README.md", "bash")[0]
    assert "make demo" in first and "make test" in first


def test_a_wrong_flag_is_caught() -> None:
    """The check itself can fail: a flag that does not exist is an error."""
    with pytest.raises(SystemExit):
        check(["offload", "run", "--no-such-flag"])
    with pytest.raises(AssertionError):
        check(["make", "no-such-target"])
    with pytest.raises(AssertionError):
        check(["scripts/no_such_script.sh"])
    with pytest.raises(AssertionError):
        check(["docker", "compose", "--profile", "nope", "up"])


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_results_tables_match_their_results_files(page: Path) -> None:
    """A table between `<!-- results:NAME -->` markers is the results file's figures (`python -m bench.tables`)."""
    text = page.read_text()
    assert rendered(text) == text, f"{page.name}: run `python -m bench.tables` after the benchmark"
