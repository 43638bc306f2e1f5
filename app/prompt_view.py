"""The prompt view: one prompt of a task family, run through a model live.

What it shows, top to bottom: the prompt's tokens coloured by role (with the legend); a grid of
every head's attention from the chosen position to the label tokens (the heads worth opening
light up); then for the chosen head, the attention drawn on the tokens themselves (circuitsvis's
``ColoredTokens``: shade = weight, the value on hover) beside the same weights as a bar chart
coloured by role.

circuitsvis is used through ``render_local``, which inlines its JavaScript bundle; its
``_repr_html_`` is avoided because it first probes an outside address.
"""

from __future__ import annotations

import html
import threading

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from app.common import ROLE_COLOURS, ROLE_NAMES, coloured_tokens, role_kind, role_legend
from app.format import integer_axes
from interp.errors import IclscopeError
from interp.runs.figures import heatmap
from interp.tokens import token_texts

COUNT_LABELS = {
    "classification": "shots",
    "function": "shots",
    "ranking": "documents",
    "retrieval": "key-value pairs",
}
"""What the prompt-size control sets, named per task kind."""
FOLDER = "a model folder ..."
_MODEL_IMPORTS = threading.Lock()


def model_libraries() -> None:
    """Import the model stack (torch, transformers, the bridge, the models and the tasks) once,
    under a lock, before this page uses any of it.

    The explorer opens on the runs list, which needs none of it, so the first visit here pays
    for these imports. Streamlit reruns a page in threads, and two reruns importing transformers
    at once can leave one with a half-initialised module ("cannot import name AutoConfig"): the
    lock makes the first import whole before any other thread uses it; later calls find every
    module imported and return at once.
    """
    with _MODEL_IMPORTS:
        import transformers
        from transformer_lens.model_bridge import TransformerBridge  # noqa: F401

        import interp.models  # noqa: F401
        import interp.tasks.suite  # noqa: F401

        _ = (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForCausalLM)


@st.cache_resource(max_entries=1)
def cached_model(spec: str):
    """One model in memory at a time: switching model evicts the previous one."""
    from interp.models import load_model

    return load_model(spec)


@st.cache_data(show_spinner=False)
def buildable_families(spec: str) -> list[str]:
    """The families the model's tokenizer can build, checked once per model."""
    from interp.tasks.run_eval import runnable_families

    return runnable_families(cached_model(spec).tokenizer)


@st.cache_data(show_spinner="running the prompt through the model ...", max_entries=8)
def prompt_patterns(spec: str, family: str, count: int, seed: int) -> dict:
    """Tokens, roles and every head's attention pattern for one prompt.

    Returns ``patterns``: float32 [layer, head, query, key] over the prompt's own positions.
    """
    from interp.prompts import token_roles
    from interp.tasks.suite import build_family_batch

    model = cached_model(spec)
    batch = build_family_batch(model.prompt_builder(), family, 1, count, seed)
    ann = batch.annotations[0]
    n = ann.length
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(batch.tokens, names, batch.attention_mask)
    # batch [1, pos] is left-padded to itself only: the prompt fills positions 0..n-1
    patterns = np.stack([cache[h][0, :, :n, :n].float().numpy() for h in names])
    tokens = token_texts(model.tokenizer, batch.tokens[0, :n].tolist())
    return {
        "tokens": tokens,
        "roles": token_roles(ann, n),
        "patterns": patterns,
        "s_q": ann.s_q,
        "y": list(ann.y),
        "blocks": list(ann.blocks),
    }


def target_positions(view: dict) -> tuple[list[int], str]:
    """The positions a head should read to answer: the label tokens (y), else the documents."""
    if view["y"]:
        return view["y"], "label tokens"
    spans = [range(a, b) for a, b in view["blocks"]]
    return [p for span in spans for p in span], "documents"


def head_grid(patterns: np.ndarray, query: int, targets: list[int]) -> np.ndarray:
    """[layer, head]: the attention each head sends from ``query`` to ``targets``, summed."""
    return patterns[:, :, query, targets].sum(-1)


