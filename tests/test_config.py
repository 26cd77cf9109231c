from dataclasses import dataclass

import pytest

from lib.config import Config, ConfigError, check_parameters, expand, read_yaml
from lib.models.conv_text import ConvTextConfig


@dataclass(frozen=True)
class Toy(Config):
    width: int = 4
    rate: float = 0.1
    name: str = "a"
    sizes: int | list[int] = 1
    clip: float | None = None

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


def test_load_accepts_valid_and_int_for_float():
    t = Toy.load({"width": 8, "rate": 1, "sizes": [1, 2], "clip": 0.5})
    assert (t.width, t.rate, t.sizes, t.clip) == (8, 1, [1, 2], 0.5)


def test_unknown_key_is_named_with_allowed_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['widht'\]; allowed \['clip', 'name', 'rate', 'sizes', 'width'\]"):
        Toy.load({"widht": 3})


@pytest.mark.parametrize(
    "raw, pattern",
    [
        ({"width": "8"}, r"Toy\.width = '8' \(str\); expected int"),
        ({"width": 2.5}, r"Toy\.width = 2\.5 .*expected int"),
        ({"width": True}, r"Toy\.width = True .*expected int"),
        ({"sizes": [1, "x"]}, r"Toy\.sizes .*expected int \| list\[int\]"),
        ({"rate": None}, r"Toy\.rate = None"),
    ],
)
def test_wrong_type_names_key_and_expected_type(raw, pattern):
    with pytest.raises(ConfigError, match=pattern):
        Toy.load(raw)


def test_range_check_is_a_config_error():
    with pytest.raises(ConfigError, match="width must be >= 1"):
        Toy.load({"width": 0})


def test_configs_are_frozen():
    with pytest.raises(Exception):
        Toy.load({}).width = 3


def test_model_config_validation_names_the_key():
    with pytest.raises(ConfigError, match=r"dilation: 5 values \[1, 2, 3, 4, 5\] for 6 layers"):
        ConvTextConfig.load({"layers": 6, "dilation": [1, 2, 3, 4, 5]})
    with pytest.raises(ConfigError, match="kernel_size must be odd"):
        ConvTextConfig.load({"kernel_size": 8})


def test_expand_grid_and_list():
    runs = expand([{"layers": 6}, {"grid": {"layers": [8, 12], "kernel_size": [9, 11]}}])
    assert runs == [
        {"layers": 6},
        {"layers": 8, "kernel_size": 9}, {"layers": 8, "kernel_size": 11},
        {"layers": 12, "kernel_size": 9}, {"layers": 12, "kernel_size": 11},
    ]
    # a list value inside a grid is one value (a per-layer dilation), not expanded further
    assert expand({"grid": {"dilation": [[1, 2], 3]}}) == [{"dilation": [1, 2]}, {"dilation": 3}]


@pytest.mark.parametrize("bad", [{"grid": {"layers": []}}, {"grid": {"layers": 6}}, {"grid": {"a": [1]}, "b": 2}, 5])
def test_expand_rejects_malformed(bad):
    with pytest.raises(ConfigError):
        expand(bad)


def test_check_parameters():
    defaults = {"samples": 100, "lr": 1e-3, "sweep": [], "grad_clip": None}
    check_parameters({"samples": 5, "lr": 1, "grad_clip": 0.5, "sweep": [{"a": 1}]}, defaults, where="x.yml")
    with pytest.raises(ConfigError, match=r"x\.yml: unknown key\(s\) \['sample'\]"):
        check_parameters({"sample": 5}, defaults, where="x.yml")
    with pytest.raises(ConfigError, match=r"x\.yml: samples = '5' is str; expected int"):
        check_parameters({"samples": "5"}, defaults, where="x.yml")


