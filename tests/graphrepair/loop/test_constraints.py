"""Constrained decoding (grammar categories, identifier scope) and the mask-predict policy."""

import numpy as np
import pytest
import torch

from graphrepair.config import load_config
from graphrepair.data.corruption import corrupt, corruption_rng
from graphrepair.features.encoding import EncodedProgram
from graphrepair.graphs.graph import ProgramGraph
from graphrepair.graphs.schema import LeafCategory
from graphrepair.graphs.vocab import Vocabulary
from graphrepair.loop.constraints import (
    CATEGORIES,
    OutputConstraint,
    leaf_categories,
    scope_names,
    text_categories,
)
from graphrepair.loop.refine import ProgramState, Refiner, refine

ELIGIBLE = ["identifier", "operator", "keyword", "literal"]


class ConstantModel(torch.nn.Module):
    """Scores token ids by a fixed preference: ``prefs[i]`` is added to token ``ids[i]``'s logit."""

    def __init__(self, vocab_size: int, ids: list[int], prefs: list[float]) -> None:
        super().__init__()
        self.row = torch.zeros(vocab_size)
        self.row[ids] = torch.tensor(prefs)

    def forward(self, data):
        return self.row.expand(int(data.leaf_mask.sum()), -1).clone()


def test_text_categories_cover_every_leaf_category_of_real_programs(mbpp):
    """The vocabulary-side rule agrees with the AST-side category on 300 real programs."""
    for task in list(mbpp)[:300]:
        g = ProgramGraph.from_source(mbpp[task].source)
        for text, row in zip(g.leaf_texts, leaf_categories(g)):
            assert CATEGORIES[row] in text_categories(text), (task, text, CATEGORIES[row])


def test_text_categories_of_ambiguous_texts():
    assert text_categories("print") == {LeafCategory.IDENTIFIER, LeafCategory.KEYWORD}
    assert text_categories("True") == {LeafCategory.LITERAL}
    assert text_categories("rb'x'") == {LeafCategory.LITERAL}
    assert text_categories("0x1F") == {LeafCategory.LITERAL}
    assert text_categories("**") == {LeafCategory.OPERATOR}
    assert text_categories("return") == {LeafCategory.KEYWORD}


@pytest.fixture()
def setup(mbpp):
    p, other = mbpp["mbpp/17"], mbpp["mbpp/2"]
    g = ProgramGraph.from_source(p.source)
    vocab = Vocabulary.build([g, ProgramGraph.from_source(other.source)])
    enc = EncodedProgram.build(p, g, vocab, ELIGIBLE)
    masked = corrupt(enc.eligible, 0.75, corruption_rng(0, p.task_id, 0.75))
    return vocab, enc, masked


def _categories(enc, masked):
    return [CATEGORIES[c] for c in leaf_categories(enc.graph)[masked]]


def test_grammar_keeps_each_masked_leaf_in_its_category(setup):
    vocab, enc, masked = setup
    # the model prefers the identifier "perimeter" everywhere, then "*", then "return", then "4"
    prefs = [("perimeter", 4.0), ("*", 3.0), ("return", 2.0), ("4", 1.0)]
    model = ConstantModel(len(vocab), [vocab.leaf_id(t) for t, _ in prefs], [p for _, p in prefs])
    for grammar in (False, True):
        state = ProgramState.start(enc, masked, vocab)
        refiner = Refiner(model, vocab, constraint=OutputConstraint(vocab, grammar=grammar))
        [(pred, conf)] = refiner.predict([state], with_feedback=False)
        refiner.apply(state, pred, conf)
        filled = [t for t, m in zip(state.texts, masked) if m]
        if not grammar:
            assert set(filled) == {"perimeter"}
            continue
        for text, category in zip(filled, _categories(enc, masked)):
            assert category in text_categories(text)
        assert {"perimeter", "*"} <= set(filled)  # identifiers and operators both corrupted


