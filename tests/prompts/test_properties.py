"""Property-based tests: the plan type and the prompt builder, on inputs hypothesis draws.

Valid inputs must round-trip (plans through ``to_json``/``from_json``) or build with
consistent positions (prompts); invalid ones must raise :class:`IclscopeError` and nothing
else, whose problem text names what is wrong, so that every mistake reaches the user as one
clear message.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interp.engine.plan import TAIL_HOOKS, InterventionPlan, Knockout, Patch, PlanRow
from interp.errors import IclscopeError
from interp.organism import language as lang
from interp.organism.language import Episode
from interp.prompts import CIRCUIT_TEMPLATE, FUNCTION_TEMPLATE, PromptBuilder, Template

FAST = settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def assert_names_problem(err: IclscopeError, *words: str) -> None:
    """The error says what is wrong: a non-empty problem that mentions one of ``words``."""
    assert isinstance(err.problem, str) and err.problem.strip(), err
    assert not words or any(w in err.problem for w in words), (words, err.problem)


# -- the plan ---------------------------------------------------------------------------------
index = st.integers(0, 64)
indices = st.lists(index, max_size=4).map(tuple)
hooks = st.builds(
    lambda layer, site: f"blocks.{layer}.{site}",
    st.integers(0, 7),
    st.sampled_from([*TAIL_HOOKS, "hook_resid_pre", "attn.hook_q"]),
)
TENSORS = {"tv": torch.zeros(2, 3), "mean": torch.zeros(4)}


@st.composite
def patches(draw) -> Patch:
    source = draw(st.sampled_from(["clean", "corrupted", "mean", "zero", "resample", "tensor"]))
    return Patch(
        draw(hooks),
        source,
        positions=draw(st.none() | indices),
        heads=draw(st.none() | indices),
        alpha=draw(st.floats(0.0, 1.0)),
        source_prompt=draw(index if source == "resample" else st.none() | index),
        tensor=draw(st.sampled_from(sorted(TENSORS))) if source == "tensor" else None,
    )


knockouts = st.builds(Knockout, st.integers(0, 7), indices, indices, st.none() | indices)
label_values = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
label_values |= st.floats(allow_nan=False)
labels = st.dictionaries(st.text(max_size=6), label_values, max_size=3).map(
    lambda d: tuple(d.items())
)
rows = st.builds(PlanRow, index, st.lists(patches() | knockouts, max_size=3).map(tuple), labels)
plans = st.builds(
    InterventionPlan,
    st.lists(rows, max_size=5),
    base=st.sampled_from(["clean", "corrupted"]),
    tensors=st.sampled_from([{}, TENSORS]),
    reference_prompts=st.none() | indices,
)


@FAST
@given(plans)
def test_plans_round_trip_through_json(plan):
    text = plan.to_json()
    again = InterventionPlan.from_json(text, tensors=plan.tensors)
    assert again.rows == plan.rows
    assert (again.base, again.reference_prompts) == (plan.base, plan.reference_prompts)
    assert again.to_json() == text
    assert hash(tuple(again.rows)) == hash(tuple(plan.rows))  # plain, hashable data


not_an_index = st.integers(max_value=-1) | st.floats() | st.text(max_size=3) | st.just([1])
BAD_FIELDS = {
    Patch: {
        "hook": st.just("") | st.integers(),
        "source": st.text(max_size=8).filter(lambda s: s not in ("clean", "corrupted", "zero")),
        "positions": st.lists(not_an_index, min_size=1).map(tuple) | st.just("abc") | index,
        "heads": st.lists(st.integers(max_value=-1), min_size=1),
        "alpha": st.floats().filter(lambda a: not 0 <= a <= 1) | st.just("0.5") | st.booleans(),
        "source_prompt": st.integers(max_value=-1) | st.floats(),
    },
    Knockout: {
        "layer": not_an_index,
        "queries": st.none() | st.lists(not_an_index, min_size=1),
        "keys": st.none() | st.just(3.5),
        "heads": st.lists(st.integers(max_value=-1), min_size=1),
    },
    PlanRow: {
        "prompt": not_an_index,
        "edits": st.just(("not an edit",)) | st.just(5) | st.just((None,)),
        "labels": st.just((("a", 1), ("a", 2)))
        | st.just(("ab",))
        | st.just(((1, 2),))
        | st.just((("a", [1]),))
        | st.just(5),
    },
}
GOOD = {
    Patch: {"hook": "blocks.0.attn.hook_z", "source": "zero"},
    Knockout: {"layer": 0, "queries": (1,), "keys": (0,)},
    PlanRow: {"prompt": 0},
}
bad_edits = st.sampled_from(list(BAD_FIELDS)).flatmap(
    lambda cls: st.sampled_from(sorted(BAD_FIELDS[cls])).flatmap(
        lambda name: BAD_FIELDS[cls][name].map(lambda value: (cls, name, value))
    )
)


@FAST
@given(bad_edits)
def test_invalid_plan_parts_raise_iclscope_error_only(bad):
    cls, name, value = bad
    with pytest.raises(IclscopeError) as err:
        cls(**{**GOOD[cls], name: value})
    assert_names_problem(err.value, name, name.removesuffix("s"))  # "row label 'a': ..."


bad_plans = st.one_of(
    st.tuples(st.sampled_from(["sideways", "", None, 3]), st.just([PlanRow(0)])),
    st.tuples(st.just("clean"), st.sampled_from([["row"], [None], [PlanRow(0), 5]])),
)


@FAST
@given(bad_plans, st.none() | st.just([-1]) | st.just("ab"))
def test_invalid_plans_raise_iclscope_error_only(bad, reference_prompts):
    base, plan_rows = bad
    with pytest.raises(IclscopeError) as err:
        InterventionPlan(plan_rows, base=base, reference_prompts=reference_prompts)
    # the base is checked first, then the rows (every drawn plan has one of the two wrong)
    assert_names_problem(err.value, "base" if base not in ("clean", "corrupted") else "rows")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@st.composite
def damaged_plan_json(draw) -> str:
    """Valid plan JSON with one field replaced, garbage JSON, or text that is not JSON."""
    kind = draw(st.sampled_from(["field", "json", "text", "cut"]))
    text = draw(plans).to_json()
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=30))
    if kind == "cut":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    data = json.loads(text)
    data[draw(st.sampled_from(["base", "tensors", "rows", "reference_prompts"]))] = draw(
        json_values.filter(lambda v: v is not None)
    )
    return json.dumps(data)


@FAST
@given(damaged_plan_json())
def test_damaged_plan_json_raises_iclscope_error_only(text):
    try:
        InterventionPlan.from_json(text, tensors=TENSORS)
    except IclscopeError as err:
        assert_names_problem(err)
        return
    # a damaged field can still be a valid plan (e.g. rows [] or another base): then it must
    # survive another round trip
    plan = InterventionPlan.from_json(text, tensors=TENSORS)
    assert InterventionPlan.from_json(plan.to_json(), tensors=TENSORS).rows == plan.rows


# -- the prompt builder -------------------------------------------------------------------------
words = st.sampled_from(lang.CONTENT_WORDS)
inputs = st.lists(words, min_size=1, max_size=4).map(" ".join)
label_words = st.sampled_from(lang.ARBITRARY_LABELS + lang.CLASS_NAMES)
prefix_words = st.sampled_from(["sentence", "Q", "query", "ID", "the", "very"])
forerunners = st.sampled_from([" sentiment:", " :", "\nA:", " |", " sentiment ["])
endings = st.sampled_from(["\n", "\n\n", " | ", " "])


@st.composite
def templates(draw) -> Template:
    """Demonstration formats the organism tokenizer splits into whole words, with a label
    prefix (the forerunner) between the input and the label."""
    if draw(st.booleans()):
        return draw(st.sampled_from([CIRCUIT_TEMPLATE, FUNCTION_TEMPLATE]))
    demo = f"{draw(prefix_words)} {{x}}{draw(forerunners)} {{y}}{draw(endings)}"
    return Template("random", demo, "classification")


@st.composite
def episodes(draw) -> Episode:
    labels = tuple(draw(st.lists(label_words, min_size=2, max_size=4, unique=True)))
    demos = draw(st.lists(st.tuples(inputs, st.sampled_from(labels)), max_size=5))
    return Episode(demos, draw(inputs), draw(st.sampled_from(labels)), labels)


@FAST
@given(
    templates(), st.lists(episodes(), min_size=1, max_size=3), st.sampled_from(["left", "right"])
)
def test_valid_episodes_build_with_consistent_positions(organism_tokenizer, template, eps, side):
    tok = organism_tokenizer
    batch = PromptBuilder(tok, padding_side=side).build(template, eps)
    token = lambda i, p: tok.convert_ids_to_tokens(int(batch.tokens[i, p]))
    for i, (ep, ann) in enumerate(zip(eps, batch.annotations)):
        assert len(ann.x) == len(ann.s) == len(ann.y) == len(ep.demos)
        edges = [p for (a, b), s, y in zip(ann.x, ann.s, ann.y) for p in (a, b, s, y)]
        assert edges == sorted(edges)  # x_i, then its forerunner and label, then the next
        for (x, y), (a, b), s, yp in zip(ep.demos, ann.x, ann.s, ann.y):
            assert [token(i, p) for p in range(a, b)] == x.split()
            assert yp == s + 1 and token(i, yp) == y
        assert [token(i, p) for p in range(*ann.x_q)] == ep.query.split()
        assert ann.x_q[0] > max(ann.y, default=-1) and ann.s_q >= ann.x_q[1]
        forerunner = template.demo.split("{x}")[1].split("{y}")[0]
        assert token(i, ann.s_q) == tok.tokenize(forerunner)[-1]
        assert int(batch.attention_mask[i].nonzero().max()) == ann.s_q
        assert tok.convert_ids_to_tokens(int(batch.answer_ids[i])) == ep.answer
        assert tok.convert_ids_to_tokens(batch.label_ids[i]) == list(ep.labels)


bad_demo_texts = st.text(max_size=20) | st.sampled_from(
    ["{x} {y}", "{y} : {x}", "a {x} : {y} {y}", "{x}{y}", "sentence: {x}", "{x}  {y}\n"]
)
# pieces around the slots that the organism tokenizer isolates (":", "|", "[", newlines),
# drops (spaces) or glues to a neighbouring word ("-", ".", letters): many formats build,
# many others have a label or input that merges with the text beside it
fragments = st.lists(
    st.sampled_from([" ", ":", "|", "[", "\n", "-", ".", "A", "sentiment"]), max_size=4
).map("".join)
composed_demos = st.builds(lambda a, b, c: f"{a}{{x}}{b}{{y}}{c}", fragments, fragments, fragments)
demo_texts = bad_demo_texts | composed_demos | templates().map(lambda t: t.demo)


def render(demo: str, ep: Episode) -> tuple[str, list, list, tuple]:
    """The prompt text the builder promises (each demo in order, then the query cut before
    ``{y}`` with trailing spaces dropped) and the character spans of each x_i, y_i and x_q."""
    head, tail = demo.split("{x}")
    mid, after = tail.split("{y}")
    text, xs, ys = "", [], []
    for x, y in ep.demos:
        text += head
        xs.append((len(text), len(text) + len(x)))
        text += x + mid
        ys.append((len(text), len(text) + len(y)))
        text += y + after
    text += head
    query = (len(text), len(text) + len(ep.query))
    return text + ep.query + mid.rstrip(), xs, ys, query


@FAST
@given(demo_texts, episodes())
def test_any_template_builds_or_raises_iclscope_error(organism_tokenizer, demo, ep):
    tok = organism_tokenizer
    try:
        template = Template("random", demo, "classification")
        batch = PromptBuilder(tok).build(template, [ep])
    except IclscopeError as err:
        assert_names_problem(err)
        return
    text, xs, ys, query = render(demo, ep)
    assert batch.texts == [text]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    o = 1  # the organism's BOS comes first
    assert batch.tokens[0].tolist() == [tok.bos_token_id, *ids]
    assert batch.attention_mask[0].tolist() == [1] * (len(ids) + o)

    def covering(span):  # the padded positions of the tokens that overlap a character span
        return [i + o for i, (a, b) in enumerate(offsets) if a < span[1] and b > span[0]]

    (ann,) = batch.annotations
    assert ann.length == len(ids) + o
    assert len(ann.x) == len(ann.s) == len(ann.y) == len(ep.demos)
    for i in range(len(ep.demos)):
        assert list(range(*ann.x[i])) == covering(xs[i])  # x_i: exactly its input's tokens
        assert [ann.y[i]] == covering(ys[i])  # y_i: the one token of its label
        assert ann.s[i] == ann.y[i] - 1 >= ann.x[i][1]  # s_i: after the input, before y_i
        if i:
            assert ann.x[i][0] >= ann.y[i - 1]
    assert list(range(*ann.x_q)) == covering(query)
    assert ann.x_q[0] >= max(ann.y, default=o)
    assert ann.s_q == len(ids) - 1 + o >= ann.x_q[1]  # the prompt ends on the forerunner
    # the answer is the token that follows the prompt, and one of the candidate labels
    assert len(batch.label_ids[0]) == len(ep.labels)
    answer = int(batch.answer_ids[0])
    assert answer == batch.label_ids[0][ep.labels.index(ep.answer)]
    mid = demo.split("{x}")[1].split("{y}")[0]
    full = tok(text + mid[len(mid.rstrip()) :] + ep.answer, add_special_tokens=False)
    assert full["input_ids"] == [*ids, answer]


EMPTY = st.sampled_from(["", " ", "  "])
NOT_ONE_TOKEN = EMPTY | st.sampled_from(["two words", "alpha beta"])
BAD_PARTS = {"demo label": NOT_ONE_TOKEN, "answer": NOT_ONE_TOKEN, "query": EMPTY, "input": EMPTY}
bad_parts = st.sampled_from(sorted(BAD_PARTS)).flatmap(
    lambda where: BAD_PARTS[where].map(lambda bad: (where, bad))
)


@FAST
@given(episodes(), bad_parts)
def test_bad_labels_and_inputs_raise_iclscope_error_only(organism_tokenizer, ep, part):
    where, bad = part
    demos = list(ep.demos) or [("cat", ep.labels[0])]
    if where == "demo label":
        demos[0] = (demos[0][0], bad)
    elif where == "input":
        demos[0] = (bad, demos[0][1])
    query = bad if where == "query" else ep.query
    answer = bad if where == "answer" else ep.answer
    broken = Episode(demos, query, answer, ep.labels)
    with pytest.raises(IclscopeError) as err:
        PromptBuilder(organism_tokenizer).build(CIRCUIT_TEMPLATE, [broken])
    assert_names_problem(err.value, "label" if where in ("demo label", "answer") else where)


def test_no_episodes_raise_iclscope_error(organism_tokenizer):
    with pytest.raises(IclscopeError) as err:
        PromptBuilder(organism_tokenizer).build(CIRCUIT_TEMPLATE, [])
    assert_names_problem(err.value, "episodes")
