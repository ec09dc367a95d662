"""Tests for graphrepair.graphs.graph: exact round trips on real programs, structure, lines, categories."""

import ast
import functools
import gzip
import json
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrepair.data.problems import ensure_file, load_humaneval, load_mbpp, load_sanitized_mbpp
from graphrepair.graphs.graph import EdgeType, LeafCategory, NodeKind, ProgramGraph
from tests.graphrepair.conftest import data_dir

C = LeafCategory


@functools.lru_cache(maxsize=1)
def mbpp_sources() -> tuple[str, ...]:
    return tuple(p.source for p in load_mbpp(data_dir()))


def check_invariants(g: ProgramGraph) -> None:
    n = g.num_nodes
    assert len(g.parent) == len(g.depth) == len(g.sibling_index) == len(g.node_lines) == n
    assert g.parent[0] == -1 and g.depth[0] == 0
    for i in range(1, n):
        p = g.parent[i]
        assert 0 <= p < i
        assert g.depth[i] == g.depth[p] + 1
    assert len(g.gaps) == g.num_leaves + 1
    assert len(g.leaf_texts) == len(g.leaf_categories) == len(g.leaf_lines) == g.num_leaves
    assert g.leaf_nodes == sorted(g.leaf_nodes)
    is_parent = set(g.parent)
    for k, i in enumerate(g.leaf_nodes):
        assert i not in is_parent, "a leaf token has graph children"
        assert g.node_lines[i] == g.leaf_lines[k][0] <= g.leaf_lines[k][1]


def test_round_trip_every_dataset_program():
    # Fails (not skips) with the loader's message when the data files are absent.
    sources = [p.source for p in load_mbpp(data_dir())] + [
        p.source for p in load_sanitized_mbpp(data_dir())
    ]
    sources += [p.source for p in load_humaneval(data_dir())]
    with gzip.open(ensure_file("HumanEval.jsonl.gz", data_dir()), "rt", encoding="utf-8") as f:
        sources += [json.loads(line)["test"] for line in f]
    assert len(sources) == 974 + 427 + 164 + 164
    for s in sources:
        g = ProgramGraph.from_source(s)
        assert g.to_source() == s
        assert not g.has_error
    check_invariants(ProgramGraph.from_source(sources[0]))


MUTATION_CHARS = "()[]:=+ \t\n\r'\"#\\é{}f"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, 973),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.booleans(), st.sampled_from(MUTATION_CHARS)), max_size=8
    ),
)
def test_round_trip_mutated_mbpp(index, edits):
    s = mbpp_sources()[index]
    for where, insert, ch in edits:
        k = int(where * len(s))
        s = s[:k] + ch + s[k:] if insert else s[:k] + s[k + 1 :]
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    check_invariants(g)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=60))
def test_round_trip_arbitrary_text(s):
    assert ProgramGraph.from_source(s).to_source() == s


def test_crlf_and_tabs():
    s = "def f(a):\r\n\tif a:\r\n\t\treturn 1 \r\n\treturn 2"
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    assert g.leaf_texts == [
        "def",
        "f",
        "(",
        "a",
        ")",
        ":",
        "if",
        "a",
        ":",
        "return",
        "1",
        "return",
        "2",
    ]
    assert g.gaps[10] == " " and g.gaps[11] == " \r\n\t"
    assert [line for line, _ in g.leaf_lines] == [1] * 6 + [2] * 3 + [3] * 2 + [4] * 2


def test_fstring_is_one_leaf():
    s = "y = f\"{x!r:>10} {'a' + \"b\"}\" 'c'\n"
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    assert g.leaf_texts == ["y", "=", 'f"{x!r:>10} {\'a\' + "b"}"', "'c'"]
    assert g.leaf_categories[2:] == [C.LITERAL, C.LITERAL]
    assert "interpolation" not in g.node_types and "string_start" not in g.node_types


def test_whole_string_is_one_leaf():
    g = ProgramGraph.from_source('x = "a\\n{b}"')
    assert g.leaf_texts == ["x", "=", '"a\\n{b}"']
    assert g.node_types == [
        "module",
        "expression_statement",
        "assignment",
        "identifier",
        "=",
        "string",
    ]
    assert g.leaf_nodes == [3, 4, 5]