def test_identifiers_in_scope_exclude_names_of_other_programs(setup):
    vocab, enc, masked = setup
    foreign = "similar_elements"  # mbpp/2's function name: in the vocabulary, not in mbpp/17
    assert foreign in vocab.leaf_texts and foreign not in enc.orig_texts
    model = ConstantModel(len(vocab), [vocab.leaf_id(foreign), vocab.leaf_id("perimeter")], [5.0, 1.0])
    results = {}
    for identifiers in ("vocabulary", "in_scope"):
        state = ProgramState.start(enc, masked, vocab)
        refiner = Refiner(model, vocab, constraint=OutputConstraint(vocab, grammar=True,
                                                                    identifiers=identifiers))
        [(pred, conf)] = refiner.predict([state], with_feedback=False)
        refiner.apply(state, pred, conf)
        results[identifiers] = {t for t, m, c in zip(state.texts, masked, leaf_categories(enc.graph))
                                if m and CATEGORIES[c] is LeafCategory.IDENTIFIER}
    assert foreign in results["vocabulary"]
    assert foreign not in results["in_scope"] and results["in_scope"]


def test_scope_holds_visible_names_tests_builtins_and_named_modules(setup):
    vocab, enc, masked = setup
    cats = leaf_categories(enc.graph)
    texts = [None if m else t for t, m in zip(enc.orig_texts, masked)]
    names = scope_names(texts, cats, enc.problem.tests)
    assert "square_perimeter" in names  # called by the tests
    assert {"len", "append", "split"} <= names  # builtins, attributes of builtin types
    assert "sqrt" not in names  # math is not named
    assert "sqrt" in scope_names(["math", None], np.array([CATEGORIES.index(LeafCategory.IDENTIFIER)] * 2),
                                 ())
    hidden = {t for t, m, c in zip(enc.orig_texts, masked, cats) if m and t not in names}
    assert all(t not in names for t in hidden)


def test_a_row_with_nothing_allowed_falls_back_and_stays_finite(setup):
    vocab, enc, masked = setup
    constraint = OutputConstraint(vocab, grammar=True, identifiers="in_scope")
    cats = leaf_categories(enc.graph)
    allowed = constraint.allowed([(cats, [None] * len(cats), (), "")])
    assert allowed.shape == (len(cats), len(vocab)) and allowed.any(axis=1).all()


def _refiner_state(setup, **kwargs):
    vocab, enc, masked = setup
    model = ConstantModel(len(vocab), [vocab.leaf_id("perimeter"), vocab.leaf_id("a")], [3.0, 2.0])
    refiner = Refiner(model, vocab, policy="mask_predict", **kwargs)
    state = ProgramState.start(enc, masked, vocab)
    [(pred, conf)] = refiner.predict([state], with_feedback=False)
    refiner.apply(state, pred, conf)
    return refiner, state


def test_remask_follows_the_linear_schedule_and_lowest_confidence(setup):
    refiner, state = _refiner_state(setup, remask="confidence")
    editable = np.flatnonzero(state.masked)
    state.confidence[editable] = np.linspace(0.9, 0.1, len(editable))  # the last ones least trusted
    chosen = refiner.remask(state, 1, 4)
    n = len(editable) * 3 // 4
    assert np.array_equal(chosen, editable[-n:])
    assert all(state.texts[i] is None for i in chosen) and (state.confidence[chosen] == 0).all()
    assert len(refiner.remask(state, 0, 4)) == 0
    with pytest.raises(ValueError, match="outside"):
        refiner.remask(state, 4, 4)


def test_mask_predict_changes_only_remasked_corrupted_leaves_and_forbids_the_previous_text(setup):
    refiner, state = _refiner_state(setup, remask="both", forbid_previous=True)
    refiner.run_tests([state])
    assert not state.passed
    before = list(state.texts)
    chosen = refiner.remask(state, 1, 2)
    assert len(chosen) == int(state.masked.sum()) // 2 and state.masked[chosen].all()
    [(pred, conf)] = refiner.predict([state], with_feedback=True)
    refiner.apply(state, pred, conf)
    changed = [i for i, (a, b) in enumerate(zip(before, state.texts)) if a != b]
    assert set(changed) <= set(chosen.tolist())
    # every re-masked leaf had "perimeter" (the favourite) and may not take it again
    assert all(state.texts[i] == "a" for i in chosen if before[i] == "perimeter")
    assert state.forbid is None  # cleared by the prediction


def test_mask_predict_refine_leaves_uncorrupted_leaves_alone(setup):
    vocab, enc, masked = setup
    refiner, state = _refiner_state(setup, remask="spectrum")
    fresh = ProgramState.start(enc, masked, vocab)
    history = refine(refiner, [fresh], iterations=3)
    assert len(history) == 3
    assert [t for t, m in zip(fresh.texts, masked) if not m] == [
        t for t, m in zip(enc.orig_texts, masked) if not m]
    assert all(t is not None for t in fresh.texts)


