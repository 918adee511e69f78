"""./hive demo --plot: one self-contained HTML page (inline SVG, no script, nothing fetched)
with the consensus weights, the error rates and the experiments over the run.

    write(path, summary, timeline_path)
"""
import html
import json

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
W, H, PAD = 760, 230, 44


def _scale(v, lo, hi, a, b):
    return a + (b - a) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _chart(title, t_max, series, y_lo, y_hi, y_label, marks=()):
    """series: [(name, [(t, y)...])]; marks: [(t, label)] as vertical lines."""
    out = [f'<h2>{html.escape(title)}</h2>',
           f'<svg width="{W}" height="{H + 30}" viewBox="0 0 {W} {H + 30}" xmlns="http://www.w3.org/2000/svg" '
           'font-family="sans-serif" font-size="11">',
           f'<rect x="{PAD}" y="10" width="{W - 2 * PAD}" height="{H - 30}" fill="#fafafa" stroke="#ccc"/>']
    for i in range(5):
        yv = y_lo + (y_hi - y_lo) * i / 4
        y = _scale(yv, y_lo, y_hi, H - 20, 10)
        out.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
    for i in range(6):
        tv = t_max * i / 5
        x = _scale(tv, 0, t_max, PAD, W - PAD)
        out.append(f'<text x="{x:.1f}" y="{H - 6}" text-anchor="middle">{tv:.0f}s</text>')
    out.append(f'<text x="12" y="{H / 2:.0f}" transform="rotate(-90 12 {H / 2:.0f})" text-anchor="middle">'
               f'{html.escape(y_label)}</text>')
    for t, label in marks:
        x = _scale(t, 0, t_max, PAD, W - PAD)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="10" y2="{H - 20}" stroke="#999" stroke-dasharray="4 3"/>'
                   f'<text x="{x + 3:.1f}" y="22">{html.escape(label)}</text>')
    for k, (name, pts) in enumerate(series):
        if not pts:
            continue
        c = COLORS[k % len(COLORS)]
        d = " ".join(f"{_scale(t, 0, t_max, PAD, W - PAD):.1f},{_scale(y, y_lo, y_hi, H - 20, 10):.1f}"
                     for t, y in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{d}"/>')
        lx = PAD + 8 + k * 120
        out.append(f'<rect x="{lx}" y="{H + 8}" width="10" height="10" fill="{c}"/>'
                   f'<text x="{lx + 14}" y="{H + 17}">{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _experiments(t_max, summary, t0_ms):
    """One bar per experiment from its first sighting to its end, coloured by decision."""
    rows = summary.get("experiment_bars", [])
    h = 18 * max(1, len(rows)) + 40
    out = ['<h2>Experiments</h2>',
           f'<svg width="{W}" height="{h}" viewBox="0 0 {W} {h}" xmlns="http://www.w3.org/2000/svg" '
           'font-family="sans-serif" font-size="11">']
    col = {"ACCEPT": "#2ca02c", "REJECT": "#d62728", "INCONCLUSIVE": "#999", None: "#1f77b4"}
    for i, r in enumerate(rows):
        x0 = _scale(r["start"], 0, t_max, 200, W - 10)
        x1 = _scale(r["end"] if r["end"] is not None else t_max, 0, t_max, 200, W - 10)
        y = 10 + 18 * i
        out.append(f'<text x="4" y="{y + 11}">{html.escape(r["label"][:34])}</text>'
                   f'<rect x="{x0:.1f}" y="{y}" width="{max(2, x1 - x0):.1f}" height="13" '
                   f'fill="{col.get(r["decision"], "#1f77b4")}"><title>{html.escape(r["title"])}</title></rect>')
    out.append(f'<text x="200" y="{h - 8}">green ACCEPT, red REJECT/ABORTED, grey INCONCLUSIVE, blue running</text>')
    out.append("</svg>")
    return "\n".join(out)


def write(path, summary, timeline_path):
    rows = []
    with open(timeline_path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    t_max = max([r["t"] for r in rows] + [1])
    specs = list(summary["weights_final"].keys())
    marks = []
    reg = next((r["t"] for r in rows if r.get("regressed")), None)
    drift = next((r["t"] for r in rows if r.get("drifted")), None)
    if reg is not None:
        marks.append((reg, "regression"))
    if drift is not None:
        marks.append((drift, "drift"))
    weights = [(s, [(r["t"], r["weights"][s]) for r in rows if "weights" in r]) for s in specs]
    best = summary["best_feasible_weights"]
    errs = [("api-gateway (true)", [(r["t"], r["api-gateway"]) for r in rows if "api-gateway" in r]),
            ("task-router (true)", [(r["t"], r["task-router"]) for r in rows if "task-router" in r])]
    engine = [("engine error (true)", [(r["t"], r["engine_error"]) for r in rows if "engine_error" in r]),
              ("engine error (observed)", [(r["t"], r["engine_observed_error"]) for r in rows
                                           if "engine_observed_error" in r]),
              ("best fixed feasible", [(0, summary["best_feasible_error"]), (t_max, summary["best_feasible_error"])])]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                    for k, v in summary_rows(summary))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Hive demo {html.escape(summary['tag'])}</title>
<style>body{{font-family:sans-serif;max-width:820px;margin:20px auto}}td{{padding:2px 10px;border-bottom:1px solid #eee}}</style>
</head><body><h1>The closed loop, run {html.escape(summary['tag'])}</h1>
<p>Figures read from the services' topics and APIs; the truth (hidden accuracies, true error rates) from the
simulator. Best fixed feasible weights: {html.escape(', '.join(f'{k} {v:.2f}' for k, v in best.items()))}.</p>
<table>{table}</table>
{_chart('Consensus weights (consensus.weights)', t_max, weights, 0.0, 0.45, 'weight', marks)}
{_chart('Consensus Engine decision error', t_max, engine, 0.05, 0.2, 'error', marks)}
{_chart('Service error rate (true)', t_max, errs, 0.0, 0.06, 'error rate', marks)}
{_experiments(t_max, summary, None)}
</body></html>"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)


def summary_rows(s):
    return [
        ("regressions injected / detected / fixed",
         f"{s['regressions_injected']} / {s['regressions_detected']} / {s['regressions_fixed']}"),
        ("harmful changes tried / caught", f"{s['harmful_changes']} / {s['harmful_caught']}"),
        ("experiments / with a result", f"{s['experiments']} / {s['experiment_results']}"),
        ("engine error initial -> final",
         f"{s['engine_error_initial']:.4f} -> {s['engine_error_final']:.4f} (best {s['best_feasible_error']:.4f})"),
        ("weight regret initial -> final", f"{s['weight_regret_initial']:.4f} -> {s['weight_regret_final']:.4f}"),
        ("constraint violations", s["constraint_violations"]),
        ("drift detected", ", ".join(",".join(d["features"]) for d in s["drift_detected"]) or "none"),
        ("retrainer", s["retrainer"]),
    ]
