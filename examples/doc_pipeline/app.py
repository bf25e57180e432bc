"""Review predictions and correct them: flor as a feedback store.

Routes:
  GET  /                                  the pool's bundles and the model in use
  GET  /document/<name>                   pages with the model's prediction or a person's label
  POST /document/<name>/labels            corrected labels: form fields page-<i>=1 for pages
                                          that start a document, or JSON {"first_page": [...]}
  GET  /api/documents/<name>              the same page data as JSON

Each correction is logged with flor.iteration("document", ...) + flor.loop("page", ...)
and made visible with flor.commit(), so every human label carries its provenance: the
filename app.py and the tstamp of the commit that saved it, the model whose predictions it
corrected (`corrected_model`) and, as a lineage input, the predictions file itself.

Run: python app.py [--port 5000]  (not `flask run`: flor names runs after the script)
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import flask
from features import from_script

import flor

app = flask.Flask(__name__)
PREDICTIONS = Path(__file__).resolve().parent / "data" / "predictions.json"
feedback_lock = threading.Lock()  # flor's loop coordinates are per process, not per thread

INDEX = """<!doctype html><title>doc pipeline</title>
<h1>Bundles</h1>
<p>Model: {% if model %}run {{ model.run }}, epoch {{ model.epoch }},
gold recall {{ '%.3f' % model.recall }}{% else %}none yet (make infer){% endif %}</p>
<ul>{% for name in names %}<li><a href="/document/{{ name }}">{{ name }}</a></li>{% endfor %}</ul>
"""
DOCUMENT = """<!doctype html><title>{{ name }}</title>
<h1>{{ name }}</h1>
<form method="post" action="/document/{{ name }}/labels"><table>
<tr><th>page</th><th>starts a document</th><th>source</th><th>colour</th><th>text</th></tr>
{% for p in pages %}<tr><td>{{ p.page }}</td>
<td><input type="checkbox" name="page-{{ p.page }}" value="1"
 {% if p.first_page == 1 %}checked{% endif %}></td>
<td>{{ p.source }}</td><td>{{ p.color }}</td><td>{{ p.text[:80] }}</td></tr>
{% endfor %}</table><button>Save labels</button></form>
"""


def _latest_rows(frame: Any, script: str) -> Any:
    rows = from_script(frame, script)
    return rows[rows["tstamp"] == rows["tstamp"].max()] if len(rows) else rows


def pool_names() -> list[str]:
    prep = _latest_rows(flor.dataframe("split"), "prep.py")
    return sorted(prep.loc[prep["split"] == "pool", "document_value"])


def current_model() -> dict[str, Any] | None:
    infer = _latest_rows(flor.dataframe("model_run", "model_epoch", "model_recall"), "infer.py")
    if infer.empty:
        return None
    row = infer.iloc[-1]
    return {"run": row["model_run"], "epoch": row["model_epoch"], "recall": row["model_recall"]}


def document_pages(name: str) -> list[dict[str, Any]]:
    """Each page's text, the newest prediction and the newest human label, with provenance."""
    frame = flor.dataframe("page_text", "first_page", "first_page_pred", "first_page_prob")
    frame = frame[frame["document_value"] == name]
    prep = _latest_rows(frame, "prep.py").set_index("page")
    infer = _latest_rows(frame, "infer.py").set_index("page")
    human = from_script(frame, "app.py").dropna(subset=["first_page"]).sort_values("tstamp")
    human = human.drop_duplicates("page", keep="last").set_index("page")
    pages, color = [], -1
    for page in sorted(prep.index):
        entry: dict[str, Any] = {"page": int(page), "text": prep.at[page, "page_text"]}
        if page in human.index:
            entry["first_page"] = int(human.at[page, "first_page"])
            entry["source"] = f"app.py {human.at[page, 'tstamp']}"
        elif page in infer.index:
            entry["first_page"] = int(infer.at[page, "first_page_pred"])
            entry["prob"] = float(infer.at[page, "first_page_prob"])
            entry["source"] = f"infer.py {infer.at[page, 'tstamp']}"
        else:
            entry["first_page"], entry["source"] = None, "none"
        color += entry["first_page"] or 0
        entry["color"] = max(color, 0)
        pages.append(entry)
    return pages


def save_labels(name: str, labels: list[int]) -> None:
    prep = _latest_rows(flor.dataframe("split"), "prep.py")
    index = int(prep.loc[prep["document_value"] == name, "document"].iloc[0])
    model = current_model()
    with feedback_lock:
        with flor.iteration("document", index, name):
            # The predictions the person corrected, and the model that made them: lineage
            # links these labels to infer.py's run, and through the checkpoint it loaded to
            # the training run (`flor lineage data/predictions.json`).
            if PREDICTIONS.exists():
                flor.input(PREDICTIONS)
            flor.log("corrected_model", model["run"] if model else None)
            for page in flor.loop("page", range(len(labels))):
                flor.log("first_page", labels[page])
        flor.commit()


@app.get("/")
def home() -> str:
    return flask.render_template_string(INDEX, names=pool_names(), model=current_model())


@app.get("/document/<name>")
def view_document(name: str) -> str:
    pages = document_pages(name)
    if not pages:
        flask.abort(404)
    return flask.render_template_string(DOCUMENT, name=name, pages=pages)


@app.get("/api/documents/<name>")
def document_json(name: str) -> Any:
    pages = document_pages(name)
    if not pages:
        flask.abort(404)
    return {"document": name, "pages": pages}


@app.post("/document/<name>/labels")
def post_labels(name: str) -> Any:
    pages = document_pages(name)
    if not pages:
        flask.abort(404)
    if flask.request.is_json:
        labels = (flask.request.get_json(silent=True) or {}).get("first_page")
        valid = isinstance(labels, list) and all(v in (0, 1) for v in labels)
        if not valid or len(labels) != len(pages):
            return {"error": f"first_page must be a list of {len(pages)} zeros and ones"}, 400
    else:
        labels = [int(flask.request.form.get(f"page-{p['page']}") == "1") for p in pages]
    save_labels(name, [int(v) for v in labels])
    if flask.request.is_json:
        return {"document": name, "saved": len(labels)}
    return flask.redirect(f"/document/{name}", code=303)


def main() -> None:
    parser = argparse.ArgumentParser(description="Review and correct the pipeline's labels.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    options = parser.parse_args()
    from werkzeug.serving import make_server

    server = make_server(options.host, options.port, app)
    # A stop (Ctrl-C, SIGTERM) ends the server normally, so the flor run ends "finished".
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving on http://{options.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