def test_decoding_settings_come_from_the_config(setup):
    vocab, _, _ = setup
    cfg = load_config("3d_cpu", ["decoding.grammar=true", "decoding.identifiers=in_scope",
                                 "decoding.policy=mask_predict", "decoding.remask=spectrum"])
    refiner = Refiner.from_config(ConstantModel(len(vocab), [3], [1.0]), vocab, cfg)
    assert refiner.policy == "mask_predict" and refiner.remask_order == "spectrum"
    assert refiner.constraint.grammar and refiner.constraint.identifiers == "in_scope"
    plain = Refiner.from_config(ConstantModel(len(vocab), [3], [1.0]), vocab, load_config("3d_cpu"))
    assert plain.constraint is None and plain.policy == "edit"


class TrapModel(torch.nn.Module):
    """Knows every reference leaf (from ``data.y``) but prefers a wrong ``decoy`` at one leaf."""

    def __init__(self, vocab_size: int, trap: int, decoy: int) -> None:
        super().__init__()
        self.vocab_size, self.trap, self.decoy = vocab_size, trap, decoy

    def forward(self, data):
        y = data.y
        logits = torch.zeros(len(y), self.vocab_size)
        logits[torch.arange(len(y)), y.clamp(min=0)] = 5.0
        logits[self.trap, self.decoy] = 6.0
        return logits


def test_verify_executes_the_models_alternatives_and_keeps_the_one_that_passes(setup):
    vocab, enc, masked = setup
    trap = int(np.flatnonzero(masked)[0])
    decoy = vocab.leaf_id("a" if enc.orig_texts[trap] != "a" else "perimeter")
    model = TrapModel(len(vocab), trap, decoy)
    outcome = {}
    for policy in ("edit", "verify"):
        refiner = Refiner(model, vocab, policy=policy, candidates=3, top_k=2)
        state = ProgramState.start(enc, masked, vocab)
        refine(refiner, [state], iterations=2)
        outcome[policy] = (state.passed, state.runs, state.texts[trap])
    assert outcome["edit"][0] is False  # the edit rule keeps its confident wrong argmax
    passed, runs, text = outcome["verify"]
    assert passed and text == enc.orig_texts[trap]
    assert 2 <= runs <= 1 + 3  # the one-shot run, then at most `candidates`


class SecondLookModel(torch.nn.Module):
    """Iteration 0 fills the ``trap`` leaf with ``decoy``; later, a *masked* leaf gets its reference
    and a filled leaf keeps its text (surely, except the trap leaf: barely)."""

    def __init__(self, vocab_size: int, trap: int, decoy: int) -> None:
        super().__init__()
        self.vocab_size, self.trap, self.decoy = vocab_size, trap, decoy

    def forward(self, data):
        from graphrepair.graphs.vocab import MASK

        leaf_x = data.x[data.leaf_mask]  # (L, 5): token, prev, depth, sibling, iteration
        y, rows = data.y.clamp(min=0), torch.arange(len(data.y))
        logits = torch.zeros(len(y), self.vocab_size)
        masked = leaf_x[:, 0] == MASK
        logits[rows[masked], y[masked]] = 5.0
        logits[rows[~masked], leaf_x[~masked, 0]] = 10.0
        if leaf_x[0, 4] == 0:
            logits[self.trap, self.decoy] = 20.0
        elif not masked[self.trap]:
            logits[self.trap] = 0.0
            logits[self.trap, leaf_x[self.trap, 0]] = 1.0
        return logits


def test_verify_tries_the_mask_predict_proposal(setup):
    vocab, enc, masked = setup
    trap = int(np.flatnonzero(masked)[0])
    decoy = vocab.leaf_id("a" if enc.orig_texts[trap] != "a" else "perimeter")
    refiner = Refiner(SecondLookModel(len(vocab), trap, decoy), vocab, policy="verify",
                      candidates=1, top_k=1)
    state = ProgramState.start(enc, masked, vocab)
    refine(refiner, [state], iterations=2)
    # the argmax proposal repeats the one-shot program (skipped) and top-1 single-leaf edits
    # change nothing: only re-masking the least sure leaf and predicting it again repairs it
    assert state.passed and state.texts[trap] == enc.orig_texts[trap] and state.runs == 2
