"""Figures: a trained model's (the paper's Figures 6-9, Table 3) and one record's spectra.

One record's polarized spectra are the paper's Figure 2.

Every model function takes plain documents (a ``models`` document, rows of ``xes``/``features``)
and writes a PNG; :func:`write_report` writes them all plus ``metrics.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vtc_fw import THREE_D_METALS
from vtc_fw.science.anisotropy import sam_matrix

R2_FLOOR = -1.0
"""Lowest R² the per-element plot draws: a bar below it is cut there and labelled with its value
(an element with 3 test records can score −28 and would flatten every other bar)."""


def plot_predicted_vs_true(model: Mapping[str, Any], path: Path, target: str = "SAMS") -> Path:
    """Predicted vs true ``target`` on the test split, coloured by element, with the diagonal."""
    true = np.asarray(model["test_true"])
    predicted = np.asarray(model["test_predicted"])
    elements = np.asarray(model["test_elements"])
    figure, axes = _figure((5, 5))
    for element in _ordered(set(elements)):
        mask = elements == element
        axes.scatter(true[mask], predicted[mask], s=8, alpha=0.6, label=element)
    limit = float(max(true.max(initial=0), predicted.max(initial=0))) * 1.05 or 1.0
    axes.plot([0, limit], [0, limit], "k--", lw=1)
    axes.set(
        xlim=(0, limit), ylim=(0, limit), xlabel=f"true {target}", ylabel=f"predicted {target}"
    )
    axes.set_title(f"test set: R² {model['r2_test']:.3f}, MAE {model['mae_test']:.4f}")
    axes.legend(fontsize=7, markerscale=2, ncol=2)
    return _save(figure, path)


def plot_importances(model: Mapping[str, Any], path: Path) -> Path:
    """Noise-normalized permutation importances (1 = as informative as noise)."""
    importances = model["importances"]
    names = sorted(importances, key=importances.get)
    figure, axes = _figure((5, 3.5))
    axes.barh(names, [importances[name] for name in names])
    axes.axvline(1.0, color="k", ls="--", lw=1, label="noise")
    axes.set(xlabel="permutation importance (noise feature = 1)")
    axes.legend()
    return _save(figure, path)


def plot_per_element_r2(model: Mapping[str, Any], path: Path) -> Path:
    """R² per element: test set, out-of-fold on the training records, balanced test set.

    A series the document lacks (older models, no balanced variant) is left out; an element
    whose R² is undefined (below 2 records) has no bar. Each tick label gives the records
    scored per series, in legend order.
    """
    series = per_element_series(model)
    elements = _ordered({element for rows in series.values() for element in rows})
    positions = np.arange(len(elements))
    width = 0.8 / len(series)
    figure, axes = _figure((8.5, 4))
    for i, (name, rows) in enumerate(series.items()):
        r2 = [_nan(rows[e]["r2"]) if e in rows else np.nan for e in elements]
        drawn, cut = cut_r2_bars(r2)
        x = positions + (i - (len(series) - 1) / 2) * width
        axes.bar(x, drawn, width, label=name)
        for j, label in cut.items():
            axes.annotate(label, (x[j], R2_FLOOR), ha="center", va="top", fontsize=7, rotation=90)
    counts = [
        "/".join(str(rows[e]["n_test"]) if e in rows else "-" for rows in series.values())
        for e in elements
    ]
    labels = [f"{e}\n{n}" for e, n in zip(elements, counts, strict=True)]
    axes.set_xticks(positions, labels, fontsize=8)  # two-digit counts overlap at full size
    axes.axhline(0, color="k", lw=0.8)
    axes.set_ylim(R2_FLOOR - 0.4, 1.05)  # room under the floor for the cut bars' labels
    axes.set(ylabel="R²", xlabel="element; records: " + " / ".join(series))
    axes.legend(fontsize=8)
    return _save(figure, path)


def cut_r2_bars(r2: Sequence[float]) -> tuple[list[float], dict[int, str]]:
    """Bar heights with every R² below :data:`R2_FLOOR` cut to it.

    Also ``{index: label}`` of the cut bars (their true value); NaN stays NaN (no bar).
    """
    drawn = [max(value, R2_FLOOR) if np.isfinite(value) else value for value in r2]
    cut = {i: f"{value:.1f}" for i, value in enumerate(r2) if value < R2_FLOOR}
    return drawn, cut


def per_element_series(model: Mapping[str, Any]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """The per-element scores of a model document, ``{series: {element: row}}``.

    Series: ``test``, ``out-of-fold (training)`` and ``balanced test``, each only
    when the document has it.
    """
    series = {
        "test": model["per_element"],
        "out-of-fold (training)": model.get("per_element_oof") or [],
        "balanced test": (model.get("balanced") or {}).get("per_element", []),
    }
    return {name: {row["element"]: row for row in rows} for name, rows in series.items() if rows}


def plot_distributions(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    path: Path,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Box plots of ``columns`` (e.g. sams, QAMS) per element over ``rows``.

    Each is titled with ``labels[column]`` when given.
    """
    figure = Figure(figsize=(5 * len(columns), 3.5))
    all_axes = figure.subplots(1, len(columns), squeeze=False)
    for axes, column in zip(all_axes[0], columns, strict=True):
        by_element: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            if row.get(column) is not None and row.get("element"):
                by_element[row["element"]].append(float(row[column]))
        elements = _ordered(set(by_element))
        if elements:
            axes.boxplot([by_element[e] for e in elements], tick_labels=elements, showfliers=False)
        label = (labels or {}).get(column, column)
        axes.set(ylabel=label, title=f"{label} per element")
    return _save(figure, path)


