"""bench/image_pulls.py prints the pull figures README quotes."""

from __future__ import annotations

from bench import image_pulls
from tests.conftest import REPO


def test_report_shows_before_and_after_for_every_stack() -> None:
    report = image_pulls.report()
    assert "| dev | 3 | 11 | 16 | 11 | 0 |" in report
    assert "| zero-trust | 3 | 11 | 17 | 11 | 0 |" in report
    assert "istio-system/ztunnel" in report and "DaemonSet: 3 nodes" in report


def test_readme_quotes_the_figures() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for row in image_pulls.report().splitlines()[2:6]:
        assert row in readme, row
