"""The text of ``RESULTS.md`` around the tables: the Figures section (each figure drawn with
:mod:`masr.report.figures` from the LangID runs, and its caption: what it shows, from which runs
and seeds, what was left out) and the notes of what did not run (a stage without results, a
figure with nothing to draw, whose stale PNG is removed).
"""

import os

from masr.downstream.results_schema import ResultsError
from masr.report import figures
from masr.report.loading import PATTERNS, check_same, run_test_id
from masr.report.tables import is_missing

#: The PNG of each figure, in ``figures/`` next to ``RESULTS.md``.
FIGURE_FILES = {"fig2": "fig2_lang2vec_types.png", "fig3": "fig3_relative_change.png", "fig4": "fig4_confusion.png"}


def not_run(stage, exp):
    """The note of a stage without any results file.

    Example
    -------
    >>> not_run("asr", "exp")
    'not run: no exp/asr/*/seed*/results.json'
    """
    return f"not run: no {os.path.join(exp, PATTERNS[stage][0])}"


def model_names(config):
    """Model -> display name, from the table rows (first one wins)."""
    names = {}
    for key in ("table1", "table2", "table3"):
        for row in config.get(key) or []:
            names.setdefault(row["model"], row["name"])
    return names


def remove_stale(path):
    """Remove the PNG of a figure not drawn this time."""
    if os.path.exists(path):
        os.remove(path)


def _count(n, noun):
    """``"1 seed"``, ``"2 seeds"``."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _seeds(runs):
    return _count(len(runs), "seed")


def fig2(spec, langid, fig_dir, names):
    """Figure 2 (accuracy per lang2vec type). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, FIGURE_FILES["fig2"])
    types = spec.get("types") or {}
    baseline = spec.get("baseline")
    drawn = {t: langid[m] for t, m in types.items() if langid.get(m)}
    skipped = [f"{t} (`{m}`)" for t, m in types.items() if not langid.get(m)]
    base_runs = langid.get(baseline, []) if baseline else []
    check_same([r for rs in drawn.values() for r in rs] + base_runs, run_test_id, "data.test_id", "Figure 2")
    if not drawn:
        remove_stale(path)
        return ("Figure 2 not drawn: none of its lang2vec-type models has LangID results"
                f"{' (' + ', '.join(skipped) + ')' if skipped else ''}.")
    base_name = names.get(baseline, baseline)
    figures.plot_lang2vec_types({t: [r["overall"]["accuracy"] for r in rs] for t, rs in drawn.items()},
                                [r["overall"]["accuracy"] for r in base_runs] or None, path,
                                baseline_label=f"{base_name} (baseline)")
    caption = ("LangID test accuracy (%, all languages) after continued pretraining with each lang2vec "
               "distance type (" + ", ".join(f"{t}: `{types[t]}`, {_seeds(rs)}" for t, rs in drawn.items())
               + "); error bars: sample std over seeds where there are several")
    caption += (f"; dashed line: {base_name} (`{baseline}`, mean of {_seeds(base_runs)})" if base_runs
                else f"; no baseline line (`{baseline}` has no LangID results)")
    if skipped:
        caption += "; skipped, no results: " + ", ".join(skipped)
    return f"![Figure 2: LangID accuracy per lang2vec type](figures/{os.path.basename(path)})\n\n{caption}."


def _per_language(runs):
    """Language -> accuracies over seeds."""
    out = {}
    for r in runs:
        for lang, entry in r["per_language"].items():
            out.setdefault(lang, []).append(entry["accuracy"])
    return out