def plot_exponent_sweep(model: Mapping[str, Any], path: Path, target: str = "SAMS") -> Path:
    """Correlation of QAMS/IAMS/DAMS with the target against the feature exponent n."""
    curve = model["exponent_sweep"]["curve"]
    exponents = sorted(int(n) for n in curve)
    figure, axes = _figure((5, 3.5))
    for name in ("QAMS", "IAMS", "DAMS"):
        values = [_nan(curve[str(n)].get(f"{name}_r")) for n in exponents]
        axes.plot(exponents, values, marker="o", label=name)
    axes.axvline(model["exponent_sweep"]["chosen_exponent"], color="k", ls="--", lw=1)
    axes.set(xlabel="feature exponent n", ylabel=f"Pearson r with {target} (training rows)")
    axes.legend()
    return _save(figure, path)


def metrics_table(model: Mapping[str, Any], target: str = "SAMS") -> str:
    """The paper's Table 3 (R² and MAE, train/test) and the run's settings, in markdown."""
    lines = [
        f"# Model {model['model_id'][:12]} (target: {target}, feature set: "
        f"{model.get('feature_set') or 'paper'})",
        "",
        "| metric | training | testing |",
        "|---|---|---|",
        f"| R² | {model['r2_train']:.4f} | {model['r2_test']:.4f} |",
        f"| MAE | {model['mae_train']:.4f} | {model['mae_test']:.4f} |",
        "",
        f"- CV R² of the chosen configuration ({model['cv']}-fold, {model['n_iter']} draws): "
        f"{model['cv_best_r2']:.4f}",
        *_out_of_fold_summary(model),
        f"- feature exponent: {model['exponent']}",
        f"- best parameters: {model['best_params']}",
        f"- training / test records: {len(model['train_keys'])} / {len(model['test_keys'])}",
        f"- excluded: {model['excluded']}",
        f"- labels by FEFF preset (fidelity): {model.get('fidelity') or model.get('preset')}",
        "",
        *_per_element_table(model),
    ]
    balanced = model.get("balanced")
    if balanced:
        lines += [
            "",
            f"Balanced variant ({balanced['n_per_element']} per element): R² train "
            f"{balanced['r2_train']:.4f}, test {balanced['r2_test']:.4f}; MAE test "
            f"{balanced['mae_test']:.4f}",
        ]
    return "\n".join(lines) + "\n"


def _out_of_fold_summary(model: Mapping[str, Any]) -> list[str]:
    """The overall out-of-fold line, or nothing for a document without it."""
    if model.get("r2_oof") is None:
        return []
    return [
        f"- out-of-fold R² / MAE on the training records ({model['cv']}-fold, chosen "
        "hyperparameters; chosen on the same folds, so slightly optimistic): "
        f"{model['r2_oof']:.4f} / {model['mae_oof']:.4f}"
    ]


def _per_element_table(model: Mapping[str, Any]) -> list[str]:
    """Records, R² and MAE per element: test set, then out-of-fold when the document has it."""
    series = per_element_series(model)
    test, oof = series.get("test", {}), series.get("out-of-fold (training)")
    header = "| element | test records | R² | MAE |"
    if oof:
        header += " out-of-fold records | out-of-fold R² | out-of-fold MAE |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for element in _ordered(set(test) | set(oof or {})):
        cells = _score_cells(test.get(element))
        if oof:
            cells += _score_cells(oof.get(element))
        lines.append(f"| {element} | {' | '.join(cells)} |")
    return lines


def _score_cells(row: Mapping[str, Any] | None) -> list[str]:
    """Records, R² and MAE of one element's scores (0 records when it has none)."""
    if row is None:
        return ["0", "n/a", "n/a"]
    r2 = "n/a" if row["r2"] is None else f"{row['r2']:.3f}"
    return [str(row["n_test"]), r2, f"{row['mae']:.4f}"]