def test_line_continuation_comments_non_ascii():
    s = "# héllo\nnaïve = 1 + \\\n    2  # ünï\ns = 'ß→😀'\n"
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    assert g.leaf_texts == [
        "# héllo",
        "naïve",
        "=",
        "1",
        "+",
        "\\\n",
        "2",
        "# ünï",
        "s",
        "=",
        "'ß→😀'",
    ]
    assert g.leaf_categories == [
        C.COMMENT,
        C.IDENTIFIER,
        C.OPERATOR,
        C.LITERAL,
        C.OPERATOR,
        C.PUNCTUATION,
        C.LITERAL,
        C.COMMENT,
        C.IDENTIFIER,
        C.OPERATOR,
        C.LITERAL,
    ]
    assert g.leaf_lines[5] == (2, 2) and g.leaf_lines[6] == (
        3,
        3,
    )  # continuation ends on 2 and g.leaf_lines[10] == (4, 4)


def test_syntax_error_and_missing_node():
    s = "def f(a:\n    return a +\nx = 1\n"
    g = ProgramGraph.from_source(s)
    assert g.has_error and g.error_lines[0] == 1  # the ERROR region starts at the bad `(`
    assert g.to_source() == s
    g = ProgramGraph.from_source("f(x for x in)\n")
    assert g.has_error and g.error_lines == [1]
    k = g.leaf_texts.index("")
    assert g.node_types[g.leaf_nodes[k]] == "identifier"  # MISSING keeps its type
    assert g.leaf_categories[k] == C.IDENTIFIER
    assert g.to_source() == "f(x for x in)\n"
    # An error inside an f-string's interpolation is still reported, though inside one leaf.
    g = ProgramGraph.from_source("a = 1\nb = f'{a +}'\n")
    assert g.error_lines == [2] and g.leaf_texts[-1] == "f'{a +}'"
    assert not ProgramGraph.from_source("x = 1\n").has_error


def test_empty_and_whitespace_sources():
    for s in ["", "\n", "  \r\n\t", "# only\n"]:
        g = ProgramGraph.from_source(s)
        assert g.to_source() == s
        check_invariants(g)


def test_categories_of_small_program():
    s = "def f(a, *, b=None) -> int:\n    return not a or b[0] ** 2 != ...  # c\n"
    g = ProgramGraph.from_source(s)
    got = list(zip(g.leaf_texts, g.leaf_categories, strict=True))
    assert got == [
        ("def", C.KEYWORD),
        ("f", C.IDENTIFIER),
        ("(", C.PUNCTUATION),
        ("a", C.IDENTIFIER),
        (",", C.PUNCTUATION),
        ("*", C.OPERATOR),
        (",", C.PUNCTUATION),
        ("b", C.IDENTIFIER),
        ("=", C.OPERATOR),
        ("None", C.LITERAL),
        (")", C.PUNCTUATION),
        ("->", C.OPERATOR),
        ("int", C.IDENTIFIER),
        (":", C.PUNCTUATION),
        ("return", C.KEYWORD),
        ("not", C.KEYWORD),
        ("a", C.IDENTIFIER),
        ("or", C.KEYWORD),
        ("b", C.IDENTIFIER),
        ("[", C.PUNCTUATION),
        ("0", C.LITERAL),
        ("]", C.PUNCTUATION),
        ("**", C.OPERATOR),
        ("2", C.LITERAL),
        ("!=", C.OPERATOR),
        ("...", C.LITERAL),
        ("# c", C.COMMENT),
    ]


