"""Schedules in configs: load_schedule takes specs, mappings and files; dump_schedule writes."""

import json
from pathlib import Path

import pytest
import yaml

from lrkit.errors import UserError
from lrkit.schedules import (
    ScheduleSyntaxError,
    clip,
    constant,
    cosine,
    dump_schedule,
    load_schedule,
    repeat,
    stretch,
    warmup,
)

SCHEDULE = warmup("5%") >> cosine(to=0.01)
SPEC = "warmup(5%) >> cosine(to=0.01)"


def test_schedule_is_returned_as_is():
    assert load_schedule(SCHEDULE) is SCHEDULE


def test_number_is_a_constant():
    assert load_schedule(0.5) == constant(0.5)


def test_bool_is_not_a_number():
    with pytest.raises(ValueError, match="got True"):
        load_schedule(True)


def test_text_spec_is_parsed():
    assert load_schedule(SPEC) == SCHEDULE


def test_bad_text_spec_raises_the_syntax_error():
    with pytest.raises(ScheduleSyntaxError) as info:
        load_schedule("warmup(5%) >> cosin")
    assert info.value.column == 15


def test_to_dict_mapping_is_built():
    assert load_schedule(SCHEDULE.to_dict()) == SCHEDULE


def test_schedule_key_holds_a_text_spec():
    assert load_schedule({"schedule": SPEC}) == SCHEDULE


def test_schedule_key_may_hold_to_dict_data():
    assert load_schedule({"schedule": SCHEDULE.to_dict()}) == SCHEDULE


def test_schedule_key_beside_other_keys_is_an_error():
    with pytest.raises(ValueError, match="either 'schedule'.*got also 'steps'"):
        load_schedule({"schedule": SPEC, "steps": 10})


def test_type_beside_schedule_is_to_dict_data_whose_field_is_named_schedule():
    with pytest.raises(ValueError, match="cosine has no argument 'schedule'"):
        load_schedule({"schedule": SPEC, "type": "cosine"})


def test_mapping_without_type_or_schedule_is_an_error():
    with pytest.raises(ValueError, match="a mapping with 'type'.*or 'schedule'"):
        load_schedule({"kind": "cosine"})


def test_list_is_an_error_naming_what_is_accepted():
    with pytest.raises(ValueError, match="a text spec like"):
        load_schedule([SPEC])


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_dump_then_load_gives_the_same_schedule(tmp_path, suffix):
    path = dump_schedule(SCHEDULE, tmp_path / f"s{suffix}")
    assert load_schedule(path) == SCHEDULE
    assert load_schedule(str(path)) == SCHEDULE


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_dump_as_text_writes_the_spec(tmp_path, suffix):
    path = dump_schedule(SCHEDULE, tmp_path / f"s{suffix}", text=True)
    data = json.loads(path.read_text()) if suffix == ".json" else yaml.safe_load(path.read_text())
    assert data == {"schedule": SPEC}
    assert load_schedule(path) == SCHEDULE


def test_dump_writes_to_dict_data_by_default(tmp_path):
    path = dump_schedule(SCHEDULE, tmp_path / "s.json")
    assert json.loads(path.read_text()) == SCHEDULE.to_dict()


def test_dump_accepts_a_text_spec(tmp_path):
    path = dump_schedule(SPEC, tmp_path / "s.yaml")  # type: ignore[arg-type]
    assert load_schedule(path) == SCHEDULE


def test_dump_to_an_unknown_extension_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.json, \.yaml or \.yml"):
        dump_schedule(SCHEDULE, tmp_path / "s.toml")
    assert not (tmp_path / "s.toml").exists()


def test_hand_written_yaml_with_a_spec_loads(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("schedule: warmup(5%) >> cosine(to=0.01)\n")
    assert load_schedule(str(path)) == SCHEDULE


def test_hand_written_yaml_in_to_dict_form_loads(tmp_path):
    path = tmp_path / "lr.yml"
    path.write_text("type: cosine\nsteps: 100\nto: 0.1\n")
    assert load_schedule(path) == cosine(100, to=0.1)


def test_yaml_exponent_read_as_a_string_gets_a_hint(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("type: cosine\nto: 1e-3\n")
    with pytest.raises(ValueError, match=r"got '1e-3' \(YAML reads 1e-3 as a string: write 1.0e-3"):
        load_schedule(path)


def test_yaml_file_holding_only_a_spec_loads(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("'warmup(5%) >> cosine(to=0.01)'\n")
    assert load_schedule(path) == SCHEDULE


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match="evil.yaml' is not valid YAML"):
        load_schedule(path)


def test_missing_file_is_a_clear_user_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match="schedule file '.*nope.yaml' does not exist"):
        load_schedule(str(missing))


def test_directory_is_a_clear_error(tmp_path):
    folder = tmp_path / "dir.json"
    folder.mkdir()
    with pytest.raises(ValueError, match="dir.json' is a directory"):
        load_schedule(folder)


def test_path_object_with_another_extension_is_an_error(tmp_path):
    path = tmp_path / "lr.txt"
    path.write_text(SPEC)
    with pytest.raises(ValueError, match=r"lr.txt' must end in \.json, \.yaml or \.yml"):
        load_schedule(path)


def test_invalid_json_names_the_file_and_the_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"type": "cosine",, }')
    with pytest.raises(ValueError, match=r"bad.json' is not valid JSON: .*line 1 column 19"):
        load_schedule(path)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("schedule: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml' is not valid YAML"):
        load_schedule(path)


