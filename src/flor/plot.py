"""Metric curves after the fact: what TensorBoard would have shown, drawn from the store.

`plot(["loss", "acc"], by="run")` draws one panel per name and one curve per recorded run
(or, with `by="version"`, per code version: the mean over that version's runs), each value
placed at its position in the run's loop order (epoch 0, 1, ... or epoch/step in order).
Hindsight values replayed later are plotted like recorded ones. matplotlib is imported
only here, and through its object API on the Agg canvas: no window, no global backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flor.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

BY = ("run", "version")
DEFAULT_OUTPUT = Path("flor_plot.png")
MAX_LEGEND = 20


def plot(
    names: Sequence[str] | str,
    by: str = "run",
    where: str | None = None,
    output: Path | str = DEFAULT_OUTPUT,
    *,
    width: int = 800,
    height: int = 300,
    dpi: int = 100,
) -> Path:
    """Draw the curves of `names` into a PNG of `width` x `height * len(names)` pixels.

    `where` keeps the runs whose values match an expression such as
    ``"lr < 0.01 and filename == 'train.py'"``: names there are compared by each run's
    last value (recorded, else replayed: see `flor.where`); `runid`, `filename`, `projid`,
    `tstamp` and `version` (the run's snapshot commit) are also available. Returns the path
    written.
    """
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    if not names:
        raise UsageError("name the values to plot, e.g. flor plot loss acc")
    if by not in BY:
        raise UsageError(f"by={by!r}: plot curves by 'run' or by 'version'")
    if width < 100 or height < 100 or dpi < 10:
        raise UsageError("plots need width and height of at least 100 pixels, dpi of at least 10")
    from flor.store import reader
    from flor.where import matching_runs

    versions = _versions(reader.runs())
    frames = {name: _numeric(reader.dataframe([name]), name) for name in names}
    if all(frame.empty for frame in frames.values()):
        raise UsageError(
            f"no numeric values logged under {', '.join(names)}: `flor dataframe` lists them"
        )
    keep = matching_runs(where) if where else None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _draw(frames, by, keep, versions, output, width, height, dpi)
    return output.resolve()


def _versions(runs: pd.DataFrame) -> dict[str, str]:
    if runs.empty:
        return {}
    snapshots = runs["snapshot"].where(runs["snapshot"].notna(), None)
    return {
        run_id: str(snapshot)[:10] if snapshot else "unversioned"
        for run_id, snapshot in zip(runs["run_id"], snapshots, strict=True)
    }


def _numeric(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The name's numeric values with their run and their position in the run's loop order."""
    import pandas as pd

    from flor.store.pivot import RUN_KEYS

    if frame.empty or name not in frame.columns:
        return pd.DataFrame(columns=["runid", "filename", "x", "y", "axis"])
    values = pd.to_numeric(frame[name], errors="coerce")
    frame = frame.assign(y=values)[values.notna()]
    loops = [
        c
        for c in frame.columns
        if c not in (name, "y", *RUN_KEYS) and not str(c).endswith("_value")
    ]
    if loops:
        frame = frame.sort_values(["tstamp", "runid", *loops], kind="stable")
    frame = frame.assign(x=frame.groupby("runid").cumcount())
    axis = " / ".join(loops) if loops else "run"
    return frame[["runid", "filename", "x", "y"]].assign(axis=axis)


def _draw(
    frames: dict[str, pd.DataFrame],
    by: str,
    keep: set[str] | None,
    versions: dict[str, str],
    output: Path,
    width: int,
    height: int,
    dpi: int,
) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("flor plot needs matplotlib: pip install 'flor[plot]'") from None

    figure = Figure(figsize=(width / dpi, height * len(frames) / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(frames), 1, squeeze=False)[:, 0]
    for ax, (name, frame) in zip(axes, frames.items(), strict=True):
        if keep is not None:
            frame = frame[frame["runid"].isin(keep)]
        curves = _curves(frame, by, versions)
        for label, curve in curves:
            marker = "o" if len(curve) < 2 else None
            ax.plot(curve["x"], curve["y"], label=label, marker=marker, linewidth=1.2)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(name, fontsize=9)
        ax.set_xlabel(frame["axis"].iloc[0] if len(frame) else "", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(True, alpha=0.3)
        if not curves:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        elif len(curves) <= MAX_LEGEND:
            ax.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(output, format="png", dpi=dpi)


def _curves(
    frame: pd.DataFrame, by: str, versions: dict[str, str]
) -> list[tuple[str, pd.DataFrame]]:
    if frame.empty:
        return []
    if by == "run":
        return [
            (f"{str(run_id)[:8]} {group['filename'].iloc[0]}", group.sort_values("x"))
            for run_id, group in frame.groupby("runid", sort=False)
        ]
    frame = frame.assign(version=frame["runid"].map(lambda r: versions.get(r, "unversioned")))
    curves = []
    for (version, filename), group in frame.groupby(["version", "filename"], sort=False):
        runs = group["runid"].nunique()
        mean = group.groupby("x")["y"].mean().reset_index()
        label = f"{version} {filename}" + (f" (mean of {runs} runs)" if runs > 1 else "")
        curves.append((label, mean))
    return curves
