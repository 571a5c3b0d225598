// sphere-ray report viewer: reads the JSON in #report-data and builds the page with DOM calls only
// (textContent, never innerHTML), so step texts from a model are shown as text.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const state = { round: 0, stage: "all", outcome: "all", query: "", problem: null, node: null };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }
  const fmt = (x) => (x === null || x === undefined ? "\u2013" : typeof x === "number" ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : String(x));
  const short = (text, n) => (text.length > n ? text.slice(0, n) + "\u2026" : text);
  const round = () => DATA.rounds[state.round] || { problems: [], pairs: [], left_out: 0 };

  function select(label, id, values, current, onchange) {
    const s = el("select", { id: id, onchange: (e) => onchange(e.target.value) });
    for (const v of values) {
      const o = el("option", { value: String(v) }, String(v));
      if (String(v) === String(current)) o.selected = true;
      s.appendChild(o);
    }
    return el("label", {}, label + " ", s);
  }

  function header() {
    const r = round();
    const stages = ["all", ...new Set(r.problems.map((p) => p.stage))].sort();
    const outcomes = ["all", ...new Set(r.problems.map((p) => p.outcome))].sort();
    const rounds = DATA.rounds.map((x, i) => i);
    const search = el("input", { id: "query", type: "search", placeholder: "problem id or text", value: state.query });
    search.addEventListener("input", (e) => { state.query = e.target.value; renderList(); });
    return el("header", {},
      el("h1", {}, DATA.title),
      DATA.rounds.length > 1 ? select("round", "round", rounds, state.round, (v) => { state.round = Number(v); state.problem = null; render(); }) : null,
      select("stage", "stage", stages, state.stage, (v) => { state.stage = v; renderList(); }),
      select("outcome", "outcome", outcomes, state.outcome, (v) => { state.outcome = v; renderList(); }),
      el("label", {}, search),
      el("span", { class: "muted", id: "counts" }));
  }

  function visible() {
    const q = state.query.toLowerCase();
    return round().problems.filter((p) =>
      (state.stage === "all" || String(p.stage) === state.stage) &&
      (state.outcome === "all" || p.outcome === state.outcome) &&
      (!q || p.id.toLowerCase().includes(q) || (p.trees[0] && p.trees[0].prompt.toLowerCase().includes(q))));
  }

  function renderList() {
    const list = document.getElementById("problems");
    list.replaceChildren();
    const shown = visible();
    for (const p of shown) {
      const item = el("div", { class: "item" + (state.problem === p.id ? " selected" : ""), "data-problem": p.id, "data-pairs": String(p.num_pairs),
        onclick: () => { state.problem = p.id; state.node = null; renderList(); renderDetail(); } },
        el("b", {}, p.id), el("br"), el("span", { class: "muted" }, `stage ${p.stage} \u00b7 ${p.outcome} \u00b7 ${p.num_pairs} pairs`));
      list.appendChild(item);
    }
    const left = round().left_out ? ` (${round().left_out} more not embedded)` : "";
    document.getElementById("counts").textContent = `${shown.length} of ${round().problems.length} problems${left}`;
  }

  function pairsOf(problemId) { return round().pairs.filter((x) => x.problem_id === problemId); }

  // a step-level pair holds the step itself (at its depth); a trajectory-level pair holds it as one of its steps
  function holds(x, side, node) {
    const text = x[side];
    if (x.level === "step") return text === node.text && (x.depth === null || x.depth === node.depth);
    return text.split(DATA.step_separator).includes(node.text);
  }

  function pairsWithStep(problemId, node) {
    const out = [];
    for (const x of pairsOf(problemId)) {
      for (const side of ["chosen", "rejected"]) if (holds(x, side, node)) out.push({ pair: x, side: side });
    }
    return out;
  }

  function treeView(problem, tree, t) {
    const children = new Map();
    for (const n of tree.nodes) {
      const key = n.parent === null ? "root" : n.parent;
      if (!children.has(key)) children.set(key, []);
      children.get(key).push(n);
    }
    function branch(key) {
      const ul = el("ul");
      for (const n of children.get(key) || []) {
        const mark = n.terminal ? (n.correct === true ? " \u2713" : n.correct === false ? " \u2717" : "") : "";
        const id = `node-${t}-${n.id}`;
        const button = el("button", { class: `node ${n.kept}` + (state.node === id ? " selected" : ""), id: id,
          "data-node": String(n.id), title: n.text,
          onclick: () => { state.node = id; renderDetail(); renderNode(problem, tree, n); } },
          `${short(n.text, 60)}  [R ${fmt(n.reward)}]${mark}`);
        ul.appendChild(el("li", {}, button, branch(n.id)));
      }
      return ul;
    }
    return el("div", { class: "tree" },
      el("h3", {}, `tree ${t + 1}: ${tree.kind} \u00b7 ${tree.model} \u00b7 ${tree.nodes.length} nodes`), branch("root"));
  }

  function pairView(x, highlight) {
    const side = (name, text, score, correct) => el("div", { class: name },
      el("b", {}, `${name}  (score ${fmt(score)}${correct === null || correct === undefined ? "" : correct ? ", right" : ", wrong"})`),
      el("pre", {}, text));
    return el("div", {},
      el("div", { class: "muted" }, `pair ${x.pair_id} \u00b7 stage ${x.stage} \u00b7 ${x.level}${x.depth === null ? "" : " \u00b7 depth " + x.depth}`),
      el("div", { class: "pair" + (highlight ? " highlight" : ""), "data-pair": x.pair_id },
        side("chosen", x.chosen, x.chosen_score, x.chosen_correct),
        side("rejected", x.rejected, x.rejected_score, x.rejected_correct)));
  }

  function renderDetail() {
    const detail = document.getElementById("detail");
    detail.replaceChildren();
    const problem = round().problems.find((p) => p.id === state.problem);
    if (!problem) {
      detail.appendChild(el("p", { class: "muted" }, "Pick a problem on the left."));
      const fig = figures();
      if (fig) detail.appendChild(fig);
      return;
    }
    detail.appendChild(el("h2", {}, problem.id));
    if (problem.trees[0]) detail.appendChild(el("div", { class: "prompt" }, problem.trees[0].prompt));
    detail.appendChild(el("p", { class: "muted" }, "Green: the max branch's kept steps; red: the min branch's; grey: pruned. [R] is the step reward; \u2713/\u2717 a graded final answer. Click a step."));
    problem.trees.forEach((tree, t) => detail.appendChild(treeView(problem, tree, t)));
    const pairs = pairsOf(problem.id);
    detail.appendChild(el("h2", {}, `pairs (${pairs.length})`));
    for (const x of pairs) detail.appendChild(pairView(x, false));
  }

  function renderNode(problem, tree, n) {
    const panel = document.getElementById("node-panel");
    panel.replaceChildren();
    const rows = [["depth", n.depth], ["PRM p(s)", n.prm], ["reward R(s)", n.reward], ["kept", n.kept], ["tokens", n.num_tokens],
      ["terminal", n.terminal], ["answer", n.answer], ["correct", n.correct], ["tree", `${tree.kind} (${tree.model})`]];
    const table = el("table", { class: "kv" });
    for (const [k, v] of rows) table.appendChild(el("tr", {}, el("td", {}, k), el("td", { "data-field": k }, fmt(v))));
    panel.append(el("h2", {}, "step"), el("div", { class: "step-text", id: "step-text" }, n.text), table);
    const used = pairsWithStep(problem.id, n);
    panel.appendChild(el("h3", {}, used.length ? `in ${used.length} pair(s)` : "in no pair"));
    for (const u of used) panel.appendChild(el("div", { class: "muted" }, `${u.side} side of pair ${u.pair.pair_id} (stage ${u.pair.stage}, ${u.pair.level})`));
  }

  function figures() {
    if (!DATA.figures.length) return null;
    return el("section", { class: "figures" }, el("h2", {}, "figures"),
      ...DATA.figures.map((f) => el("img", { src: f.src, alt: f.name, title: f.name })));
  }

  function render() {
    const app = document.getElementById("app");
    app.replaceChildren(header(),
      el("main", {}, el("div", { id: "problems" }), el("div", { id: "detail" }), el("div", { id: "node-panel" }, el("p", { class: "muted" }, "Step details appear here."))));
    renderList();
    renderDetail();
  }

  render();
})();