def grid_figure(grid: np.ndarray, what: str, query_label: str) -> go.Figure:
    layers, heads = grid.shape
    table = pd.DataFrame(
        grid,
        index=pd.Index(range(layers), name="layer"),
        columns=pd.Index(range(heads), name="head"),
    )
    fig = heatmap(
        table,
        title=f"Every head: attention from {query_label} to the {what} (sum)",
        color="attention",
        scale="Blues",
        zmin=0,
        zmax=max(1e-9, float(grid.max())),
    )
    fig.update_traces(hovertemplate="L%{y}H%{x}: %{z:.3f}<extra></extra>")
    fig.update_layout(height=max(340, 160 + 24 * layers))
    return integer_axes(fig)


def attention_figure(frame: pd.DataFrame, layer: int, head: int, query_label: str) -> go.Figure:
    fig = px.bar(
        frame,
        x="position",
        y="attention",
        color="role",
        color_discrete_map={ROLE_NAMES[k]: c for k, c in ROLE_COLOURS.items()},
        hover_data=["token", "annotation"],
        title=f"L{layer}H{head}: attention from {query_label}",
    )
    return integer_axes(fig, max_ticks=20)


def _safe(tokens: list[str]) -> list[str]:
    """circuitsvis writes each token as HTML: escape it (this also keeps "</script>" out of
    the inline script), and keep its spaces visible inside the token's box."""
    return [html.escape(t).replace(" ", "\u00a0") for t in tokens]


def shaded_tokens(tokens: list[str], weights: list[float]) -> str:
    """circuitsvis's ColoredTokens, bundle inlined: each token shaded by its weight."""
    from circuitsvis.utils.render import render_local

    values = [round(float(w), 4) for w in weights]
    return render_local(
        "ColoredTokens",
        tokens=_safe(tokens),
        values=values,
        minValue=0.0,
        maxValue=max(1e-9, max(values)),
        positiveColor="#e6550d",
    )


def pattern_view(tokens: list[str], pattern: np.ndarray) -> str:
    """circuitsvis's AttentionPattern of one head: every query row, hover for the pair."""
    from circuitsvis.utils.render import render_local

    return render_local(
        "AttentionPattern", tokens=_safe(tokens), attention=np.round(pattern, 4).tolist()
    )


def _apply_preset() -> None:
    """A run page's "open in the prompt view" sets these before the widgets exist."""
    preset = st.session_state.pop("prompt_preset", None)
    if not preset:
        return
    from interp.models.registry import MODELS

    if preset["model"] in MODELS:
        st.session_state["model_pick"] = preset["model"]
    else:
        st.session_state["model_pick"], st.session_state["model_spec"] = FOLDER, preset["model"]
    st.session_state.update(task_pick=preset["task"], count=preset["shots"], seed=preset["seed"])


def pick_model() -> str | None:
    from interp.models.registry import MODELS

    names = [*MODELS, FOLDER]
    # the default through the session state, never as the widget's own default as well: a
    # preset from a run page sets the same key, and Streamlit warns when a key has both
    st.session_state.setdefault("model_pick", "organism")
    choice = st.selectbox(
        "model",
        names,
        key="model_pick",
        help="the models of `iclscope models`, or a model folder",
    )
    if choice != FOLDER:
        return choice
    return st.text_input("model folder", "", key="model_spec").strip() or None


