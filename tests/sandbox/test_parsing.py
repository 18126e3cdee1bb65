"""The bounded YAML and JSON loaders (sandbox/parsing.py): bombs refused with file, line and reason;
well-formed documents read exactly as PyYAML / json read them; and, fuzzed, nothing but the documented
`DocumentError` ever escapes and nothing returned is bigger than the limits once its aliases are
followed."""

from __future__ import annotations

import json
import string
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datalabs.sandbox import parsing
from datalabs.sandbox.parsing import DocumentError, DocumentTooLarge, Limits

LOL = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
SMALL = Limits(max_bytes=20_000, max_depth=20, max_aliases=200, max_nodes=5_000, max_chars=50_000)


def laughs(levels: int = 9) -> str:
    lines = [f"l0: &l0 {LOL}"]
    lines += [f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "title: t\n" + "\n".join(lines) + "\n"


def expanded(data, cap: int) -> tuple[int, int, int]:
    """(values, characters, depth) of loaded data with every shared object counted each time it is
    reached, as a serialiser walks it; stops past `cap` values (so a bomb cannot hang the test)."""
    values = chars = depth = 0
    stack = [(data, 1)]
    while stack and values <= cap:
        item, level = stack.pop()
        values, depth = values + 1, max(depth, level)
        if isinstance(item, dict):
            stack.extend((x, level + 1) for pair in item.items() for x in pair)
        elif isinstance(item, list | tuple | set):
            stack.extend((x, level + 1) for x in item)
        else:
            chars += len(str(item))
    return values, chars, depth


# ---- YAML: the bombs --------------------------------------------------------------------------------


def test_billion_laughs_is_refused_with_its_line():
    text = laughs()
    assert len(text) < 600
    with pytest.raises(DocumentTooLarge) as err:
        parsing.load_yaml(text, "datalab-meta.yml")
    e = err.value
    assert e.status == 413 and e.code == "too_many_aliases"
    assert e.file == "datalab-meta.yml" and 2 <= e.line <= 10, e.message
    assert e.message.startswith(f"datalab-meta.yml:{e.line}:") and "aliases" in e.message
    assert e.located_reason.startswith(f"line {e.line}, column ")


def test_a_few_laughs_are_fine():
    data = parsing.load_yaml(laughs(levels=3), "x.yml")
    assert data == yaml.safe_load(laughs(levels=3))


def test_merge_keys_count_as_what_they_merge():
    lines = ["a0: &a0 {" + ", ".join(f"k{i}: {i}" for i in range(9)) + "}"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 7)]
    lines += ["m: {<<: *a6}"]
    with pytest.raises(DocumentTooLarge):
        parsing.load_yaml("\n".join(lines), "m.yml")


def test_one_long_string_aliased_many_times():
    text = f"s: &s {'x' * 5000}\nl: [" + ", ".join(["*s"] * 100) + "]\n"
    with pytest.raises(DocumentTooLarge, match="characters"):
        parsing.load_yaml(text, "s.yml", SMALL)


def test_recursive_alias_is_refused():
    with pytest.raises(DocumentError, match="recursive alias") as err:
        parsing.load_yaml("a: 1\nb: &a\n  - x\n  - *a\n", "r.yml")
    assert err.value.line == 3  # the composer keeps no alias positions: the entry before it


def test_too_many_aliases():
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 300) + "]\n"
    with pytest.raises(DocumentTooLarge, match="more than 200 aliases"):
        parsing.load_yaml(text, "x.yml", SMALL)


@pytest.mark.parametrize(
    "text", ["[" * 30 + "]" * 30, "".join("  " * i + "k:\n" for i in range(30)) + "  " * 30 + "v"]
)
def test_too_deep(text):
    with pytest.raises(DocumentTooLarge, match="nested deeper than 20") as err:
        parsing.load_yaml(text, "d.yml", SMALL)
    assert err.value.code == "too_deep"


def test_deep_through_aliases():
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 25)]
    with pytest.raises(DocumentTooLarge, match="aliases followed"):
        parsing.load_yaml("\n".join(lines), "d.yml", SMALL)


def test_bytes_and_encoding():
    with pytest.raises(DocumentTooLarge, match="larger than 20,000 bytes"):
        parsing.load_yaml("a: " + "x" * 20_000, "big.yml", SMALL)
    with pytest.raises(DocumentTooLarge):
        parsing.load_yaml("a: " + "é" * 12_000, "big.yml", SMALL)  # 12,000 characters, 24,000 bytes
    with pytest.raises(DocumentError, match="not UTF-8") as err:
        parsing.load_yaml(b"a: \xff\xfe", "bin.yml")
    assert err.value.code == "invalid_encoding"


def test_read_bounded_reads_no_more_than_the_limit(tmp_path):
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: " + b"x" * 30_000)
    with pytest.raises(DocumentTooLarge):
        parsing.read_yaml(path, "big.yml", SMALL)
    with pytest.raises(DocumentError, match="cannot read"):
        parsing.read_yaml(tmp_path / "missing.yml", "missing.yml")


# ---- YAML: errors read like the rest of the platform's --------------------------------------------


