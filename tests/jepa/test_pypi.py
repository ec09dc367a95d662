"""Corpus source (c), a pinned PyPI list: pins, archives read in place, the download cache (no network)."""

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from harness.config import ConfigError, load_experiment
from harness.errors import EnvironmentProblem, InputError
from jepa.config import ExperimentConfig
from jepa.corpus import pypi
from jepa.corpus.pypi import Pin, archive_files, download, parse_pins, pypi_functions, read_pins

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "jepa"

_MODULE = b'''"""A module."""


def parse(text):
    """Split ``text`` into words."""
    words = text.split()
    return [w.strip(".,") for w in words]


class Store:
    def put(self, key, value):
        self.items[key] = value
        return value
'''


def _wheel(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def _sdist(path, top, files):
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _fake_pip(archives, calls):
    """A stand-in for pip: copies the archive built for the pin into the destination folder."""
    def pip_download(pin, dest):
        calls.append(str(pin))
        source = archives[str(pin)]
        (dest / source.name).write_bytes(source.read_bytes())
    return pip_download


def _archives(tmp_path):
    built = tmp_path / "built"
    built.mkdir()
    wheel = _wheel(built / "Tiny_Pkg-1.0-py3-none-any.whl", {
        "tiny_pkg/__init__.py": b"",
        "tiny_pkg/core.py": _MODULE.replace(b"words", b"tokens"),  # not a duplicate of the sdist's
        "tiny_pkg/latin.py": b"def g():\n    return '\xe9'\n",  # not UTF-8: skipped
        "tiny_pkg/__pycache__/core.py": _MODULE,  # a skipped directory
        "tiny_pkg-1.0.dist-info/METADATA": b"Name: Tiny-Pkg\n",
    })
    sdist = _sdist(built / "other.lib-2.0.tar.gz", "other.lib-2.0", {
        "src/other/mod.py": _MODULE,
        "tests/test_mod.py": b"def test_parse():\n    words = parse('a b')\n    assert words == ['a', 'b']\n",
        "setup.cfg": b"[metadata]\n",
    })
    return {"Tiny_Pkg==1.0": wheel, "other.lib==2.0": sdist}


def test_archive_files_read_wheels_as_they_are_and_sdists_without_their_top_folder(tmp_path):
    archives = _archives(tmp_path)
    wheel = archive_files(archives["Tiny_Pkg==1.0"])
    assert [p for p, _ in wheel] == ["tiny_pkg/__init__.py", "tiny_pkg/core.py", "tiny_pkg/latin.py"]
    assert dict(wheel)["tiny_pkg/core.py"].startswith(b'"""A module."""')
    assert [p for p, _ in archive_files(archives["other.lib==2.0"])] == ["src/other/mod.py",
                                                                       "tests/test_mod.py"]
    (tmp_path / "x.egg").write_bytes(b"")
    with pytest.raises(InputError, match="not a wheel"):
        archive_files(tmp_path / "x.egg")
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable archive"):
        archive_files(tmp_path / "bad.whl")


def test_pypi_functions_names_repositories_records_hashes_and_reuses_the_cache(tmp_path, monkeypatch):
    archives, calls = _archives(tmp_path), []
    monkeypatch.setattr(pypi, "_pip_download", _fake_pip(archives, calls))
    cache = tmp_path / "cache"
    report, got = pypi_functions(["Tiny_Pkg==1.0", "other.lib==2.0"], cache, minimum=1)
    assert calls == ["Tiny_Pkg==1.0", "other.lib==2.0"]
    assert sorted({f.repository for f in report.functions}) == ["other-lib", "tiny-pkg"]
    assert {(f.repository, f.path, f.qualname) for f in report.functions} == {
        ("tiny-pkg", "tiny_pkg/core.py", "parse"), ("tiny-pkg", "tiny_pkg/core.py", "Store.put"),
        ("other-lib", "src/other/mod.py", "parse"), ("other-lib", "src/other/mod.py", "Store.put"),
        ("other-lib", "tests/test_mod.py", "test_parse")}
    assert [(s.repository, s.path) for s in report.skipped] == [("tiny-pkg", "tiny_pkg/latin.py")]
    assert report.files == 5
    sha = hashlib.sha256(archives["Tiny_Pkg==1.0"].read_bytes()).hexdigest()
    assert got[0].record() == {"pin": "Tiny_Pkg==1.0", "file": "Tiny_Pkg-1.0-py3-none-any.whl",
                               "sha256": sha, "bytes": archives["Tiny_Pkg==1.0"].stat().st_size}
    manifest = json.loads((cache / "manifest.json").read_text())["files"]
    assert manifest["Tiny_Pkg==1.0"]["sha256"] == sha and set(manifest) == {"Tiny_Pkg==1.0",
                                                                            "other.lib==2.0"}

    def no_network(pin, dest):
        raise AssertionError(f"pip called again for {pin}")

    monkeypatch.setattr(pypi, "_pip_download", no_network)
    again, _ = pypi_functions(["Tiny_Pkg==1.0", "other.lib==2.0"], cache, minimum=1)
    assert again.functions == report.functions
    assert pypi_functions(["Tiny_Pkg==1.0", "other.lib==2.0"], cache, minimum=3)[0] \
        .dropped_repositories == {"tiny-pkg": 2}

    (cache / "files" / "Tiny_Pkg-1.0-py3-none-any.whl").write_bytes(b"tampered")
    with pytest.raises(InputError, match="has SHA-256 .* delete the file"):
        download([Pin("Tiny_Pkg", "1.0")], cache)


def test_a_failed_download_names_the_pin_and_pips_last_lines(tmp_path, monkeypatch):
    class Done:
        returncode, stdout = 1, ""
        stderr = "Looking in links\nERROR: No matching distribution found for nosuch==9.9\n"

    monkeypatch.setattr(pypi.subprocess, "run", lambda *a, **k: Done())
    with pytest.raises(EnvironmentProblem, match=r"nosuch==9\.9 \(exit 1\)(.|\n)*No matching"):
        download([Pin("nosuch", "9.9")], tmp_path)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(("line", "message"), [
    ("requests>=2.0", r"list.yaml:5: 'requests>=2.0' is not a pin"),
    ("requests", "is not a pin; write exactly name==version"),
    ("requests[socks]==2.32.3", "is not a pin"),
    ("Requests==1.0", r"list.yaml:5: 'Requests==1.0' names requests again \(first at .*list.yaml:4\)"),
    ("{a: 1}", "list.yaml:5: expected a name==version string, found a mapping"),
])
def test_bad_pins_name_the_file_line_and_entry(tmp_path, line, message):
    path = tmp_path / "list.yaml"
    path.write_text(f"# header\ncriteria: small\npackages:\n  - requests==2.32.3\n  - {line}\n",
                    encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_pins(path)


def test_pinned_list_shape_errors(tmp_path):
    path = tmp_path / "list.yaml"
    for text, message in [("packages: []\n", "non-empty list"), ("pins: [a==1]\n", "unknown key"),
                          ("- a==1\n", "expected a mapping")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_pins(path)
    with pytest.raises(InputError, match="cannot read the pinned list"):
        read_pins(tmp_path / "missing.yaml")
    assert parse_pins(["ruamel.yaml==0.18.6"])[0].repository == "ruamel-yaml"


def test_shipped_list_and_experiment_config():
    pins = read_pins(CONFIGS / "corpus" / "pypi100.yaml")
    assert len(pins) >= 100
    cfg = load_experiment(ExperimentConfig, CONFIGS, "phase0_pypi100")
    assert cfg.corpus.source == "pypi" and cfg.corpus.packages == "corpus/pypi100.yaml"
    assert cfg.corpus.cap == 2000 and cfg.corpus.minimum == 50
    with pytest.raises(ConfigError, match="packages must name a pinned list"):
        load_experiment(ExperimentConfig, CONFIGS, "phase0_pypi100", ["corpus.packages="])


def test_prepare_with_a_pinned_list_records_versions_and_file_hashes(tmp_path, monkeypatch, capsys):
    from jepa.prepare import main
    from jepa.store import CorpusIndex

    archives, calls = _archives(tmp_path), []
    monkeypatch.setattr(pypi, "_pip_download", _fake_pip(archives, calls))
    pins = tmp_path / "pins.yaml"
    pins.write_text("packages:\n  - Tiny_Pkg==1.0\n  - other.lib==2.0\n", encoding="utf-8")
    data = tmp_path / "data"
    args = ["--exp", "phase0_pypi100", "--data-dir", str(data), "--set", f"corpus.packages={pins}",
            "--set", "corpus.minimum=1", "--set", "corpus.min_body_lines=1", "--skip", "teacher"]
    assert main(args) == 0
    assert "download" in capsys.readouterr().out and len(calls) == 2
    with CorpusIndex.open(data / "corpus.sqlite") as index:
        repos = {r["name"]: r for r in index.repositories()}
        files = index.meta()["counts"]["pypi_files"]
    assert {n: (r["source"], r["version"]) for n, r in repos.items()} == {
        "other-lib": ("pypi", "2.0"), "tiny-pkg": ("pypi", "1.0")}
    assert files["tiny-pkg"]["sha256"] == hashlib.sha256(
        archives["Tiny_Pkg==1.0"].read_bytes()).hexdigest()
    assert (data / "pypi" / "files" / "other.lib-2.0.tar.gz").is_file()