def write_report(
    model: Mapping[str, Any],
    xes_rows: Sequence[Mapping[str, Any]],
    feature_rows: Sequence[Mapping[str, Any]],
    directory: Path,
    target: str = "SAMS",
) -> list[Path]:
    """All figures of a model and ``metrics.md`` in ``directory``.

    Args:
        model: A ``models`` document.
        xes_rows: ``xes`` documents (element, sams) for the SAMS distribution.
        feature_rows: ``features`` documents (element, QAMS) for the QAMS distribution.
        directory: Created if missing.
        target: Name of the target on axes and in the table (SAMS unless a stand-in).

    Returns:
        The files written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        plot_predicted_vs_true(model, directory / "predicted_vs_true.png", target),
        plot_importances(model, directory / "importances.png"),
        plot_per_element_r2(model, directory / "per_element_r2.png"),
        plot_distributions(
            xes_rows, ["sams"], directory / "sams_distribution.png", {"sams": target}
        ),
        plot_distributions(feature_rows, ["QAMS"], directory / "qams_distribution.png"),
    ]
    if model.get("exponent_sweep"):
        written.append(plot_exponent_sweep(model, directory / "exponent_sweep.png", target))
    table = directory / "metrics.md"
    table.write_text(metrics_table(model, target))
    return [*written, table]


def plot_polarized_spectra(
    energies: np.ndarray,
    mu: np.ndarray,
    path: Path,
    labels: Sequence[str] = ("1", "2", "3"),
    title: str | None = None,
) -> Path:
    """The paper's Fig. 2 (b, c) for one record.

    Spectra along three axes, their pairwise differences and the SAM they give (title: SAMS).

    Args:
        energies: Energy grid, eV, shape (E,).
        mu: Spectra along the three axes, shape (3, E), FEFF units.
        path: PNG to write.
        labels: Names of the three axes.
        title: Figure title (default none).
    """
    energies, mu = np.asarray(energies, dtype=float), np.asarray(mu, dtype=float)
    sam = sam_matrix(energies, mu)
    figure = Figure(figsize=(13, 3.8))
    spectra, differences, matrix = figure.subplots(1, 3, width_ratios=(1.2, 1.2, 0.8))
    short = [label.split(" ")[0] for label in labels]
    for k, label in enumerate(labels):
        spectra.plot(energies, mu[k], label=label)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        differences.plot(energies, mu[i] - mu[j], label=f"{short[i]} − {short[j]}")
    differences.axhline(0.0, color="k", lw=0.6)
    for axes, ylabel in ((spectra, "μ (FEFF units)"), (differences, "Δμ (FEFF units)")):
        axes.set(xlabel="emission energy (eV)", ylabel=ylabel)
        axes.legend(fontsize=7)
    image = matrix.imshow(sam, cmap="viridis")
    for i, j in np.ndindex(3, 3):
        matrix.text(j, i, f"{sam[i, j]:.3f}", ha="center", va="center", color="w", fontsize=8)
    matrix.set_xticks(range(3), short)
    matrix.set_yticks(range(3), short)
    matrix.set_title(f"SAM (SAMS {np.triu(sam, k=1).sum():.4f})", fontsize=9)
    figure.colorbar(image, ax=matrix, shrink=0.8)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _ordered(elements: set[str]) -> list[str]:
    """3d metals in periodic-table order, anything else after them alphabetically."""
    order = {element: i for i, element in enumerate(THREE_D_METALS)}
    return sorted(elements, key=lambda e: (order.get(e, len(order)), e))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def plot_labels_per_cpu_hour(
    curves: Mapping[str, Sequence[tuple[float, float]]], path: Path
) -> Path:
    """R² on held-out paper labels against the CPU-hours of one training fold's labels.

    Args:
        curves: Label → (CPU-h, R²) points, e.g. paper labels alone and paper plus cheap labels.
        path: The PNG to write.
    """
    figure, axes = _figure((6, 4))
    for label, points in curves.items():
        hours, r2 = zip(*sorted(points), strict=True)
        axes.plot(hours, r2, "o-", label=label)
    axes.set(xlabel="CPU-hours of the training labels", ylabel="R² on held-out paper labels")
    axes.axhline(0.79, color="k", ls=":", lw=1, label="the paper's test R² (23× the data)")
    axes.legend(fontsize=8)
    return _save(figure, path)


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure with one axes, outside pyplot (no global state, no display backend)."""
    figure = Figure(figsize=size)
    return figure, figure.subplots()


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path
