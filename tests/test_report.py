"""HTML reports, opened in headless Chromium (skipped where no browser is installed); tables
as data; figures that leave the user's matplotlib backend alone."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import anomalia
from anomalia.cli import main
from anomalia.errors import DataError
from anomalia.reporting import Table
from anomalia.reporting.html import write_report
from anomalia.reporting.summary import SUMMARY_NOTE, summary_markdown, summary_tables

from .test_benchmark import smoke_yaml

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (apt-get install chromium)"
)


# Marks the page with how many images decoded. Reports ship without scripts, so the test adds
# it to a copy of the page it opens.
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = `${ok}/${imgs.length}`;
});
</script>"""


def render(path):
    """(images loaded "ok/total", console messages) of a page in headless Chromium."""
    text = path.read_text()
    assert text.count("</body>") == 1
    with tempfile.TemporaryDirectory() as tmp:
        checked = Path(tmp) / "checked.html"
        checked.write_text(text.replace("</body>", CHECK_SCRIPT + "</body>"))
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
                "--dump-dom",
                checked.as_uri(),
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
    # roc, score histogram, reconstructions and anomaly maps (the autoencoder makes maps)
    assert text.count("data:image/png;base64,") == 4
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text
    assert "AUROC" in text and "normal_class: 0" in text


@needs_browser
def test_run_report_renders_in_chromium(run_dir):
    loaded, console = render(write_report(run_dir))
    assert loaded == ("4", "4")  # every plot of the run decodes, the anomaly maps included
    assert console == []


@needs_browser
def test_browser_check_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="data:image/png;base64,AAAA">'
        "<script>console.error('boom');</script></body></html>"
    )
    loaded, console = render(bad)
    assert loaded == ("0", "1")
    assert any("boom" in line for line in console)


@needs_browser
def test_benchmark_report_renders(idx_dir, tmp_path):
    config = smoke_yaml(tmp_path / "s.yaml", idx_dir, tmp_path / "out", "smoke")
    assert main(["benchmark", str(config)]) == 0
    assert main(["report", str(tmp_path / "out" / "smoke")]) == 0
    page = tmp_path / "out" / "smoke" / "report.html"
    loaded, console = render(page)
    assert loaded is not None and loaded[0] == loaded[1] and int(loaded[1]) >= 2
    assert console == []
    text = page.read_text()
    assert "<script" not in text
    # the tables come from results.csv as data, the same cells as summary.md's
    summary = (tmp_path / "out" / "smoke" / "summary.md").read_text()
    assert "<h3>gamma_l = 0.05, labelled anomalies from 1 class(es)</h3>" in text
    assert "### gamma_l = 0.05, labelled anomalies from 1 class(es)" in summary
    assert "<td>anomalia autoencoder</td>" in text and "| anomalia autoencoder |" in summary


def test_report_of_other_directory(tmp_path):
    with pytest.raises(DataError, match="neither a finished run directory"):
        write_report(tmp_path)


def test_table_renders_to_markdown_and_html():
    table = Table(["a", "b"], [(1, "<x>"), (0.5, "y")], title="T & U", notes=["note <n>"])
    assert table.to_markdown() == (
        "### T & U\n\nnote <n>\n\n| a | b |\n| --- | --- |\n| 1 | <x> |\n| 0.5000 | y |"
    )
    out = table.to_html()
    assert out.startswith("<h3>T &amp; U</h3>\n<p>note &lt;n&gt;</p>\n<table>")
    assert "<th>a</th><th>b</th>" in out and "<td>&lt;x&gt;</td>" in out
    assert "<td>0.5000</td>" in out  # floats as in the Markdown
    assert Table(["a"], []).to_markdown() == "| a |\n| --- |"


def summary_rows():
    return [
        {"dataset": "fashion_mnist", "method": m, "normal_class": str(c), "anomaly_ratio": ratio,
         "n_known_anomaly_classes": known, "seed": str(s), "auroc": str(0.8 + 0.01 * c + 0.01 * s),
         "auprc": "0.7"}
        for ratio, known in (("0", ""), ("0.05", "1"))
        for m in ("autoencoder", "deep_sad") for c in range(3) for s in (0, 1)
    ]  # fmt: skip


def test_summary_markdown_is_its_tables_rendered():
    rows = summary_rows()
    tables = summary_tables(rows)
    assert [t.title for t in tables] == [
        "gamma_l = 0, one-class",
        None,
        "gamma_l = 0.05, labelled anomalies from 1 class(es)",
        None,
    ]
    assert tables[0].rows[0] == ("anomalia autoencoder", "81.5 ± 0.7", "70.0 ± 0.0", "2 x 3",
                                 "this run")  # fmt: skip
    assert "not comparable" in tables[0].notes[0]  # 3 classes against published means over 10
    assert tables[1].headers == ["normal class", "autoencoder", "deep_sad"]
    text = summary_markdown(rows)
    assert text == "\n\n".join([SUMMARY_NOTE, *(t.to_markdown() for t in tables)]) + "\n"
    assert "\n\n### gamma_l = 0, one-class\n\nPublished numbers average" in text
    assert "| 0 | 80.5 | 80.5 |" in text


def test_reporting_leaves_the_matplotlib_backend_alone(tmp_path):
    code = (
        "import sys, matplotlib\n"
        "import anomalia.reporting, anomalia.reporting.summary, anomalia.reporting.html\n"
        "from anomalia.reporting import roc_figure, save_figure\n"
        "save_figure(roc_figure([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6]), sys.argv[1])\n"
        "print(matplotlib.get_backend())\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.png")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["svg"]
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    # Lightning's torchmetrics imports pyplot (which leaves the backend as it is); anomalia's
    # own code never does.
    root = Path(anomalia.__file__).parent
    pyplot_import = re.compile(
        r"^\s*(from matplotlib import pyplot|import matplotlib\.pyplot)", re.M
    )
    assert not [p for p in root.rglob("*.py") if pyplot_import.search(p.read_text())]
