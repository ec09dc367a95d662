"""harness.config: typed loading, overrides, and errors that list what is valid."""

from dataclasses import dataclass, field

import pytest
import yaml

from harness.config import (
    ConfigError,
    apply_overrides,
    check_range,
    describe,
    from_dict,
    load_experiment,
    parse_override,
    save_resolved,
)


@dataclass
class Inner:
    lr: float = 1e-3
    epochs: int = 2
    name: str = "a"
    flags: list[str] = field(default_factory=lambda: ["x"])
    maybe: int | None = None


@dataclass
class Outer:
    exp: str = ""
    inner: Inner = field(default_factory=Inner)
    on: bool = True


def _write(tmp_path, name, data):
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_load_with_overrides_and_types(tmp_path):
    _write(tmp_path, "e1", {"inner": {"lr": 0.1, "epochs": 3}})
    cfg = load_experiment(Outer, tmp_path, "e1", ["inner.epochs=7", "on=false", "inner.flags=[p, q]"])
    assert cfg.exp == "e1"
    assert cfg.inner.lr == 0.1 and cfg.inner.epochs == 7 and cfg.on is False
    assert cfg.inner.flags == ["p", "q"]
    assert cfg.inner.name == "a"  # default kept


def test_apply_overrides_to_a_loaded_config_checks_keys_types_and_sections():
    cfg = Outer(inner=Inner(lr=0.5))
    new = apply_overrides(cfg, ["inner.epochs=9", "on=false"])
    assert (new.inner.epochs, new.inner.lr, new.on) == (9, 0.5, False)
    assert cfg.inner.epochs == 2 and cfg.on is True  # a copy: the original is unchanged
    with pytest.raises(ConfigError, match="only \\['inner'\\] may be changed"):
        apply_overrides(cfg, ["on=false"], sections=["inner"])
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(cfg, ["inner.epochs=x"], sections=["inner"])
    with pytest.raises(ConfigError, match="lrr"):
        apply_overrides(cfg, ["inner.lrr=1"])


def test_int_accepted_for_float_but_not_the_reverse():
    assert from_dict(Inner, {"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match=r"inner\.epochs: expected int, got 2\.5"):
        from_dict(Outer, {"inner": {"epochs": 2.5}})


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, {"inner": {"lrr": 0.1}})
    assert "lrr" in str(err.value) and "'epochs'" in str(err.value) and "'lr'" in str(err.value)


def test_wrong_type_bool_and_str():
    with pytest.raises(ConfigError, match="expected bool"):
        from_dict(Outer, {"on": "yes"})
    with pytest.raises(ConfigError, match="expected str"):
        from_dict(Inner, {"name": 3})
    assert from_dict(Inner, {"maybe": None}).maybe is None
    with pytest.raises(ConfigError):
        from_dict(Inner, {"maybe": "x"})


def test_unknown_experiment_lists_available(tmp_path):
    _write(tmp_path, "a", {})
    _write(tmp_path, "b", {})
    with pytest.raises(ConfigError, match=r"unknown experiment id 'zz'.*\['a', 'b'\]"):
        load_experiment(Outer, tmp_path, "zz")


def test_extends_merges_sections(tmp_path):
    _write(tmp_path, "base", {"inner": {"lr": 0.5, "epochs": 9}})
    _write(tmp_path, "small", {"extends": "base", "inner": {"epochs": 1}})
    cfg = load_experiment(Outer, tmp_path, "small")
    assert (cfg.inner.lr, cfg.inner.epochs, cfg.exp) == (0.5, 1, "small")


def test_override_needs_equals():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.epochs")
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)


def test_override_of_unknown_key_is_an_error(tmp_path):
    _write(tmp_path, "e", {})
    with pytest.raises(ConfigError, match="unknown key"):
        load_experiment(Outer, tmp_path, "e", ["inner.nope=1"])


def test_save_resolved_writes_config_and_command(tmp_path):
    cfg = from_dict(Outer, {"inner": {"epochs": 4}})
    path = save_resolved(cfg, tmp_path / "run", ["prog", "--exp", "x"])
    assert yaml.safe_load(path.read_text())["inner"]["epochs"] == 4
    meta = yaml.safe_load((tmp_path / "run" / "run.json").read_text())
    assert meta["argv"] == ["prog", "--exp", "x"] and meta["git_commit"]


def test_every_graphrepair_config_loads():
    from graphrepair.config import CONFIG_DIR, load_config
    from harness.config import available_experiments

    exps = available_experiments(CONFIG_DIR)
    assert "3d" in exps
    for exp in exps:
        cfg = load_config(exp)
        assert cfg.exp == exp and cfg.description
    full = load_config("3d")
    assert (full.data.train_samples, full.data.val_samples, full.train.epochs) == (1000, 200, 50)
    assert full.model.hidden == 256 and full.model.depth == 3 and full.model.attention_heads == 4
    assert full.feedback.feedback_at_iteration0 is False


@dataclass
class Ranged:
    lr: float = 1e-3
    epochs: int = 2
    description: str = ""

    def __post_init__(self):
        check_range("lr", self.lr, low=0, low_open=True)
        check_range("epochs", self.epochs, low=1)


@dataclass
class WithRanged:
    exp: str = ""
    description: str = ""
    train: Ranged = field(default_factory=Ranged)


def test_scientific_notation_is_a_float_in_files_and_overrides(tmp_path):
    _write(tmp_path, "e", {"inner": {"lr": "3E-5"}})
    assert yaml.safe_load("lr: 1e-4")["lr"] == "1e-4"  # what YAML 1.1 alone would give
    cfg = load_experiment(Outer, tmp_path, "e")
    assert cfg.inner.lr == 3e-5
    assert load_experiment(Outer, tmp_path, "e", ["inner.lr=1e-4"]).inner.lr == 1e-4
    assert load_experiment(Outer, tmp_path, "e", ["inner.name=1e-4"]).inner.name == "1e-4"
    with pytest.raises(ConfigError, match="inner.lr: expected float"):
        load_experiment(Outer, tmp_path, "e", ["inner.lr=fast"])


def test_ranges_are_checked_with_the_key_named(tmp_path):
    _write(tmp_path, "e", {})
    with pytest.raises(ConfigError, match=r"train\.lr must be in \(0, inf\), got -0\.1"):
        load_experiment(WithRanged, tmp_path, "e", ["train.lr=-0.1"])
    with pytest.raises(ConfigError, match=r"train\.epochs must be in \[1, inf\), got 0"):
        load_experiment(WithRanged, tmp_path, "e", ["train.epochs=0"])
    with pytest.raises(ConfigError, match="must be in"):
        check_range("x", float("nan"), low=0)
    check_range("rate", 1.0, low=0, high=1, low_open=True)  # the closed end is inside


def test_description_placeholders_follow_the_configuration(tmp_path):
    _write(tmp_path, "e", {"description": "{train.epochs} epochs at lr {train.lr}"})
    cfg = load_experiment(WithRanged, tmp_path, "e", ["train.epochs=3"])
    assert describe(cfg) == "3 epochs at lr 0.001"
    cfg.train.epochs = 7  # e.g. a resumed run extended
    assert describe(cfg) == "7 epochs at lr 0.001"
    _write(tmp_path, "bad", {"description": "{train.steps} steps"})
    with pytest.raises(ConfigError, match=r"\{train.steps\}, which is not a key"):
        load_experiment(WithRanged, tmp_path, "bad")
