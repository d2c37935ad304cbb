import pytest

from anomalia.utils import atomic_open, write_json


def test_atomic_open_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"auroc": 0.9})
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as handle:
        handle.write('{"auroc": 0.')  # half written, then the process is interrupted
        raise KeyboardInterrupt
    assert path.read_text().strip().endswith("}")
    assert '"auroc": 0.9' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_atomic_open_replaces_on_success(tmp_path):
    path = tmp_path / "sub" / "x.txt"
    with atomic_open(path) as handle:
        handle.write("new")
    assert path.read_text() == "new"


def test_atomic_files_get_normal_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
