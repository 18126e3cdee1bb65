"""Sources: uploads, zips (zip-slip, absolute paths, symlinks, bombs, sizes), git clones, workspace
folders; and the metadata check with file, key and line."""

from __future__ import annotations

import io
import subprocess
import zipfile

import pytest

from datalabs.builder import meta
from datalabs.builder.sources import Limits, Staging, copy_tree, extract_zip, git_clone
from datalabs.catalogue.loader import LoadError
from datalabs.catalogue.schema import DatalabMeta
from datalabs.errors import Invalid, TooLarge
from tests.builder.support import META, evil_zip, make_sources, zip_of


def staging(tmp_path, **limits) -> Staging:
    return Staging(tmp_path / "box" / "stage", Limits(**limits))


def outside_untouched(tmp_path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box"]
    assert not (tmp_path / "box" / "evil.txt").exists()


@pytest.mark.parametrize(
    "name, why",
    [
        ("../evil.txt", "zip-slip"),
        ("a/../../evil.txt", "zip-slip"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("..\\evil.txt", "zip-slip"),
    ],
)
def test_unsafe_zip_names_are_refused_naming_the_entry(tmp_path, name, why):
    s = staging(tmp_path)
    data = evil_zip({"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(Invalid) as err:
        extract_zip(s, io.BytesIO(data))
    assert name in err.value.message and why in err.value.message
    assert not (s.root / "ok.txt").exists()  # every name is checked before anything is written
    outside_untouched(tmp_path)


def test_symlinks_in_zips_are_refused(tmp_path):
    s = staging(tmp_path)
    with pytest.raises(Invalid) as err:
        extract_zip(s, io.BytesIO(evil_zip({"a.txt": b"x"}, symlink="link")))
    assert "'link' is a symbolic link" in err.value.message


def test_zip_bombs_are_refused_by_ratio_and_by_total(tmp_path):
    bomb = evil_zip({"bomb.bin": b"\0" * (20 * 2**20)})  # ~1000:1
    with pytest.raises(TooLarge) as err:
        extract_zip(staging(tmp_path), io.BytesIO(bomb))
    assert "bomb.bin" in err.value.message and "zip bomb" in err.value.message
    many = evil_zip({f"f{i}.bin": bytes(range(256)) * 4096 for i in range(3)}, compression=zipfile.ZIP_STORED)
    with pytest.raises(TooLarge) as err:
        extract_zip(Staging(tmp_path / "box" / "s2", Limits(max_total_bytes=2 * 2**20)), io.BytesIO(many))
    assert "zip bomb" in err.value.message


def test_lying_zip_headers_are_caught_while_writing(tmp_path):
    data = bytearray(evil_zip({"big.txt": b"a" * 5000}, compression=zipfile.ZIP_STORED))
    s = staging(tmp_path, max_file_bytes=1000)
    with pytest.raises(TooLarge) as err:
        extract_zip(s, io.BytesIO(bytes(data)))
    assert "big.txt" in err.value.message


def test_oversize_file_and_too_many_files(tmp_path):
    with pytest.raises(TooLarge, match="'huge.bin' is larger than"):
        s = Staging(tmp_path / "a", Limits(max_file_bytes=2**20))
        s.write("huge.bin", io.BytesIO(b"x" * (2**20 + 1)))
    with pytest.raises(TooLarge, match="more than 2 entries"):
        extract_zip(
            Staging(tmp_path / "b", Limits(max_files=2)), io.BytesIO(evil_zip({"1": b"", "2": b"", "3": b""}))
        )


def test_not_a_zip(tmp_path):
    with pytest.raises(Invalid, match="not a valid zip"):
        extract_zip(staging(tmp_path), io.BytesIO(b"PK no really"))


def test_good_zip_unpacks(tmp_path):
    src = make_sources(tmp_path / "src")
    s = staging(tmp_path)
    extract_zip(s, io.BytesIO(zip_of(src)))
    assert (s.root / "datalab-meta.yml").read_text() == (src / "datalab-meta.yml").read_text()
    assert list((s.root / "wheels").glob("*.whl"))


def test_workspace_folder_with_a_symlink_is_refused(tmp_path):
    src = make_sources(tmp_path / "src")
    (src / "secret").symlink_to("/etc/passwd")
    with pytest.raises(Invalid, match="'secret' in my folder is a symbolic link"):
        copy_tree(staging(tmp_path), src, "my folder")


def git(*args, cwd=None):
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={
            "PATH": "/usr/bin:/bin",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@x",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@x",
            "HOME": str(cwd or "/tmp"),
        },
    )


def bare_repo(tmp_path, src) -> str:
    git("init", "-q", "-b", "main", str(src), cwd=tmp_path)
    git("add", ".", cwd=src)
    git("commit", "-q", "-m", "first", cwd=src)
    bare = tmp_path / "repo.git"
    git("clone", "-q", "--bare", str(src), str(bare), cwd=tmp_path)
    return str(bare)


def test_git_clone_of_a_local_repository(tmp_path):
    url = bare_repo(tmp_path, make_sources(tmp_path / "src"))
    s = staging(tmp_path)
    commit = git_clone(s, url, allow_local=True)
    assert len(commit) == 40
    assert (s.root / "analysis.ipynb").is_file() and not (s.root / ".git").exists()


def test_git_refusals(tmp_path):
    with pytest.raises(Invalid, match="not a git URL"):
        git_clone(staging(tmp_path), "/some/local/repo")  # local paths only when the operator allows
    with pytest.raises(Invalid, match="not a git URL"):
        git_clone(Staging(tmp_path / "x"), "--upload-pack=evil")
    with pytest.raises(Invalid, match="cannot clone"):
        git_clone(Staging(tmp_path / "y"), str(tmp_path / "nothing.git"), allow_local=True)


BASE = DatalabMeta.model_validate(
    {"name": "jupyterlab", "title": "J", "version": "1", "runtime": {"kind": "web", "command": ["x"]}}
)


def test_meta_problems_name_file_key_and_line(tmp_path):
    src = make_sources(tmp_path / "src")
    (src / "datalab-meta.yml").write_text("title: T\nabstract: A\nkeywords: {a: 1}\n")
    with pytest.raises(LoadError) as err:
        meta.validate(src, "tiny", "0.1.0-0", BASE)
    (problem,) = err.value.problems
    assert (problem.path, problem.key) == ("datalab-meta.yml", "keywords") and "line 3" in problem.reason
    (src / "datalab-meta.yml").write_text("title: [unclosed\n")
    with pytest.raises(LoadError, match="not valid YAML: line"):
        meta.validate(src, "tiny", "0.1.0-0", BASE)
    (src / "datalab-meta.yml").unlink()
    with pytest.raises(LoadError, match="no datalab-meta.yml"):
        meta.validate(src, "tiny", "0.1.0-0", BASE)


def test_meta_inherits_the_base_runtime_and_recipe_is_normalised(tmp_path):
    src = make_sources(tmp_path / "src")
    m = meta.validate(src, "tiny", "0.1.0-0", BASE)
    assert m.runtime.command == ["x"] and m.version == "0.1.0-0" and m.distribution.license == "MIT"
    assert meta.base_version({"version": "0.1.0"}) == "0.1.0" and meta.base_version({}) == "0.1.0"
    (src / "requirements.txt").write_text("# c\n\n  numpy   >=1   # why\n")
    assert meta.recipe(src).requirements == ["numpy >=1"]
    assert META  # the support module's metadata is the one validated above
