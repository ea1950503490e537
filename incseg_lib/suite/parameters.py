"""The suite's notebook parameters: what each notebook's ``parameters`` cell declares, which ``-p``
values go to which notebook (checked before anything runs: papermill itself only warns about an
unknown name), and ``-p NAME VALUE`` parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import SuiteError


def declared_parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's ``parameters`` cell as papermill reads it: name -> {inferred_type_name, default, help}.

    Raises:
        SuiteError: the notebook has no cell tagged ``parameters``.
    """
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    if not declared:
        raise SuiteError(f"{notebook.name} has no cell tagged 'parameters'")
    return declared


def route_parameters(notebooks: list[Path], params: dict[str, Any]) -> dict[Path, dict[str, Any]]:
    """The parameters each notebook gets: those of ``params`` it declares (suite-wide ``-p``).

    A name no selected notebook declares is an error naming close matches and where they are
    declared; a value whose type does not fit the declaration (``-p epochs abc``) is an error
    naming the parameter, the notebook and the expected type.

    Raises:
        SuiteError: as above.
    """
    import difflib

    declared = {nb: declared_parameters(nb) for nb in notebooks}
    known = sorted({n for d in declared.values() for n in d})
    for name in params:
        if not any(name in d for d in declared.values()):
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            where = "; ".join(
                f"{c!r} in {', '.join(nb.stem[:2] for nb, d in declared.items() if c in d)}" for c in close
            )
            raise SuiteError(
                f"no selected notebook declares a parameter {name!r}"
                + (f"; did you mean {where}?" if close else "")
                + " (`incseg suite --list-params` lists every notebook's parameters)"
            )
    routed = {}
    for nb, d in declared.items():
        mine = {}
        for k, v in params.items():
            if k not in d:
                continue
            kind = d[k].get("inferred_type_name", "")
            if kind == "str" and not isinstance(v, str):
                v = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            elif kind == "float" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            fits = {
                "int": isinstance(v, int) and not isinstance(v, bool),
                "float": isinstance(v, float),
                "bool": isinstance(v, bool),
            }.get(kind, True)
            if not fits:
                raise SuiteError(
                    f"parameter {k}={v!r} does not fit {nb.name}, which declares {k}: {kind} "
                    f"(default {d[k].get('default')}; {d[k].get('help', '')})"
                )
            mine[k] = v
        routed[nb] = mine
    return routed


def list_parameters(notebooks: list[Path]) -> str:
    """Every notebook's parameters (name, type, default, help) as text, for ``--list-params``."""
    lines = []
    for nb in notebooks:
        lines.append(nb.stem)
        for name, d in declared_parameters(nb).items():
            lines.append(
                f"  {name}: {d.get('inferred_type_name', '?')} = {d.get('default', '')}  # {d.get('help', '')}"
            )
    return "\n".join(lines)


def coerce(value: str) -> Any:
    """Parse a ``-p NAME VALUE`` string: JSON if it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        if value in ("True", "False"):
            return value == "True"
        return value