def prompt_page() -> None:
    st.header("Prompt view")
    with st.spinner("importing torch, transformers and the models (once per server) ..."):
        model_libraries()
    from interp.tasks.suite import TASK_FAMILIES

    _apply_preset()
    top = st.columns([2, 3, 2, 1])
    with top[0]:
        spec = pick_model()
    if spec is None:
        st.info("type the path of a model folder")
        return
    try:
        model = cached_model(spec)
        names = buildable_families(spec)
    except Exception as err:  # noqa: BLE001 (any load failure is shown, at once)
        st.error(f"{spec} cannot be loaded: {err}")
        return
    if not names:
        st.error(
            f"{spec}'s tokenizer builds none of the task families (see `iclscope tasks "
            f"--model {spec}`)"
        )
        return
    if st.session_state.get("task_pick") not in names:
        st.session_state.pop("task_pick", None)
    family = top[1].selectbox("task", names, key="task_pick")
    fam = TASK_FAMILIES[family]
    label = COUNT_LABELS.get(fam.kind, "shots")
    lo, hi = {"ranking": (2, 20), "retrieval": (2, 32)}.get(fam.kind, (0, 8))
    default = min(hi, max(lo, fam.default_k if label != "shots" else 4))
    # a family of another kind (shots -> documents) starts from its own default count
    bounds, previous = (label, lo, hi), st.session_state.get("count_bounds")
    st.session_state["count_bounds"] = bounds
    now = st.session_state.get("count")
    if now is None or previous not in (None, bounds) or not lo <= now <= hi:
        st.session_state["count"] = default
    st.session_state.setdefault("seed", 0)  # (defaults through the state, as for the model)
    count = top[2].slider(label, lo, hi, key="count")
    seed = top[3].number_input("prompt seed", 0, 10_000, key="seed")
    try:
        view = prompt_patterns(spec, family, int(count), int(seed))
    except IclscopeError as err:
        st.error(str(err))
        return
    show_prompt(view, model.cfg.n_layers, model.cfg.n_heads)


def show_prompt(view: dict, n_layers: int, n_heads: int) -> None:
    tokens, roles, patterns = view["tokens"], view["roles"], view["patterns"]
    kinds = sorted({role_kind(r) for r in roles}, key=list(ROLE_COLOURS).index)
    st.markdown(role_legend(kinds), unsafe_allow_html=True)
    st.markdown(coloured_tokens(tokens, roles), unsafe_allow_html=True)
    positions = list(range(len(tokens)))
    # keyed by the prompt: a new prompt starts again from its own s_q
    name = lambda p: f"{p}: {tokens[p]} ({roles[p] or 'template'})"
    query = st.selectbox(
        "attention from",
        positions,
        index=view["s_q"],
        key=f"query_pos-{hash(tuple(tokens))}",
        format_func=name,
    )
    query_label = roles[query] or f"position {query}"
    targets, what = target_positions(view)
    grid = head_grid(patterns, query, targets) if targets else None
    if grid is not None:
        best = np.unravel_index(int(grid.argmax()), grid.shape)
        st.plotly_chart(grid_figure(grid, what, query_label), width="stretch", key="head_grid")
        st.caption(f"strongest: L{best[0]}H{best[1]} ({grid[best]:.2f}); open a head below")
    else:
        best = (n_layers - 1, 0)
    for key, top in (("layer", n_layers - 1), ("head", n_heads - 1)):
        if st.session_state.get(key, 0) > top:
            st.session_state[key] = top
    pick = st.columns(2)
    layer = pick[0].slider("layer", 0, n_layers - 1, int(best[0]), key="layer")
    head = pick[1].slider("head", 0, n_heads - 1, int(best[1]), key="head")
    weights = patterns[layer, head, query].tolist()
    left, right = st.columns([1, 1])
    with left:
        st.markdown(
            f"**L{layer}H{head}** attention from {query_label}, on the tokens "
            "(hover a token for its weight)"
        )
        st.iframe(shaded_tokens(tokens, weights), height=240)
    with right:
        frame = pd.DataFrame(
            {
                "position": positions,
                "token": tokens,
                "annotation": roles,
                "role": [ROLE_NAMES[role_kind(r)] for r in roles],
                "attention": weights,
            }
        )
        st.plotly_chart(
            attention_figure(frame, layer, head, query_label), width="stretch", key="attention"
        )
    # drawn on demand: each circuitsvis view carries its whole JavaScript bundle (1.3 MB)
    if st.toggle(
        f"L{layer}H{head}: the whole pattern, every position to every position", key="whole_pattern"
    ):
        st.iframe(pattern_view(tokens, patterns[layer, head]), height=520)
