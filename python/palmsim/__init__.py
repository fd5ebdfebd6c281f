"""palmsim from Python: the same predictions as the `palmsim` command line, as dicts and DataFrames.

    import palmsim
    palmsim.predict("scenarios/palm-540b-tpuv4-6144.yaml")["mfu"]            # 0.463
    palmsim.predict("scenarios/palm-540b-tpuv4-6144.yaml",
                    overrides={"model.parallel_block": False})["step_time_s"]
    rows = palmsim.sweep("scenarios/palm-540b-tpuv4-6144.yaml",
                         {"layout.tp": [6, 12, 24], "model.parallel_block": [True, False]})
    palmsim.frame(rows)                                                        # pandas DataFrame

A scenario is a YAML file's path or a dict of the same sections (model, system, layout, training,
stack). Overrides are dotted keys as `palmsim sweep --set` takes them. Bad input raises
palmsim.InputError (a ValueError) whose message is the CLI's and whose .field names the field.
"""
import csv
import io
import json
import os

from . import _palmsim

InputError = _palmsim.InputError

__all__ = ["InputError", "Scenario", "load", "predict", "simulate", "search", "validate", "sweep", "frame"]


def _text(value):
    """A Python value as the text a scenario key takes (YAML: true/false, numbers, names, flow maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return str(value)


def _source(scenario):
    """(text, is_path) for the C++ side: a path as given, a dict as JSON (which is YAML)."""
    if isinstance(scenario, Scenario):
        raise TypeError("pass Scenario objects through their methods")
    if isinstance(scenario, dict):
        return json.dumps(scenario), False
    if isinstance(scenario, (str, os.PathLike)):
        return os.fspath(scenario), True
    raise TypeError("a scenario is a YAML file's path or a dict, not %s" % type(scenario).__name__)


def _overrides(overrides):
    return [(str(k), _text(v)) for k, v in (overrides or {}).items()]


class Scenario:
    """A scenario (file or dict) with overrides; checked when made, like `palmsim predict` checks it."""

    def __init__(self, source, overrides=None):
        self.source = source
        self.overrides = dict(overrides or {})
        text, is_path = _source(source)
        _palmsim.check(text, is_path, _overrides(self.overrides))

    def with_overrides(self, overrides):
        """A new Scenario with these dotted-key overrides added."""
        merged = dict(self.overrides)
        merged.update(overrides)
        return Scenario(self.source, merged)

    def predict(self, per_op=False):
        return predict(self.source, self.overrides, per_op=per_op)

    def simulate(self):
        return simulate(self.source, self.overrides)

    def search(self, top=10, simulate_top=0):
        return search(self.source, self.overrides, top=top, simulate_top=simulate_top)

    def sweep(self, grid, simulate=False):
        return sweep(self.source, grid, overrides=self.overrides, simulate=simulate)

    def __repr__(self):
        return "Scenario(%r, overrides=%r)" % (self.source, self.overrides)


def load(scenario, overrides=None):
    """A checked Scenario from a file path or a dict."""
    return Scenario(scenario, overrides)


def predict(scenario, overrides=None, per_op=False):
    """`palmsim predict --json` as a dict (SI units; mfu and hfu as fractions)."""
    text, is_path = _source(scenario)
    return json.loads(_palmsim.predict_json(text, is_path, _overrides(overrides), per_op))


def simulate(scenario, overrides=None):
    """`palmsim simulate --json` as a dict: predict's keys with the simulated figures, plus per_chip."""
    text, is_path = _source(scenario)
    return json.loads(_palmsim.simulate_json(text, is_path, _overrides(overrides)))


def search(scenario, overrides=None, top=10, simulate_top=0):
    """`palmsim search --json` as a dict: evaluated, fitting, seconds, layouts_per_s, top (reports)."""
    text, is_path = _source(scenario)
    return json.loads(_palmsim.search_json(text, is_path, _overrides(overrides), int(top), int(simulate_top)))


def validate(*paths, simulate=False):
    """`palmsim validate` over files or folders: {'files': [{'file', 'summary'}], 'all_files': summary,
    'rows': [every output row of `validate -o`, numbers as numbers, with its 'file']}; simulate=True
    adds each row's simulated step (sim_step_s, sim_err_step_pct, sim_error), each file's
    'simulated_summary' and 'all_files_simulated', counted as `validate --simulate` counts them (a
    row not simulated is not modelled there)."""
    flat = []
    for p in paths:
        flat.extend([os.fspath(x) for x in p] if isinstance(p, (list, tuple)) else [os.fspath(p)])
    result = json.loads(_palmsim.validate_json(flat, bool(simulate)))
    result["rows"] = [{k: _number(v) for k, v in row.items()} for row in result["rows"]]
    return result


def sweep(scenario, grid, overrides=None, simulate=False, max_combinations=10_000_000):
    """`palmsim sweep`: every combination of grid ({key: [values]}), one dict per combination, in
    the CLI's row order; an illegal combination has its reason in 'error' and no figures."""
    text, is_path = _source(scenario)
    sets = ["%s=%s" % (k, ",".join(_text(v) for v in values)) for k, values in grid.items()]
    csv_text = _palmsim.sweep_csv(text, is_path, _overrides(overrides), sets, bool(simulate), int(max_combinations))
    return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(csv_text))]


def frame(result):
    """A pandas DataFrame of a result: sweep's or validate's rows, search's ranking (layout fields as
    columns), or one prediction as a one-row frame."""
    import pandas as pd

    if isinstance(result, list):
        return pd.DataFrame(result)
    if isinstance(result, dict) and "rows" in result:
        return pd.DataFrame(result["rows"])
    if isinstance(result, dict) and "top" in result:
        return pd.json_normalize(result["top"])
    if isinstance(result, dict):
        return pd.json_normalize(result)
    raise TypeError("frame() takes the result of sweep, validate, search, predict or simulate")


def _number(text):
    """CSV cells: integers and floats as numbers, true/false as booleans, empty as None, anything
    else as written."""
    if text is None or text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
