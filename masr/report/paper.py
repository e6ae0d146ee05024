"""The paper's reported figures beside ours in ``RESULTS.md`` (stage 8, :mod:`masr.report.results`).

A report config may hold a ``paper:`` block: the figures the paper reports, per table and row,
copied from the paper (data in the YAML, never in this module)::

    paper:
      source: "Raj et al., MASR, arXiv 2307.10982 (ASRU 2023)"
      table1:
        table: "Table 1, FLEURS half"          # where in the paper
        columns: {O: O, "NO": "NO", overall acc: overall, F1: macro-F1, EER: EER}
        rows:
          - {name: BEST-RQ, model: pretrain_bestrq,
             values: {O: 85.6, "NO": 65.2, overall acc: 75.4, F1: 72.8, EER: 0.9}}
          - {name: w2v-BERT, values: {O: 87.7, "NO": 69.6, overall acc: 78.0, F1: 77.7, EER: 0.5}}
        note: "optional text added to the note under the table"

- ``columns`` maps each of the paper's column labels to the column of our table it matches: the
  header label as stage 8 prints it, without the class count in parentheses (Table 1: ``O``,
  ``NO``, ``overall``, ``macro-F1``, ``EER``; Table 2: the probe task names; Table 3: the
  language codes of the ASR results and ``avg``, in the WER table), or ``null`` when no column of
  ours measures it. A paper column whose column is not in the rendered table is added at its
  right, headed ``<label> (paper)``, with ``–`` in our rows.
- Each row gives the paper's ``name`` and its ``values`` (paper column label -> number, in the
  table's unit: % for all of Tables 1-3); ``model`` names the row of the report config's table it
  is matched to. The paper's row is printed in italics right after that row; rows without
  ``model`` (e.g. the paper's w2v-BERT rows, trained by no recipe here) follow the table's last
  row. ``–`` where the paper gives no figure for a column.
- ``fig4`` (the paper's confusion matrices) has ``columns`` mapping the paper's language labels to
  ours and rows whose ``values`` map each true language to the list of fractions predicted as each
  language of ``columns``, in its order; they are printed as a table under the Figure 4 section.

PyYAML reads an unquoted ``NO``, ``no``, ``yes``, ``on``, ``off`` as a boolean: quote such labels.
:func:`check_block` rejects an unknown table or key, a column of Table 1 that is not one of ours,
a value under a column not in ``columns``, a non-numeric value and a ``model`` that is not a row of
the table, naming the report config and the key.
"""

import re

#: Tables a ``paper:`` block may hold -> the report config key whose rows (or figure) it matches.
TABLES = ("table1", "table2", "table3", "fig4")

#: Our column labels per table; None: the columns depend on the results (probe tasks, languages).
COLUMNS = {"table1": ("O", "NO", "overall", "macro-F1", "EER"), "table2": None, "table3": None, "fig4": None}

TABLE_KEYS = ("table", "columns", "rows", "note")
ROW_KEYS = ("name", "model", "values")
DASH = "–"


