"""Function extraction: qualified names, signature/body split, skipped files, static properties."""

from jepa.corpus.extract import extract_functions
from jepa.corpus.properties import return_kind

SOURCE = '''import functools


@functools.lru_cache(maxsize=None)
def top(a, b=1, *args, **kw) -> "int | None":
    """Say what top does."""
    # a comment
    return a


class Outer:
    def method(self, x, *, y) -> list[int]: return [x, y]

    @staticmethod
    def static(x):
        pass

    class Inner:
        async def deep(cls) -> None:
            def helper():
                return 1
            return helper


def outer():
    square = lambda v: v * v

    def inner(z):
        return square(z)
    return inner
'''


def _by_name(source=SOURCE):
    functions, skipped = extract_functions(source, repository="repo", path="pkg/mod.py")
    assert skipped is None
    return {f.qualname: f for f in functions}


def test_qualified_names_methods_nested_and_no_lambdas():
    names = list(_by_name())
    assert names == ["top", "Outer.method", "Outer.static", "Outer.Inner.deep",
                     "Outer.Inner.deep.<locals>.helper", "outer", "outer.<locals>.inner"]
    fs = _by_name()
    assert fs["Outer.method"].enclosing_class == "Outer"
    assert fs["Outer.Inner.deep"].enclosing_class == "Outer.Inner"
    assert fs["Outer.Inner.deep.<locals>.helper"].enclosing_class is None
    assert fs["top"].enclosing_class is None


def test_decorators_docstring_and_exact_round_trip():
    top = _by_name()["top"]
    assert top.signature == ('@functools.lru_cache(maxsize=None)\n'
                             'def top(a, b=1, *args, **kw) -> "int | None":\n'
                             '    """Say what top does."""')
    assert top.separator == "\n    " and top.body == "# a comment\n    return a"
    assert (top.start_line, top.end_line) == (4, 8)
    assert top.properties.has_docstring and top.properties.return_kind == "Optional"
    for f in _by_name().values():
        assert f.separator.strip() == ""
        assert f.text in SOURCE
        lines = SOURCE.splitlines()[f.start_line - 1:f.end_line]
        assert f.text.strip() == "\n".join(lines).strip()


def test_async_one_liner_and_parameters():
    fs = _by_name()
    assert fs["Outer.Inner.deep"].is_async and not fs["top"].is_async
    method = fs["Outer.method"]
    assert method.signature == "def method(self, x, *, y) -> list[int]:" and method.body == "return [x, y]"
    assert method.properties.n_params == 2  # self excluded, bare * not a parameter
    assert fs["Outer.static"].properties.n_params == 1  # static: first parameter counts
    assert fs["Outer.Inner.deep"].properties.n_params == 0  # cls excluded
    assert fs["top"].properties.n_params == 4
    assert fs["Outer.static"].properties.has_docstring is False


def test_f_string_is_not_a_docstring():
    (f,) = extract_functions('def g():\n    f"""no {x}"""\n    return 1\n')[0]
    assert not f.properties.has_docstring and f.signature == "def g():"


def test_syntax_error_file_is_skipped_and_reported():
    functions, skipped = extract_functions(b"def ok():\n    pass\n\ndef bad(:\n    pass\n",
                                           repository="r", path="bad.py")
    assert functions == [] and skipped.path == "bad.py" and "syntax error" in skipped.reason


def test_non_utf8_file_is_skipped_and_reported():
    functions, skipped = extract_functions(b"def f():\n    return '\xe9'\n", repository="r", path="latin1.py")
    assert functions == [] and skipped.repository == "r" and "not UTF-8" in skipped.reason


def test_complexity_of_a_hand_counted_function():
    source = '''def f(a, b=lambda q: q if q else 0):
    if a and b or a:                   # if +1, and +1, or +1
        return [i for i in a if i]     # for +1, if +1
    elif b:                            # +1
        pass
    for i in a:                        # +1
        while i:                       # +1
            i -= 1
    try:
        pass
    except ValueError:                 # +1
        pass
    except KeyError:                   # +1
        pass
    match a:
        case 1:                        # +1
            pass
        case _:                        # +1
            pass
    def nested(x):
        return x if x else 0           # nested's, not f's
    return a if b else b               # +1
'''
    fs = {f.qualname: f for f in extract_functions(source)[0]}
    assert fs["f"].properties.complexity == 1 + 13  # the default's lambda is outside the body
    assert fs["f.<locals>.nested"].properties.complexity == 2


def test_body_lines_and_return_kinds():
    (f,) = extract_functions('def f() -> bool:\n    """D."""\n\n    # c\n    x = 1\n\n    return x\n')[0]
    assert f.properties.body_lines == 2 and f.properties.return_kind == "bool"
    assert [return_kind(a) for a in (None, "None", "Optional[int]", "typing.List[str]", "Dict",
                                     "list[int | str]", "int | str", "'float'", "Foo")] == \
        ["none", "None", "Optional", "list", "dict", "list", "other", "float", "other"]


def test_comment_after_the_header_starts_the_body():
    source = "def f(a,  # first\n      b):  # trailing\n    x = a\n    return x"
    (f,) = extract_functions(source)[0]
    assert f.signature == "def f(a,  # first\n      b):"
    assert (f.separator, f.body) == ("  ", "# trailing\n    x = a\n    return x")
    assert f.text == source