def test_syntax_error_has_line_and_column():
    with pytest.raises(DocumentError) as err:
        parsing.load_yaml("a: 1\nb: [unclosed\n", "bad.yml")
    e = err.value
    assert (e.code, e.kind, e.line, e.column) == ("invalid_yaml", "not valid YAML", 3, 1)
    assert e.message.startswith("bad.yml:3:1: not valid YAML")
    assert e.located_reason.startswith("not valid YAML: line 3, column 1: ")
    with pytest.raises(DocumentError) as err:  # no final newline: the end of the last line, not line 2
        parsing.load_yaml("a: [", "bad.yml")
    assert (err.value.line, err.value.column) == (1, 5)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n---\nb: 2\n",  # two documents
        "n: " + "9" * 10_000,  # an int Python refuses to convert
        "!!python/object:os.system x",  # not a safe tag
        "a: *nowhere",  # undefined alias
        "? [a, b]\n: x\n",  # unhashable key
        "t: !!timestamp 2024-99-99",
    ],
)
def test_bad_documents_raise_only_document_error(text):
    with pytest.raises(DocumentError):
        parsing.load_yaml(text, "bad.yml")


def test_good_documents_read_as_pyyaml_reads_them():
    text = "title: x\nkeywords: [a, b]\ncreator:\n  name: Ada\nn: 3\nd: 2024-01-01\n"
    text += "base: &b {k: 1}\nm: {<<: *b}\n"
    assert parsing.load_yaml(text, "ok.yml") == yaml.safe_load(text)
    assert parsing.load_yaml("", "empty.yml") is None


# ---- JSON ---------------------------------------------------------------------------------------------


def test_json_bounds():
    assert parsing.load_json('{"a": [1, 2, {"b": null}]}', "x.json") == {"a": [1, 2, {"b": None}]}
    with pytest.raises(DocumentTooLarge, match="nested deeper"):
        parsing.load_json("[" * 30 + "]" * 30, "x.json", SMALL)
    with pytest.raises(DocumentTooLarge, match="nested deeper"):
        parsing.load_json("[" * 100_000 + "]" * 100_000, "x.json", Limits(max_bytes=10**6))
    with pytest.raises(DocumentTooLarge, match="more than 5000 values"):
        parsing.load_json("[" + ",".join(["1"] * 6000) + "]", "x.json", SMALL)
    with pytest.raises(DocumentError) as err:
        parsing.load_json('{"a": 1,\n "b": }', "m.json")
    assert (err.value.line, err.value.kind) == (2, "not valid JSON") and err.value.message.startswith(
        "m.json:2:"
    )
    with pytest.raises(DocumentError):
        parsing.load_json("9" * 10_000, "n.json")


# ---- fuzzing ------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _holds_limits(data, limits: Limits) -> None:
    values, chars, depth = expanded(data, limits.max_nodes * 2)
    # Scalars print at most a few characters more than they were written (`~` is None, ints lose `_`).
    assert values <= limits.max_nodes and chars <= limits.max_chars * 2 + 5 * values
    assert depth <= limits.max_depth + 1


@FUZZ
@given(st.text(alphabet=string.printable + "&*!|>-?:[]{},#'\"é", max_size=400))
def test_fuzz_yaml_text(text):
    try:
        data = parsing.load_yaml(text, "fuzz.yml", SMALL)
    except DocumentError as exc:
        assert exc.file == "fuzz.yml" and exc.message
        return
    _holds_limits(data, SMALL)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_yaml_bytes(data):
    try:
        result = parsing.load_yaml(data, "fuzz.yml", SMALL)
    except DocumentError as exc:
        assert exc.file == "fuzz.yml"
        return
    _holds_limits(result, SMALL)


@st.composite
def alias_bombs(draw):
    """Documents built like bombs: levels of anchors, each a list, map or merge of the previous ones,
    with random fan-out, long strings, and now and then a forward or self reference."""
    levels = draw(st.integers(1, 12))
    lines = [f"a0: &a0 {draw(st.sampled_from(['x', 'y' * 3000, '[1, 2]', '{k: v}']))}"]
    for i in range(1, levels):
        fan = draw(st.integers(1, 12))
        refs = [f"*a{draw(st.integers(max(0, i - 3), i))}" for _ in range(fan)]  # *a{i}: recursive
        shape = draw(st.sampled_from(["list", "map", "merge"]))
        if shape == "list":
            body = "[" + ", ".join(refs) + "]"
        elif shape == "map":
            body = "{" + ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) + "}"
        else:
            body = "{<<: [" + ", ".join(r for r in refs if r != f"*a{i}") + "], z: 1}" if fan > 1 else "{}"
        lines.append(f"a{i}: &a{i} {body}")
    return "\n".join(lines) + "\n"


@FUZZ
@given(alias_bombs())
def test_fuzz_alias_bombs_stay_within_limits(text):
    tracemalloc.start()
    try:
        data = parsing.load_yaml(text, "bomb.yml", SMALL)
    except DocumentError:
        data = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"loading took {peak / 2**20:.0f} MiB"
    if data is not None:
        _holds_limits(data, SMALL)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=60,
)


@FUZZ
@given(json_values)
def test_fuzz_json_reads_what_json_writes(value):
    text = json.dumps(value)
    try:
        assert parsing.load_json(text, "v.json", SMALL) == json.loads(text)
    except DocumentTooLarge:
        assert expanded(value, 10**6)[2] > SMALL.max_depth or len(text) > SMALL.max_bytes


@FUZZ
@given(st.text(alphabet='[]{}",:0123456789.eE-+ truefalsn\\u', max_size=300))
def test_fuzz_json_text(text):
    try:
        data = parsing.load_json(text, "f.json", SMALL)
    except DocumentError:
        return
    values, _, depth = expanded(data, SMALL.max_nodes * 2)
    assert values <= SMALL.max_nodes and depth <= SMALL.max_depth