class PaperError(ValueError):
    """A ``paper:`` block that cannot be used; the message names the report config and the key."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label_error(path, where, key):
    hint = " (YAML reads an unquoted NO / yes / on / off as a boolean: quote it)" if isinstance(key, bool) else ""
    return PaperError(f"{path}: {where}: column label {key!r} should be a string{hint}")


def check_block(config, path):
    """Check the ``paper:`` block of a report config.

    Arguments
    ---------
    config : dict
        The report config (already parsed), whose ``table1`` / ``table2`` / ``table3`` rows and
        ``fig4`` the block's rows are matched to.
    path : str
        The report config's file, for the messages.

    Returns
    -------
    dict or None
        The block (unchanged), or None when the config has none.

    Raises
    ------
    PaperError
        Naming ``path`` and the key: an unknown table or key, a table the report config does not
        have, a column label that is not a string, a Table 1 column that is not one of ours, a
        value under a column not declared in ``columns``, a value that is not a number, a row
        without ``name`` or ``values``, a ``model`` that is not a row of the table.

    Example
    -------
    >>> config = {"table3": [{"name": "BEST-RQ", "model": "pretrain_bestrq"}], "paper": {
    ...     "source": "arXiv 2307.10982", "table3": {"table": "Table 3", "columns": {"de": "deu"},
    ...     "rows": [{"name": "BEST-RQ", "model": "pretrain_bestrq", "values": {"de": 5.1}}]}}}
    >>> check_block(config, "report.yaml")["table3"]["rows"][0]["values"]
    {'de': 5.1}
    >>> config["paper"]["table3"]["rows"][0]["values"] = {"de": "5,1"}
    >>> check_block(config, "report.yaml")
    Traceback (most recent call last):
    ...
    masr.report.paper.PaperError: report.yaml: paper.table3.rows[0].values.de: should be a number, got '5,1'
    >>> config["paper"]["table3"]["rows"][0]["values"] = {"fr": 6.4}
    >>> check_block(config, "report.yaml")
    Traceback (most recent call last):
    ...
    masr.report.paper.PaperError: report.yaml: paper.table3.rows[0].values.fr: unknown column 'fr' (paper.table3.columns has: de)
    """
    block = config.get("paper")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise PaperError(f"{path}: paper: should be a mapping (source: ..., table1: ..., ...)")
    unknown = [k for k in block if k != "source" and k not in TABLES]
    if unknown:
        raise PaperError(f"{path}: paper.{unknown[0]}: unknown table; known: {', '.join(TABLES)} (and source)")
    if not isinstance(block.get("source"), str) or not block["source"].strip():
        raise PaperError(f"{path}: paper.source: should name the paper (e.g. its arXiv id)")
    for key in TABLES:
        if key in block:
            _check_table(block[key], key, config, path)
    return block


def _check_keys(obj, known, path, where):
    """PaperError naming ``where`` unless ``obj`` is a mapping whose keys are all in ``known``."""
    if not isinstance(obj, dict):
        raise PaperError(f"{path}: {where}: should be a mapping ({', '.join(known)})")
    for k in obj:
        if k not in known:
            raise PaperError(f"{path}: {where}.{k}: unknown key; known: {', '.join(known)}")


def _check_table(table, key, config, path):
    where = f"paper.{key}"
    _check_keys(table, TABLE_KEYS, path, where)
    if not config.get(key):
        raise PaperError(f"{path}: {where}: the report config has no '{key}' to put the paper's figures beside")
    if not isinstance(table.get("table"), str) or not table["table"].strip():
        raise PaperError(f"{path}: {where}.table: should say where in the paper (e.g. 'Table 3')")
    if table.get("note") is not None and not isinstance(table["note"], str):
        raise PaperError(f"{path}: {where}.note: should be a string")
    columns = table.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise PaperError(f"{path}: {where}.columns: should map each paper column label to a column of ours")
    ours = COLUMNS[key]
    for label, column in columns.items():
        if not isinstance(label, str):
            raise _label_error(path, f"{where}.columns", label)
        if column is not None and not isinstance(column, str):
            raise PaperError(f"{path}: {where}.columns.{label}: should be a column label of ours or null, "
                             f"got {column!r}" + (" (quote it)" if isinstance(column, bool) else ""))
        if ours is not None and column is not None and column not in ours:
            raise PaperError(f"{path}: {where}.columns.{label}: unknown column '{column}' of {key}; "
                             f"known: {', '.join(ours)} (or null)")
        if key == "fig4" and column is None:
            raise PaperError(f"{path}: {where}.columns.{label}: should be a language label of ours")
    if key == "fig4":
        models = {config[key].get("baseline"), config[key].get("model")} - {None}
    else:
        models = {row["model"] for row in config[key]}
    rows = table.get("rows")
    if not isinstance(rows, list) or not rows:
        raise PaperError(f"{path}: {where}.rows: should be a list of {{name: ..., model: ..., values: {{...}}}}")
    seen = {}
    for i, row in enumerate(rows):
        rw = f"{where}.rows[{i}]"
        _check_keys(row, ROW_KEYS, path, rw)
        if not isinstance(row.get("name"), str) or not row["name"].strip():
            raise PaperError(f"{path}: {rw}.name: should be the paper's name of the row")
        model = row.get("model")
        if model is not None:
            if model not in models:
                raise PaperError(f"{path}: {rw}.model: '{model}' is not a model of the report config's "
                                 f"'{key}' (has: {', '.join(sorted(models)) or 'none'})")
            if model in seen:
                raise PaperError(f"{path}: {rw}.model: '{model}' is matched by {where}.rows[{seen[model]}] too")
            seen[model] = i
        values = row.get("values")
        if not isinstance(values, dict) or not values:
            raise PaperError(f"{path}: {rw}.values: should map paper column labels to numbers")
        for label, value in values.items():
            if not isinstance(label, str):
                raise _label_error(path, f"{rw}.values", label)
            if label not in columns:
                raise PaperError(f"{path}: {rw}.values.{label}: unknown column '{label}' "
                                 f"({where}.columns has: {', '.join(columns)})")
            if key == "fig4":
                if not isinstance(value, list) or len(value) != len(columns) or not all(map(_is_number, value)):
                    raise PaperError(f"{path}: {rw}.values.{label}: should be a list of {len(columns)} numbers "
                                     f"(fractions predicted as {', '.join(columns)}), got {value!r}")
            elif not _is_number(value):
                raise PaperError(f"{path}: {rw}.values.{label}: should be a number, got {value!r}")


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------

def fmt(value):
    """A paper figure as the paper prints it (the YAML keeps its digits).

    Example
    -------
    >>> fmt(85.6), fmt(0.5), fmt(0), fmt(None)
    ('85.6', '0.5', '0', '–')
    """
    return DASH if value is None else str(value)


def _cells(line):
    """Cells of a Markdown table line.

    Example
    -------
    >>> _cells("| model | O (48) | not run |")
    ['model', 'O (48)', 'not run']
    """
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _column_label(header):
    """Our column label of a header cell: without the class count in parentheses.

    Example
    -------
    >>> _column_label("O (48)"), _column_label("macro-F1")
    ('O', 'macro-F1')
    """
    return re.sub(r"\s*\(\d+\)$", "", header)


def _citation(block, table):
    return f"{block['source']}, {table['table']}"


def _find_table(lines):
    """(first, end) line indices of the first Markdown table (header, separator, rows), or None."""
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and lines[i + 1].startswith("|---"):
            end = i + 2
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            return i, end
    return None


def annotate(text, key, config):
    """Put the paper's figures of ``key`` into a section of ``RESULTS.md``.

    For a table: after each of our rows, the paper's row matched to it (italic, ``paper: <name>``),
    the paper's other rows after the last row, and a note citing the source, all in the section's
    first Markdown table (Table 3: the WER table); a section without a table (stage not run) gets
    a table of the paper's rows alone. For ``fig4``: the paper's confusion matrices under the
    section.

    Arguments
    ---------
    text : str
        The section's Markdown as :mod:`masr.report.results` renders it.
    key : str
        ``"table1"``, ``"table2"``, ``"table3"``, ``"fig2"``, ...
    config : dict
        The report config (checked by :func:`check_block`).

    Returns
    -------
    str
        ``text`` unchanged when the config's ``paper:`` block has nothing for ``key``.

    Example
    -------
    >>> config = {"table3": [{"name": "BEST-RQ", "model": "pretrain_bestrq"}], "paper": {
    ...     "source": "arXiv 2307.10982", "table3": {"table": "Table 3",
    ...     "columns": {"de": "deu", "en": "eng", "avg": "avg"},
    ...     "rows": [{"name": "BEST-RQ", "model": "pretrain_bestrq", "values": {"de": 5.1, "en": 7.7}},
    ...              {"name": "BEST-RQ + LASR", "values": {"de": 4.9}}]}}}
    >>> print(annotate("| model | seeds | deu | avg |\\n|---|---:|---:|---:|\\n"
    ...                "| BEST-RQ | 1 | 6.0 | 6.0 |\\n\\n- WER (%).", "table3", config))
    | model | seeds | deu | avg | en (paper) |
    |---|---:|---:|---:|---:|
    | BEST-RQ | 1 | 6.0 | 6.0 | – |
    | *paper: BEST-RQ* | – | *5.1* | – | *7.7* |
    | *paper: BEST-RQ + LASR* | – | *4.9* | – | – |
    <BLANKLINE>
    - Rows *paper: …*: the figures reported in arXiv 2307.10982, Table 3, under the matching columns (– where the paper gives none); each follows our row of the same model (BEST-RQ = `pretrain_bestrq`); no model of ours: BEST-RQ + LASR. Columns marked (paper) are not measured in this table.
    - WER (%).
    >>> annotate("| model |\\n|---|\\n| x |", "table2", config)
    '| model |\\n|---|\\n| x |'
    """
    block = config.get("paper") or {}
    table = block.get(key)
    if not table:
        return text
    if key == "fig4":
        return text + "\n\n" + _fig4(block, table)
    lines = text.split("\n")
    found = _find_table(lines)
    if found is None:
        return text + "\n\n" + _paper_table(block, table)
    first, end = found
    header = _cells(lines[first])
    ours = [_column_label(h) for h in header]
    columns = table["columns"]
    extra = [label for label, column in columns.items() if column is None or column not in ours[1:]]
    by_column = {column: label for label, column in columns.items() if column is not None and label not in extra}
    rows = table["rows"]
    by_model = {row["model"]: row for row in rows if row.get("model")}

    def paper_line(row):
        cells = [f"*paper: {row['name']}*"]
        for column in ours[1:]:
            label = by_column.get(column)
            value = row["values"].get(label) if label else None
            cells.append(DASH if value is None else f"*{fmt(value)}*")
        for label in extra:
            value = row["values"].get(label)
            cells.append(DASH if value is None else f"*{fmt(value)}*")
        return "| " + " | ".join(cells) + " |"

    out = [lines[first].rstrip() + "".join(f" {label} (paper) |" for label in extra),
           lines[first + 1].rstrip() + "---:|" * len(extra)]
    names = {}
    for row in config.get(key) or []:
        names.setdefault(row["name"], row["model"])
    placed = set()
    for line in lines[first + 2:end]:
        out.append(line.rstrip() + f" {DASH} |" * len(extra))
        model = names.get(_cells(line)[0])
        if model in by_model and model not in placed:
            out.append(paper_line(by_model[model]))
            placed.add(model)
    rest = [row for row in rows if row.get("model") not in placed]
    out += [paper_line(row) for row in rest]
    matched = [f"{row['name']} = `{row['model']}`" for row in rows if row.get("model") in placed]
    note = (f"Rows *paper: …*: the figures reported in {_citation(block, table)}, under the matching "
            f"columns ({DASH} where the paper gives none)")
    if matched:
        note += f"; each follows our row of the same model ({', '.join(matched)})"
    if rest:
        note += "; no model of ours: " + ", ".join(row["name"] for row in rest)
    note += "."
    if extra:
        note += " Columns marked (paper) are not measured in this table."
    if table.get("note"):
        note += " " + table["note"].strip()
    after = lines[end:]
    while after and not after[0].strip():
        after = after[1:]
    if after and after[0].startswith("- "):
        tail = ["", f"- {note}"] + after               # the first bullet of the notes under the table
    else:
        tail = ["", f"- {note}"] + ([""] + after if after else [])
    return "\n".join(lines[:first] + out + tail)


def _paper_table(block, table):
    """The paper's rows alone (for a section with no table of ours).

    Example
    -------
    >>> block = {"source": "arXiv 2307.10982"}
    >>> table = {"table": "Table 1", "columns": {"O": "O", "F1": "macro-F1"},
    ...          "rows": [{"name": "BEST-RQ", "model": "pretrain_bestrq", "values": {"O": 85.6}}]}
    >>> print(_paper_table(block, table))
    The paper's figures (arXiv 2307.10982, Table 1):
    <BLANKLINE>
    | paper: model | O | F1 |
    |---|---:|---:|
    | BEST-RQ | 85.6 | – |
    """
    labels = list(table["columns"])
    lines = ["| paper: model | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in table["rows"]:
        lines.append(f"| {row['name']} | " + " | ".join(fmt(row["values"].get(label)) for label in labels) + " |")
    text = f"The paper's figures ({_citation(block, table)}):\n\n" + "\n".join(lines)
    if table.get("note"):
        text += "\n\n" + table["note"].strip()
    return text


def _fig4(block, table):
    """The paper's confusion matrices (rows: true language; columns: predicted), one block per row.

    Example
    -------
    >>> block = {"source": "arXiv 2307.10982"}
    >>> table = {"table": "Figure 4", "columns": {"bs": "bos", "hr": "hrv"},
    ...          "rows": [{"name": "BEST-RQ", "model": "pretrain_bestrq",
    ...                    "values": {"bs": [0.22, 0.77], "hr": [0.29, 0.38]}}]}
    >>> print(_fig4(block, table))
    The paper's figures (arXiv 2307.10982, Figure 4): fraction of each true language's test utterances (rows) predicted as each language (columns); paper labels bs, hr = bos, hrv here; BEST-RQ = `pretrain_bestrq`.
    <BLANKLINE>
    | paper: true | BEST-RQ: bos | hrv |
    |---|---:|---:|
    | bos | 0.22 | 0.77 |
    | hrv | 0.29 | 0.38 |
    """
    columns = table["columns"]
    ours = list(columns.values())
    header = ["paper: true"]
    for row in table["rows"]:
        header += [f"{row['name']}: {ours[0]}"] + ours[1:]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for label, column in columns.items():
        cells = [column]
        for row in table["rows"]:
            values = row["values"].get(label)
            cells += [fmt(v) for v in values] if values else [DASH] * len(columns)
        lines.append("| " + " | ".join(cells) + " |")
    models = [f"{row['name']} = `{row['model']}`" for row in table["rows"] if row.get("model")]
    caption = (f"The paper's figures ({_citation(block, table)}): fraction of each true language's test "
               "utterances (rows) predicted as each language (columns); paper labels "
               f"{', '.join(columns)} = {', '.join(ours)} here")
    if models:
        caption += "; " + ", ".join(models)
    caption += "."
    if table.get("note"):
        caption += " " + table["note"].strip()
    return caption + "\n\n" + "\n".join(lines)