def fig3(spec, langid, fig_dir, names):
    """Figure 3 (per-language relative change). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, FIGURE_FILES["fig3"])
    baseline, model = spec.get("baseline"), spec.get("model")
    threshold = float(spec.get("threshold", 0.25))
    base_runs, model_runs = langid.get(baseline, []), langid.get(model, [])
    missing = [f"`{m}`" for m, rs in ((baseline, base_runs), (model, model_runs)) if not rs]
    if missing:
        remove_stale(path)
        return f"Figure 3 not drawn: no LangID results for {' and '.join(missing)}."
    check_same(base_runs + model_runs, run_test_id, "data.test_id", "Figure 3")
    base_acc, model_acc = _per_language(base_runs), _per_language(model_runs)
    # languages with a missing (null) accuracy cannot be compared: treat them as absent
    base_acc = {k: v for k, v in base_acc.items() if not any(is_missing(a) for a in v)}
    model_acc = {k: v for k, v in model_acc.items() if not any(is_missing(a) for a in v)}
    sel = figures.relative_change(base_acc, model_acc, threshold)
    unseen = {lang for r in model_runs for lang, e in r["per_language"].items() if not e["overlapped"]}
    b_name, m_name = names.get(baseline, baseline), names.get(model, model)
    omitted = []
    if sel["omitted"]:
        omitted.append(f"{_count(len(sel['omitted']), 'language')} within ±{100 * threshold:g}% omitted "
                       f"({', '.join(sel['omitted'])})")
    if sel["undefined"]:
        omitted.append("baseline accuracy 0, relative change undefined, omitted: "
                       + ", ".join(f"{lang} ({m_name} {100 * a:.1f}%)" for lang, a in sel["undefined"]))
    if sel["missing"]:
        omitted.append("in one model's results only: " + ", ".join(sel["missing"]))
    if not sel["kept"]:
        remove_stale(path)
        return "Figure 3 not drawn: no language changes by more than " \
               f"±{100 * threshold:g}%" + ("; " + "; ".join(omitted) if omitted else "") + "."
    figures.plot_relative_change(sel["kept"], unseen, path, threshold=threshold,
                                 title=f"{m_name} vs {b_name}")
    caption = (f"Relative change of per-language LangID test accuracy, (acc {m_name} − acc {b_name}) / "
               f"acc {b_name}, of the means over seeds (`{model}`: {_seeds(model_runs)}, `{baseline}`: "
               f"{_seeds(base_runs)}); {_count(len(sel['kept']), 'language')} shown, sorted; hatched orange: "
               "unseen in pretraining (NO)")
    if omitted:
        caption += "; " + "; ".join(omitted)
    return f"![Figure 3: relative change per language](figures/{os.path.basename(path)})\n\n{caption}."


def fig4(spec, langid, fig_dir, names):
    """Figure 4 (confusion within a language group). Returns the Markdown of its section."""
    path = os.path.join(fig_dir, FIGURE_FILES["fig4"])
    baseline, model = spec.get("baseline"), spec.get("model")
    languages = list(spec.get("languages") or [])
    base_runs, model_runs = langid.get(baseline, []), langid.get(model, [])
    missing = [f"`{m}`" for m, rs in ((baseline, base_runs), (model, model_runs)) if not rs]
    if missing:
        remove_stale(path)
        return f"Figure 4 not drawn: no LangID results for {' and '.join(missing)}."
    check_same(base_runs + model_runs, run_test_id, "data.test_id", "Figure 4")
    panels = []
    for runs in (base_runs, model_runs):
        try:
            labels, counts = figures.sum_confusions([(r["labels"], r["confusion"]) for r in runs])
        except ValueError as e:
            raise ResultsError(f"Figure 4: {e} ({', '.join(r['_path'] for r in runs)})") from None
        panels.append(figures.confusion_submatrix(counts, labels, languages))
    (base_m, rows, cols, absent), (model_m, rows2, _, _) = panels
    if rows != rows2:
        raise ResultsError(f"Figure 4: the group's languages differ between `{baseline}` ({rows}) "
                           f"and `{model}` ({rows2})")
    if not rows:
        remove_stale(path)
        return (f"Figure 4 not drawn: none of the languages {', '.join(languages) or '(none configured)'} "
                "is in the LangID labels.")
    b_name, m_name = names.get(baseline, baseline), names.get(model, model)
    figures.plot_confusions(figures.row_normalise(base_m), figures.row_normalise(model_m), rows, cols, path,
                            titles=(f"{b_name} ({_seeds(base_runs)} summed)",
                                    f"{m_name} ({_seeds(model_runs)} summed)"))
    caption = (f"Confusion among {', '.join(rows)} on test (rows: reference, columns: predicted, 'other': "
               "predicted outside the group; each row divided by all test utterances of its language, so "
               f"the diagonal is the language's accuracy), seeds summed; left {b_name} (`{baseline}`), "
               f"right {m_name} (`{model}`)")
    if absent:
        caption += "; not in the LangID labels, omitted: " + ", ".join(absent)
    return f"![Figure 4: confusion within the language group](figures/{os.path.basename(path)})\n\n{caption}."

