"""HTML reports, opened in headless Chromium (skipped where no browser is installed)."""

import re
import shutil
import subprocess

import pytest

from anomalia.cli import main
from anomalia.errors import DataError
from anomalia.reporting.html import markdown_to_html, write_report

from .test_benchmark import smoke_yaml

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)"
)


def render(path):
    """(images loaded "ok/total", console messages) of a page in headless Chromium."""
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', result.stdout)
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return (loaded.groups() if loaded else None), console


@pytest.fixture(scope="module")
def run_dir(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report-runs")
    assert (
        main(
            [
                "train",
                "--dataset",
                "idx",
                "--data-dir",
                str(idx_dir),
                "--output-dir",
                str(out),
                "--name",
                "r",
                "--n-epochs",
                "1",
                "--no-progress-bar",
                "--accelerator",
                "cpu",
            ]
        )
        == 0
    )
    return out / "autoencoder" / "idx" / "class0" / "r"


def test_run_report_is_self_contained(run_dir):
    path = write_report(run_dir)
    text = path.read_text()
    assert text.count("data:image/png;base64,") == 3
    assert "http://" not in text and "https://" not in text
    assert "AUROC" in text and "normal_class: 0" in text


@needs_browser
def test_run_report_renders_in_chromium(run_dir):
    loaded, console = render(write_report(run_dir))
    assert loaded == ("3", "3")
    assert console == []


@needs_browser
def test_browser_check_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body data-images-loaded="?"><img src="data:image/png;base64,AAAA">'
        "<script>console.error('boom');window.addEventListener('load', () => {"
        "const i = Array.from(document.images);document.body.dataset.imagesLoaded ="
        " `${i.filter((x) => x.naturalWidth > 0).length}/${i.length}`;});</script>"
        "</body></html>"
    )
    loaded, console = render(bad)
    assert loaded == ("0", "1")
    assert any("boom" in line for line in console)


@needs_browser
def test_benchmark_report_renders(idx_dir, tmp_path):
    config = smoke_yaml(tmp_path / "s.yaml", idx_dir, tmp_path / "out", "smoke")
    assert main(["benchmark", str(config)]) == 0
    assert main(["report", str(tmp_path / "out" / "smoke")]) == 0
    loaded, console = render(tmp_path / "out" / "smoke" / "report.html")
    assert loaded is not None and loaded[0] == loaded[1] and int(loaded[1]) >= 2
    assert console == []


def test_report_of_other_directory(tmp_path):
    with pytest.raises(DataError, match="neither a finished run directory"):
        write_report(tmp_path)


def test_markdown_tables_to_html():
    out = markdown_to_html("# T\n\n| a | b |\n| --- | --- |\n| 1 | <x> |\ntext")
    assert "<h1>T</h1>" in out and "<td>&lt;x&gt;</td>" in out and "<th>a</th>" in out
    assert "---" not in out and "<p>text</p>" in out
