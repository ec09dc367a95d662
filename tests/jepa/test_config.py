"""The jepa experiment config: the phase0 YAML loads; out-of-range values name the key."""

from pathlib import Path

import pytest

from harness.config import ConfigError, load_experiment
from jepa.config import CorpusConfig, ExperimentConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "jepa"


def test_phase0_loads_with_the_default_corpus():
    cfg = load_experiment(ExperimentConfig, CONFIGS, "phase0")
    assert cfg.exp == "phase0" and cfg.corpus == CorpusConfig(cap=2000, minimum=50)
    assert cfg.corpus.source == "installed" and cfg.corpus.fractions == (0.8, 0.1, 0.1)


@pytest.mark.parametrize(("override", "message"), [
    ("corpus.cap=0", "corpus.cap must be in"),
    ("corpus.fractions=[0.5, 0.1, 0.1]", "summing to 1"),
    ("corpus.source=directory", "directory must name a folder"),
    ("corpus.source=git", "expected one of"),
    ("corpus.typo=1", "unknown key"),
])
def test_bad_corpus_values_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(ExperimentConfig, CONFIGS, "phase0", [override])
