"""The graph of a CWL document (inputs -> steps -> outputs) and a small server-rendered SVG of it
(layered by longest path from the inputs; no JavaScript, no CDN)."""

from __future__ import annotations

from html import escape
from typing import Any

from datalabs.pipelines.documents import main_process, short_id


def _ref(source: str, main_id: str) -> str:
    """`#main/step1/out` -> `step1`, `#main/text` -> `in:text`."""
    rest = source.split(main_id + "/", 1)[-1] if main_id else source.lstrip("#")
    return rest.split("/")[0] if "/" in rest else f"in:{rest}"


def graph(packed: dict[str, Any]) -> dict[str, Any]:
    main = main_process(packed)
    main_id = main.get("id", "#main")
    nodes = [
        {"id": f"in:{short_id(p['id'])}", "kind": "input", "label": short_id(p["id"])}
        for p in main.get("inputs", [])
    ]
    edges: list[dict[str, str]] = []
    if main.get("class") == "Workflow":
        for step in main.get("steps", []):
            sid = short_id(step["id"])
            run = step.get("run")
            tool = short_id(run if isinstance(run, str) else run.get("id", sid)) if run else sid
            nodes.append(
                {"id": sid, "kind": "step", "label": sid, "tool": tool, "scatter": bool(step.get("scatter"))}
            )
            for port in step.get("in", []):
                sources = port.get("source", [])
                for src in sources if isinstance(sources, list) else [sources]:
                    edges.append({"from": _ref(src, main_id), "to": sid, "port": short_id(port["id"])})
        for out in main.get("outputs", []):
            oid = f"out:{short_id(out['id'])}"
            nodes.append({"id": oid, "kind": "output", "label": short_id(out["id"])})
            sources = out.get("outputSource", [])
            for src in sources if isinstance(sources, list) else [sources]:
                edges.append({"from": _ref(src, main_id), "to": oid, "port": ""})
    else:
        tool = main.get("label") or main.get("class", "tool")
        nodes.append({"id": "tool", "kind": "step", "label": tool, "tool": tool, "scatter": False})
        edges += [{"from": n["id"], "to": "tool", "port": n["label"]} for n in nodes if n["kind"] == "input"]
        for out in main.get("outputs", []):
            oid = f"out:{short_id(out['id'])}"
            nodes.append({"id": oid, "kind": "output", "label": short_id(out["id"])})
            edges.append({"from": "tool", "to": oid, "port": ""})
    return {"nodes": nodes, "edges": edges}


def _layers(g: dict[str, Any]) -> dict[str, int]:
    depth = {n["id"]: 0 for n in g["nodes"]}
    for _ in range(len(depth)):
        changed = False
        for e in g["edges"]:
            if e["from"] in depth and e["to"] in depth and depth[e["to"]] < depth[e["from"]] + 1:
                depth[e["to"]] = depth[e["from"]] + 1
                changed = True
        if not changed:
            break
    return depth


def svg(g: dict[str, Any]) -> str:
    depth = _layers(g)
    columns: dict[int, list[dict]] = {}
    for n in g["nodes"]:
        columns.setdefault(depth[n["id"]], []).append(n)
    w, h, gap_x, gap_y = 150, 36, 60, 18
    pos = {}
    for col, items in columns.items():
        for row, n in enumerate(items):
            pos[n["id"]] = (20 + col * (w + gap_x), 20 + row * (h + gap_y))
    width = 40 + (max(columns or {0: []}) + 1) * (w + gap_x)
    height = 40 + max((len(v) for v in columns.values()), default=1) * (h + gap_y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker></defs>',
    ]
    for e in g["edges"]:
        if e["from"] in pos and e["to"] in pos:
            (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
            parts.append(
                f'<line x1="{x1 + w}" y1="{y1 + h / 2}" x2="{x2}" y2="{y2 + h / 2}" stroke="#667" '
                'marker-end="url(#arrow)"/>'
            )
    fills = {"input": "#e3f0ff", "step": "#fff4d6", "output": "#e4f7e4"}
    for n in g["nodes"]:
        x, y = pos[n["id"]]
        label = escape(n["label"][:22]) + (" ⧉" if n.get("scatter") else "")
        parts.append(
            f'<g class="node {n["kind"]}"><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" '
            f'fill="{fills[n["kind"]]}" stroke="#556"/><text x="{x + w / 2}" y="{y + h / 2 + 4}" '
            f'text-anchor="middle" font-size="12" font-family="sans-serif">{label}</text>'
            f"<title>{escape(n['kind'])}: {escape(n['label'])}</title></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