def test_empty_file_is_an_error_saying_what_it_should_hold(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ValueError, match="empty.yaml' is empty; expected a mapping with 'type'"):
        load_schedule(path)


def test_unknown_type_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "lr.json"
    path.write_text(json.dumps({"type": "cosin", "steps": 10}))
    with pytest.raises(
        ValueError, match=r"schedule file '.*lr.json', line 1: unknown schedule 'cosin'"
    ):
        load_schedule(path)


def test_bad_spec_in_a_file_names_the_file_and_the_column(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text("schedule: warmup(5%) >> cosine(too=0.1)\n")
    with pytest.raises(ValueError) as info:
        load_schedule(path)
    message = str(info.value)
    assert message.startswith(f"schedule file '{path}', line 1: unknown argument 'too' for cosine")
    assert "at column 22" in message


def test_unreadable_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "lr.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="lr.json' cannot be read"):
        load_schedule(Path(path))


# -- dump and load agree, and hostile files get a clear error naming the file and line --------
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(
    "schedule",
    [clip(cosine(10), lo=0.1), repeat(cosine(10), 3), stretch(warmup(10) >> cosine(90), 1000)],
    ids=["clip", "repeat", "stretch"],
)
def test_dump_then_load_gives_the_schedule_whose_field_is_named_schedule(
    tmp_path, suffix, schedule
):
    # fails on 21f979a: the field 'schedule' was read as the text-form key and refused
    path = dump_schedule(schedule, tmp_path / f"s{suffix}")
    assert load_schedule(path) == schedule


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_FILES = {
    # fails on 21f979a: TypeError: unhashable type: 'dict'
    "a type that is a mapping": (
        "lr.yaml",
        "type: {}\n",
        "', line 1: a schedule's 'type' must be a name such as 'cosine', got {}",
    ),
    # fails on 21f979a: TypeError: '<' not supported between 'int' and 'str'
    "keys that are numbers": (
        "lr.yaml",
        "type: cosine\n1: 2\n3: 4\n",
        "', line 1: cosine arguments are named by text, got the key 1",
    ),
    # fails on 21f979a: TypeError: MultiStep.__init__() missing 1 required positional argument
    "a required argument left out": (
        "lr.yaml",
        "type: seq\nparts:\n  - type: cosine\n    steps: 10\n  - type: multistep\n",
        "', line 5: multistep needs milestones; it takes: milestones, gamma",
    ),
    "a required argument left out in JSON": (
        "lr.json",
        '{"type": "seq", "parts": [\n  {"type": "cosine", "steps": 10},\n  {"type": "multistep"}]}',
        "', line 3: multistep needs milestones; it takes: milestones, gamma",
    ),
    "a text spec on its line": (
        "lr.yaml",
        "# lr\n\nschedule: warmup(5%) >> cosin\n",
        "', line 3: unknown schedule 'cosin' at column 15 (did you mean 'cosine'?)",
    ),
    # fails on 21f979a: memory grew by about 1 GB (9 levels of 9 aliases)
    "an alias bomb": (
        "lr.yaml",
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(
            f"{x}: &{x} [{', '.join(['*' + p] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi")
        )
        + "type: piecewise_constant\nboundaries: *i\n",
        "' is not valid YAML: aliases (*name) are not accepted in a schedule file",
    ),
    "nesting too deep for a schedule": (
        "lr.json",
        '{"type": "clip", "schedule": ' * 100 + '{"type": "cosine"}' + "}" * 100,
        "', line 1: a schedule nested more than 64 levels deep is not accepted",
    ),
    "nesting too deep for the reader": (
        "lr.json",
        "[" * 100_000 + "]" * 100_000,
        "' is nested too deeply to be a schedule",
    ),
    "a text spec with a number too large": (
        "lr.yaml",
        "schedule: constant(" + "9" * 400 + ")\n",
        "', line 1: number at column 10 is too large (400 characters)",
    ),
}


@pytest.mark.parametrize("name, text, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_a_user_error_naming_the_file_and_line(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(UserError) as info:
        load_schedule(path)
    assert str(info.value).splitlines()[0].startswith(f"schedule file '{path}{message}")


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path):
    # fails on 21f979a: a 50 MB string was read, then spent its memory in the did-you-mean search
    path = write(tmp_path, "lr.yaml", "schedule: " + "x" * 2_000_000 + "\n")
    with pytest.raises(UserError, match=r"is 2,000,011 bytes; a schedule file may hold at most"):
        load_schedule(path)


def test_a_huge_name_in_data_gives_a_short_message_quickly():
    import time

    begin = time.perf_counter()
    for data in ({"type": "x" * 5_000_000}, {"schedule": "x" * 200_000}):
        with pytest.raises(ValueError) as info:
            load_schedule(data)
        assert len(str(info.value).splitlines()[0]) < 500
    assert time.perf_counter() - begin < 5


def test_shared_lists_in_data_are_counted_at_every_use_and_refused_past_the_limit():
    import time

    nested: list = [1] * 9
    for _ in range(8):  # nine levels of nine references to one list: 9**9 values if expanded
        nested = [nested] * 9
    begin = time.perf_counter()
    with pytest.raises(ValueError, match="more than 100,000 values and parts is not accepted"):
        load_schedule({"type": "piecewise_constant", "boundaries": nested, "values": [1, 2]})
    assert time.perf_counter() - begin < 5
