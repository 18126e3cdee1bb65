"""Sources: uploads, zips (zip-slip, absolute paths, symlinks, bombs, sizes), git clones, workspace
folders; and the metadata check with file, key and line."""

from __future__ import annotations

import io
import subprocess
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalabs.builder import meta
from datalabs.builder.sources import Limits, Staging, copy_tree, extract_zip, git_clone
from datalabs.catalogue.loader import LoadError
from datalabs.catalogue.schema import DatalabMeta
from datalabs.errors import DatalabsError, Invalid, TooLarge
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


# ---- archives an attacker shapes -------------------------------------------------------------------


def test_central_directory_is_refused_before_it_is_read(tmp_path):
    """A million entries declared in the end record: refused from the end record alone, in no time and
    without building the million `ZipInfo`s zipfile would (that would cost ~500 MB)."""
    from tests.security.test_parsing_bombs import many_entries_zip

    data = many_entries_zip(1_000_000)
    started = time.monotonic()
    with pytest.raises(TooLarge, match="more than 5000 entries") as err:
        extract_zip(staging(tmp_path), io.BytesIO(data))
    assert err.value.code == "too_many_files" and time.monotonic() - started < 1


def test_duplicate_and_conflicting_entries_are_refused_naming_them(tmp_path):
    for i, entries in enumerate([[("a.txt", b"1"), ("a.txt", b"2")], [("a", b"file"), ("a/b.txt", b"x")]]):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in entries:
                zf.writestr(name, data)
        with pytest.raises(Invalid, match=f"'{entries[1][0]}': cannot be written"):
            extract_zip(Staging(tmp_path / f"s{i}"), io.BytesIO(buf.getvalue()))


def test_encrypted_or_corrupt_members(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.txt", b"hello " * 1000)
    data = bytearray(buf.getvalue())
    data[6] |= 0x1  # the local header says "encrypted"
    data[40:60] = b"\xff" * 20  # and its deflate stream is garbage
    with pytest.raises(Invalid, match="'a.txt': cannot unpack"):
        extract_zip(staging(tmp_path), io.BytesIO(bytes(data)))


ZIP_NAMES = st.text(alphabet="ab./\\:_-é\x00 ", min_size=1, max_size=12)


@st.composite
def zips(draw) -> bytes:
    """Zips with hostile names, duplicates, folders, sizes and compression, sometimes mangled."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for _ in range(draw(st.integers(0, 8))):
            info = zipfile.ZipInfo(draw(ZIP_NAMES))
            info.compress_type = draw(
                st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
            )
            info.external_attr = draw(st.sampled_from([0, 0o100644 << 16, 0o120777 << 16, 0o040755 << 16]))
            zf.writestr(info, draw(st.sampled_from([b"", b"x" * 3000, bytes(range(256)), bytes(200_000)])))
    data = bytearray(buf.getvalue())
    for at, byte in draw(
        st.lists(st.tuples(st.integers(0, max(0, len(data) - 1)), st.integers(0, 255)), max_size=4)
    ):
        if data:
            data[at] = byte
    return bytes(data)


FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_LIMITS = Limits(max_files=5, max_file_bytes=100_000, max_total_bytes=150_000, max_ratio=20)


def _extract_or_refuse(root, data: bytes) -> None:
    """extract_zip succeeds within the limits, every file inside the root, or refuses with a domain error
    (nothing else escapes) and leaves nothing outside."""
    s = Staging(root / "stage", FUZZ_LIMITS)
    try:
        extract_zip(s, io.BytesIO(data))
    except DatalabsError as exc:
        assert exc.status in (413, 422) and exc.message and str(root) not in exc.message
        return
    files = [p for p in s.root.rglob("*") if not p.is_dir()]
    assert all(p.is_file() and not p.is_symlink() for p in files)
    assert all(p.resolve().is_relative_to(s.root.resolve()) for p in files)
    assert len(files) <= FUZZ_LIMITS.max_files
    assert sum(p.stat().st_size for p in files) <= FUZZ_LIMITS.max_total_bytes
    assert sorted(p.name for p in root.iterdir()) == ["stage"]


@FUZZ
@given(data=zips())
def test_fuzz_zip_extractor(tmp_path_factory, data):
    _extract_or_refuse(tmp_path_factory.mktemp("zip"), data)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_fuzz_zip_extractor_on_bytes(tmp_path_factory, data):
    _extract_or_refuse(tmp_path_factory.mktemp("bytes"), b"PK\x03\x04" + data if data[:1] == b"P" else data)