def test_read_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "nope.yml")
    (tmp_path / "list.yml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml(tmp_path / "list.yml")
    (tmp_path / "bad.yml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(tmp_path / "bad.yml")


def test_sweep_builds_validated_configs_on_shared_values():
    runs = ConvTextConfig.sweep([{"layers": 2}, {"grid": {"layers": [3], "dilation": [1, [1, 2, 3]]}}], channels=8)
    assert [r.name for r in runs] == ["l2-ks9-dil1-ch8", "l3-ks9-dil1-ch8", "l3-ks9-dil1-2-3-ch8"]
    with pytest.raises(ConfigError, match=r"sweep\[1\]: ConvTextConfig: dilation: 2 values"):
        ConvTextConfig.sweep([{"layers": 2}, {"layers": 3, "dilation": [1, 2]}])


def test_merge_keys_are_read_and_explicit_keys_win(tmp_path):
    (tmp_path / "m.yml").write_text(
        "sweep:\n  - &run {layers: 2, kernel_size: 3, dilation: 1}\n  - {<<: *run, dilation: 2}\n  - {<<: [*run], layers: 4}\n")
    assert read_yaml(tmp_path / "m.yml")["sweep"] == [
        {"layers": 2, "kernel_size": 3, "dilation": 1}, {"layers": 2, "kernel_size": 3, "dilation": 2},
        {"layers": 4, "kernel_size": 3, "dilation": 1}]
    (tmp_path / "twice.yml").write_text("a: &a {x: 1}\nb: {<<: *a, x: 2, x: 3}\n")  # merged x is fine; x written twice is not
    with pytest.raises(ConfigError, match=r"twice\.yml: line 2: key 'x' is given twice"):
        read_yaml(tmp_path / "twice.yml")
    (tmp_path / "f.yml").write_text("lr: 3e-3\n")
    assert read_yaml(tmp_path / "f.yml") == {"lr": 0.003}  # a float, as a Python reader expects


@pytest.mark.parametrize("text, message", [
    ("1: 2\n", r"line 1: key '1' is not a name"),
    ("a: {null: 1}\n", r"line 1: key 'null' is not a name"),
    ("? [a]\n: 1\n", r"line 1: a key is a sequence"),
    ("a: &a [*a]\n", r"line 1: an alias refers to the value that contains it"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcd", "bcde")),
     r"more than 100,000 values once its aliases are expanded"),
])
def test_read_yaml_refuses_non_string_keys_and_alias_bombs(tmp_path, text, message):
    (tmp_path / "c.yml").write_text(text)
    with pytest.raises(ConfigError, match=r"c\.yml: " + message):
        read_yaml(tmp_path / "c.yml")


def test_an_alias_bomb_under_the_budget_is_read():
    import yaml

    from lib.config import _Loader

    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abc", "bcd"))
    assert len(yaml.load(text, Loader=_Loader)["d"]) == 10  # 10**4 values once expanded: under MAX_VALUES


def test_check_values_names_the_key_path_and_the_range():
    from lib.config import check_values

    check_values({"lr": 1e-3, "steps": 10**9, "seeds": [0, 2**63 - 1], "sweep": [{"b": 3}], "max_minutes": None}, where="x.yml")
    for raw, pattern in [
        ({"lr": float("nan")}, r"x\.yml: lr = nan; must be a finite number"),
        ({"sweep": [{"b": 3}, {"lr": float("-inf")}]}, r"sweep\[1\]\.lr = -inf"),
        ({"models": [{"arch": "gpt", "steps": 10**10}]}, r"models\[0\]\.steps = 10000000000; must be in \[0, 1e\+09\]"),
        ({"steps_for": {"tf": 10**10}}, r"steps_for\.tf = 10000000000; must be in \[0, 1e\+09\]"),
        ({"seeds": [2**63]}, r"seeds\[0\] = 9\.22e\+18; must be in \[-2\*\*63, 2\*\*63 - 1\]"),
    ]:
        with pytest.raises(ConfigError, match=pattern):
            check_values(raw, where="x.yml")


def test_a_long_base_chain_is_a_depth_error_not_a_recursion_error(tmp_path):
    from lib.config import MAX_BASE_DEPTH, read_config

    for i in range(1500):
        (tmp_path / f"c{i}.yml").write_text(f"base: c{i + 1}.yml\n" if i < 1499 else "samples: 1\n")
    with pytest.raises(ConfigError, match=rf"c0\.yml: base chain longer than {MAX_BASE_DEPTH} files"):
        read_config(tmp_path / "c0.yml")
    assert read_config(tmp_path / f"c{1500 - MAX_BASE_DEPTH}.yml")[0] == {"samples": 1}  # a chain of MAX_BASE_DEPTH files is fine