def _python_names(source: str) -> list[tuple[str, int]]:
    """(identifier, line) of every ast.Name, as Python's compiler numbers lines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # MBPP has invalid escapes like "\w"
        tree = ast.parse(source)
    names = [(n.id, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Name)]
    return sorted(names)


def test_leaf_lines_match_python_on_crlf_and_lone_cr_mbpp_programs():
    sources = mbpp_sources()
    crlf = [s for s in sources if "\r\n" in s and s.count("\n") > 5][:40]
    lone_cr = [s for s in sources if s.count("\r") != s.count("\r\n")]
    assert len(lone_cr) == 4  # MBPP quirk: four programs end with a lone "\r"
    for s in crlf + lone_cr + ["a = 1\rb = a\r\rc = b\n"]:
        g = ProgramGraph.from_source(s)
        leaf_names = {
            (t, line)
            for t, (line, _), c in zip(g.leaf_texts, g.leaf_lines, g.leaf_categories, strict=True)
            if c == C.IDENTIFIER
        }
        for name in _python_names(s):
            assert name in leaf_names, (name, s)
    g = ProgramGraph.from_source("a = 1\rb = a\r\rc = b\n")
    assert g.error_lines == [] or max(g.error_lines) <= 4
    assert [ln for t, (ln, _) in zip(g.leaf_texts, g.leaf_lines, strict=True) if t in "abc"] == [
        1,
        2,
        2,
        4,
        4,
    ]


def test_multiline_leaf_lines():
    g = ProgramGraph.from_source('x = """a\r\nb\nc"""\ny = 2\n')
    assert g.leaf_lines == [(1, 1), (1, 1), (1, 3), (4, 4), (4, 4), (4, 4)]


def test_edges():
    g = ProgramGraph.from_source("x = f(a, b)\n")
    edge_index, edge_type = g.edges()
    assert edge_index.dtype == np.int64 and edge_type.dtype == np.int64
    assert edge_index.shape == (2, edge_type.shape[0])
    pairs = {t: set(map(tuple, edge_index[:, edge_type == t].T.tolist())) for t in EdgeType}
    n = g.num_nodes
    assert pairs[EdgeType.PARENT_TO_CHILD] == {(g.parent[i], i) for i in range(1, n)}
    assert pairs[EdgeType.CHILD_TO_PARENT] == {(i, g.parent[i]) for i in range(1, n)}
    leaves = g.leaf_nodes
    assert pairs[EdgeType.NEXT_TOKEN] == set(zip(leaves[:-1], leaves[1:], strict=True))
    expected_sib = {
        (i, j)
        for i in range(n)
        for j in range(n)
        if i > 0 and g.parent[i] == g.parent[j] and g.sibling_index[j] == g.sibling_index[i] + 1
    }
    assert pairs[EdgeType.NEXT_SIBLING] == expected_sib
    # argument_list "(a, b)" has 5 children -> 4 sibling edges; assignment 3 -> 2; call 2 -> 1.
    assert len(expected_sib) == 7
    single = ProgramGraph.from_source("")
    assert single.edges()[0].shape == (2, 0)


def test_edge_order_within_types():
    g = ProgramGraph.from_source("def f(a):\n  x = a\n  y = 2\nz = f(x)\n")
    edge_index, edge_type = g.edges(same_identifier=True)
    assert (np.diff(edge_type) >= 0).all()
    src, dst = edge_index
    for t, node in [
        (EdgeType.PARENT_TO_CHILD, dst),
        (EdgeType.CHILD_TO_PARENT, src),
        (EdgeType.NEXT_TOKEN, dst),
        (EdgeType.SAME_IDENTIFIER, dst),
    ]:
        assert (np.diff(node[edge_type == t]) > 0).all(), t
    sib = edge_index[:, edge_type == EdgeType.NEXT_SIBLING].T.tolist()
    assert sib == sorted(sib, key=lambda e: (g.parent[e[1]], e[1]))
    assert sib != sorted(sib, key=lambda e: e[1])  # grouped by parent, not by target


def test_leaf_index_of_node_and_sibling_index():
    g = ProgramGraph.from_source("x = f(a, b)\n")
    idx = g.leaf_index_of_node()
    assert idx.dtype == np.int64 and idx.shape == (g.num_nodes,)
    assert [int(idx[i]) for i in g.leaf_nodes] == list(range(g.num_leaves))
    assert (idx == -1).sum() == g.num_nodes - g.num_leaves
    arg_list = g.node_types.index("argument_list")
    kids = [i for i in range(g.num_nodes) if g.parent[i] == arg_list]
    assert [g.sibling_index[i] for i in kids] == [0, 1, 2, 3, 4]


def test_to_source_with_replacements():
    s = "def add(a, b):\r\n\treturn a + b\r\n"
    g = ProgramGraph.from_source(s)
    texts = list(g.leaf_texts)
    texts[texts.index("+")] = "-"
    assert g.to_source(texts) == "def add(a, b):\r\n\treturn a - b\r\n"
    assert g.to_source(tuple(g.leaf_texts)) == s
    try:
        g.to_source(texts[:-1])
    except ValueError as exc:
        assert str(g.num_leaves) in str(exc)
    else:
        raise AssertionError("expected ValueError")


# --- Generated programs: a grammar-ish strategy over Python's surface syntax -------------------

NAMES = st.sampled_from(["x", "y", "_t", "naïve", "λ", "f", "print", "match", "self"])
ATOMS = st.one_of(
    NAMES,
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["0x1F", "1_000", "3.5e-2", "2j", "None", "True", "...", "b'\\x00'"]),
    st.sampled_from(['"a\\tb"', "'ß→😀'", 'f"{x!r:>{y}}"', "r'\\d'", '"""doc\nline"""', "f'{x}' 'y'"]),
)
SPACE = st.sampled_from([" ", "", "  ", "\t", " \\\n    "])


def _expr(children):
    op = st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "==", "<", "and", "or", "if 1 else", "@"])
    return st.one_of(
        st.tuples(children, SPACE, op, SPACE, children).map(lambda t: f"{t[0]}{t[1]}{t[2]} {t[3]}{t[4]}"),
        st.tuples(NAMES, st.lists(children, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        children.map(lambda e: f"({e})"),
        st.tuples(NAMES, children).map(lambda t: f"[{t[0]} for {t[0]} in {t[1]}]"),
        st.tuples(children, NAMES).map(lambda t: f"{t[0]}.{t[1]}"),
        children.map(lambda e: f"not {e}"),
        children.map(lambda e: f"lambda a, *b: {e}"),
    )


EXPRS = st.recursive(ATOMS, _expr, max_leaves=8)
SIMPLE = st.one_of(
    st.tuples(NAMES, SPACE, EXPRS).map(lambda t: f"{t[0]}{t[1]}= {t[2]}"),
    st.tuples(NAMES, st.sampled_from(["+=", "-=", ":="]), EXPRS).map(lambda t: " ".join(t)),
    EXPRS.map(lambda e: f"return {e}"),
    EXPRS,
    st.sampled_from(["pass", "break", "import os.path as p", "from . import (a,\n  b)", "global x"]),
    st.sampled_from(["# comment ü", "assert x, 'msg'", "del x[0]", "raise ValueError(x) from None"]),
)


def _block(body):
    header = st.one_of(
        st.tuples(NAMES, NAMES).map(lambda t: f"def {t[0]}({t[1]}, *args, k=1, **kw) -> int:"),
        EXPRS.map(lambda e: f"if {e}:"),
        st.tuples(NAMES, EXPRS).map(lambda t: f"for {t[0]} in {t[1]}:"),
        EXPRS.map(lambda e: f"while {e}:"),
        st.just("try:"),
        st.just("else:"),
        st.just("class C(Base, metaclass=M):"),
        st.just("with open(p) as f, g:"),
        st.just("@decorator(1)\ndef g():"),
        st.just("match x:\n case [1, *rest] | {'k': _}:"),
    )
    indent = st.sampled_from(["    ", "\t", "  "])
    return st.tuples(header, indent, st.lists(body, min_size=1, max_size=3)).map(
        lambda t: t[0] + "\n" + "\n".join(t[1] + ln for stmt in t[2] for ln in stmt.split("\n"))
    )


PROGRAMS = st.tuples(
    st.lists(st.recursive(SIMPLE, _block, max_leaves=6), max_size=6),
    st.sampled_from(["\n", "\r\n", "\r", "\n\n"]),
    st.booleans(),
).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))


def _tree_sitter_preorder(source: str) -> list[tuple[str, int]]:
    """(type, 1-based start row) of every graph node, straight from tree-sitter (reference)."""
    from graphrepair.graphs.graph import _parser

    out = []
    stack = [_parser().parse(source.encode("utf-8")).root_node]
    while stack:
        node = stack.pop()
        out.append((node.type, node.start_point[0] + 1))
        if node.type != "string":
            stack.extend(reversed(node.children))
    return out


def check_against_tree_sitter(s: str) -> None:
    """Node types and start lines equal tree-sitter's (rows are Python's lines without lone CR)."""
    g = ProgramGraph.from_source(s)
    reference = _tree_sitter_preorder(s)
    assert g.node_types == [t for t, _ in reference]
    if s.count("\r") == s.count("\r\n"):
        assert g.node_lines == [row for _, row in reference]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PROGRAMS)
def test_round_trip_grammar_generated_programs(s):
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    check_invariants(g)
    check_against_tree_sitter(s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(0, 973),
    swaps=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 12), st.integers(1, 12)), max_size=4),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=3),
)
def test_round_trip_byte_swapped_mbpp(index, swaps, flips):
    """Swap chunks and flip bytes of real programs (decoded back with replacement characters)."""
    data = bytearray(mbpp_sources()[index].encode("utf-8"))
    for where, a, b in swaps:
        k = int(where * len(data))
        chunk1, chunk2 = data[k : k + a], data[k + a : k + a + b]
        data[k : k + a + b] = chunk2 + chunk1
    for where, mask in flips:
        if data:
            k = min(int(where * len(data)), len(data) - 1)
            data[k] ^= mask
    s = data.decode("utf-8", errors="replace")
    g = ProgramGraph.from_source(s)
    assert g.to_source() == s
    check_invariants(g)
    check_against_tree_sitter(s)


def test_lines_and_types_match_tree_sitter_on_every_mbpp_program():
    for s in mbpp_sources():
        check_against_tree_sitter(s)


def test_node_kinds():
    g = ProgramGraph.from_source("def f(a):\n    return 'x' + a  # c\n")
    kinds = g.node_kinds()
    assert kinds.dtype == np.uint8 and kinds.shape == (g.num_nodes,)
    assert np.flatnonzero(kinds == NodeKind.TOKEN).tolist() == g.leaf_nodes
    assert (kinds == NodeKind.INTERIOR).sum() == g.num_nodes - g.num_leaves
    assert kinds[0] == NodeKind.INTERIOR and kinds[g.node_types.index("string")] == NodeKind.TOKEN
    assert ProgramGraph.from_source("").node_kinds().tolist() == [NodeKind.TOKEN]  # empty module


def test_edge_types_are_documented():
    doc = EdgeType.__doc__
    assert all(t.name in doc for t in EdgeType) and len(EdgeType) == 5
    assert all(k.name in NodeKind.__doc__ for k in NodeKind)


def test_same_identifier_edges_on_mbpp(mbpp):
    src = mbpp["mbpp/2"].source  # similar_elements(test_tup1, test_tup2): res used twice
    g = ProgramGraph.from_source(src)
    plain_index, plain_type = g.edges()
    assert EdgeType.SAME_IDENTIFIER not in plain_type  # opt-in only
    edge_index, edge_type = g.edges(same_identifier=True)
    assert np.array_equal(edge_index[:, : len(plain_type)], plain_index)
    got = set(map(tuple, edge_index[:, edge_type == EdgeType.SAME_IDENTIFIER].T.tolist()))
    ids = [(n, t) for n, t, c in zip(g.leaf_nodes, g.leaf_texts, g.leaf_categories, strict=True)
           if c == C.IDENTIFIER]
    expected = set()
    for k, (n, t) in enumerate(ids):
        later = [m for m, u in ids[k + 1 :] if u == t]
        if later:
            expected.add((n, later[0]))
    assert got == expected and len(got) >= 3
    assert ("res" in g.leaf_texts) and all(g.leaf_texts[g.leaf_nodes.index(a)] ==
                                           g.leaf_texts[g.leaf_nodes.index(b)] for a, b in got)
    # A MISSING identifier (text "") links to nothing.
    broken = ProgramGraph.from_source("f(x for x in)\ny = x\n")
    ei, et = broken.edges(same_identifier=True)
    texts = dict(zip(broken.leaf_nodes, broken.leaf_texts, strict=True))
    assert all(texts[a] == texts[b] == "x" for a, b in ei[:, et == EdgeType.SAME_IDENTIFIER].T)


def test_array_memo_and_pickling():
    import pickle

    g = ProgramGraph.from_source("def f(a):\n    return a\n")
    for name in ("parent", "depth", "sibling_index", "leaf_nodes", "node_lines"):
        arr = g.array(name)
        assert arr.dtype == np.int64 and arr.tolist() == getattr(g, name)
        assert g.array(name) is arr  # converted once
    try:
        g.array("leaf_texts")
    except ValueError as exc:
        assert "leaf_texts" in str(exc) and "parent" in str(exc)
    else:
        raise AssertionError("expected ValueError")
    derived = (g.node_types, g.leaf_categories, g.leaf_lines)  # computed on first use, cached
    restored = pickle.loads(pickle.dumps(g))
    assert restored == g and "_arrays" not in restored.__dict__
    assert "node_types" not in restored.__dict__  # derived lists are not pickled either...
    assert (restored.node_types, restored.leaf_categories, restored.leaf_lines) == derived
    assert restored.array("parent").tolist() == g.parent


def test_kind_index_and_tables_agree_with_node_types_and_categories():
    """The per-kind tables (vocabulary ids, eligibility) see the same type and category per node."""
    from graphrepair.graphs.graph import kind_names

    for source in ("def f(a):\n    return a + 1  # c\n", "x = (1, 'a' f'{b}')\n", "def (:\n"):
        g = ProgramGraph.from_source(source)
        names = kind_names()
        idx = g.kind_index()
        assert [names[k][0] for k in idx] == g.node_types
        assert [names[idx[j]][1] for j in g.leaf_nodes] == g.leaf_categories
    assert "ERROR" in ProgramGraph.from_source("def (:\n").node_types
