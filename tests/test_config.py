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
