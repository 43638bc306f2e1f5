"""The explorer's pages, each a function of the runs root (and Streamlit's state).

Kept apart from ``explorer.py`` so that tests can drive one page at a time with
``streamlit.testing.v1.AppTest`` and so that every page reads run directories only through
:mod:`interp.runs.store` (which refuses paths outside the runs root).
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import streamlit as st

# Heavy imports happen once, here: Streamlit reruns the page in threads, and a lazy import that
# races another rerun can see a half-initialised module ("cannot import name AutoConfig").
import transformers  # noqa: E402
from transformer_lens.model_bridge import TransformerBridge  # noqa: E402, F401

from interp.errors import IclscopeError
from interp.runs.store import Run, list_runs, load_run, resolve_run

_LOADED = (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModelForCausalLM)

ROLE_COLOURS = {"x": "#cfe2ff", "s": "#ffe5b4", "y": "#c7f0c2", "x_q": "#b6d4fe",
                "s_q": "#ffb3b3", "block": "#eeeeee", "": "#ffffff"}  # fmt: skip
STATUS_NOTES = {
    "running": "this run is still being written: reload to see more",
    "failed": "this run failed: {error}",
    "interrupted": "this run was stopped ({error}); what it wrote before the stop is shown",
    "stale": "this run's process ended without finishing it (killed, or out of memory); what "
    "it wrote before is shown",
}
"""What the run page says above a run that did not complete (see interp.runs.store.run_status)."""
STEP_FIGURES = {
    "Step 1: summarize": ("step1", "accuracy_by_layer"),
    "Step 2: semantics merge": ("step2", "forerunner"),
    "Step 3: retrieve and copy": ("step3", "retrieval", "subspace"),
    "Ablations": ("ablation",),
}


def runs_table(root: str) -> pd.DataFrame:
    """One row per run directory: broken runs included, with their reason."""
    rows = []
    for r in list_runs(root):
        headline = {k: v for k, v in (r.get("summary") or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
        command = r.get("command")
        rows.append({
            "run": r["run_id"], "status": r["status"], "kind": r.get("kind"),
            "model": r.get("model"), "task": r.get("task"), "started": r.get("started"),
            "command": " ".join(command) if isinstance(command, list) else command,
            "headline": ", ".join(f"{k}={v:.3g}" for k, v in list(headline.items())[:3]),
            "reason": r.get("reason"),
        })  # fmt: skip
    columns = ["run", "status", "kind", "model", "task", "started", "command", "headline",
               "reason"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def open_run(root: str, name: str) -> Run | None:
    """Load a run by name, or show why it cannot be shown (never raise into the page)."""
    try:
        return load_run(resolve_run(root, name))
    except IclscopeError as err:
        st.error(f"broken run {name!r}: {err}")
        return None


def runs_page(root: str) -> str | None:
    st.header("Runs")
    table = runs_table(root)
    query = st.text_input("filter runs", "", key="filter")
    if query:
        hit = table.apply(lambda r: query.lower() in " ".join(map(str, r.values)).lower(), axis=1)
        table = table[hit]
    st.table(table.set_index("run"))  # a real HTML table: readable by people and browsers alike
    if table.empty:
        st.info(f"no runs under {root}: write one with `iclscope demo` or `iclscope run patch`")
        return None
    names = table["run"].tolist()
    wanted = st.query_params.get("run")
    return st.selectbox("open run", names, index=names.index(wanted) if wanted in names else 0,
                        key="run_pick")  # fmt: skip


def show_figures(run: Run, names: list[str], key: str) -> None:
    for name in names:
        st.plotly_chart(run.figures[name], use_container_width=True, key=f"{key}-{name}")


def run_page(root: str, name: str) -> None:
    run = open_run(root, name)
    if run is None:
        return
    m = run.manifest
    st.header(f"{name}")
    st.caption(f"{m.get('kind')} on {m.get('model')}, task {m.get('task')}, status {run.status}")
    note = STATUS_NOTES.get(run.status)
    if note:
        st.warning(note.format(error=m.get("error")))
    left, right = st.columns([3, 2])
    with left:
        if m.get("kind") == "circuit":
            shown = set()
            for section, prefixes in STEP_FIGURES.items():
                names = [f for f in run.figures if f.startswith(prefixes)]
                if names:
                    st.subheader(section)
                    show_figures(run, names, f"{name}-{section}")
                    shown |= set(names)
            show_figures(run, [f for f in run.figures if f not in shown], name)
        elif m.get("kind") == "eviction":
            from app.eviction_page import eviction_view

            eviction_view(run, name)
        elif m.get("kind") == "task-vectors":
            from app.task_vectors_page import task_vectors_view

            task_vectors_view(run, name)
        else:
            show_figures(run, list(run.figures), name)
        if "top_components" in run.tables:
            st.subheader("Top components")
            st.dataframe(run.tables["top_components"], hide_index=True)
        for table_name, table in run.tables.items():
            with st.expander(f"table {table_name} ({len(table)} rows)"):
                st.dataframe(table, hide_index=True)
    with right:
        if run.summary:
            st.subheader("Summary")
            st.json(run.summary)
        if run.report:
            st.subheader("Report")
            st.markdown(run.report)


def coloured_tokens(tokens: list[str], roles: list[str]) -> str:
    """Tokens as HTML spans coloured by their annotated role."""
    spans = []
    for tok, role in zip(tokens, roles):
        kind = role if role in ("x_q", "s_q") else role.split("_")[0]
        colour = ROLE_COLOURS.get(kind, "#ffffff")
        text = html.escape(tok).replace("\n", "\u21b5")
        spans.append(f'<span class="tok" title="{html.escape(role)}" style="background:{colour};'
                     f'padding:1px 3px;margin:1px;border-radius:3px">{text}</span>')  # fmt: skip
    return '<div class="tokens">' + "".join(spans) + "</div>"


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


def prompt_page(default_model: str = "organism") -> None:
    from interp.prompts import token_roles
    from interp.tasks.suite import TASK_FAMILIES, build_family_batch

    st.header("Prompt view")
    spec = st.text_input("model", default_model, key="model_spec")
    try:
        model = cached_model(spec)
    except IclscopeError as err:
        st.error(str(err))
        return
    # only the families this model's tokenizer can build: English ones for a real model
    names = [n for n in buildable_families(spec) if TASK_FAMILIES[n].kind != "retrieval"]
    family = st.selectbox("task", names, key="task_pick")
    shots = st.slider("shots", 0, 8, 4, key="shots")
    seed = st.number_input("prompt seed", 0, 10_000, 0, key="seed")
    try:
        batch = build_family_batch(model.prompt_builder(), family, 1, shots, int(seed))
    except IclscopeError as err:
        st.error(str(err))
        return
    ann = batch.annotations[0]
    tokens = model.tokenizer.convert_ids_to_tokens(batch.tokens[0, : ann.length].tolist())
    roles = token_roles(ann, ann.length)
    st.markdown(coloured_tokens(tokens, roles), unsafe_allow_html=True)
    layer = st.slider("layer", 0, model.cfg.n_layers - 1, model.cfg.n_layers - 1, key="layer")
    head = st.slider("head", 0, model.cfg.n_heads - 1, 0, key="head")
    name = f"blocks.{layer}.attn.hook_pattern"
    _, cache = model.run_with_cache(batch.tokens, [name], batch.attention_mask)
    weights = cache[name][0, head, ann.s_q, : ann.length].tolist()
    kinds = [r if r in ("x_q", "s_q") else (r.split("_")[0] or "template") for r in roles]
    frame = pd.DataFrame({"position": range(ann.length), "token": tokens, "role": roles,
                          "kind": kinds, "attention": weights})  # fmt: skip
    fig = px.bar(frame, x="position", y="attention", color="kind", hover_data=["token", "role"],
                 title=f"L{layer}H{head}: attention from s_q")  # fmt: skip
    st.plotly_chart(fig, use_container_width=True, key="attention")


def compare_page(root: str) -> None:
    st.header("Compare runs")
    names = runs_table(root)["run"].tolist()
    if len(names) < 2:
        st.info("two runs are needed to compare")
        return
    cols = st.columns(2)
    for i, col in enumerate(cols):
        with col:
            pick = st.selectbox(f"run {i + 1}", names, index=min(i, len(names) - 1),
                                key=f"compare{i}")  # fmt: skip
            run = open_run(root, pick)
            if run is not None:
                st.caption(f"{run.manifest.get('kind')} on {run.manifest.get('model')}")
                st.json(run.summary)
                show_figures(run, list(run.figures)[:3], f"cmp{i}")
