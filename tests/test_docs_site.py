"""The documentation site builds with ``mkdocs build --strict`` and every section is in it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ["Home", "Tutorials", "How-to guides", "Reference", "Explanation"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    need(mkdocs.exists(), "MkDocs (scripts/setup.sh --docs)")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return out


def nav_pages() -> list[str]:
    """Every page named in mkdocs.yml's nav."""
    return re.findall(r":\s*(\S+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)


def test_every_page_of_the_nav_is_built(site: Path) -> None:
    for page in nav_pages():
        built = site / ("index.html" if page == "index.md" else page[:-3] + "/index.html")
        assert built.is_file(), page
        assert "<h1" in built.read_text(), page


def test_every_page_under_docs_is_in_the_nav() -> None:
    pages = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert pages == set(nav_pages())


def test_home_page_navigation_has_every_section(site: Path) -> None:
    html = (site / "index.html").read_text()
    nav = html[html.index('class="md-tabs"') :]
    nav = nav[: nav.index("</nav>")]
    tabs = [re.sub(r"\s+", " ", t).strip() for t in re.findall(r">\s*([^<>]+?)\s*</a>", nav)]
    assert tabs == SECTIONS


def test_reference_pages_hold_what_the_code_generates(site: Path) -> None:
    cli = (site / "reference/cli/index.html").read_text()
    for command in ("orion submit", "orion ls", "orion db upgrade", "orion workflow retry"):
        assert f'id="{command.replace(" ", "-")}"' in cli, command
    statuses = (site / "reference/statuses/index.html").read_text()
    assert "preempted" in statuses and "dependency_failed" in statuses
    api = (site / "reference/python-api/index.html").read_text()
    assert "Submit one job per structure" in api
    assert "<!-- generated:" not in cli + statuses


def test_screenshots_of_home_and_reference(tmp_path: Path) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("no chromium here (apt-get install chromium); optional even in CI")
    need((Path(sys.executable).parent / "mkdocs").exists(), "MkDocs (scripts/setup.sh --docs)")
    done = subprocess.run(
        [str(REPO / "scripts/docs-screenshot.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    for name in ("docs-home.png", "docs-cli.png"):
        png = (tmp_path / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000, name
