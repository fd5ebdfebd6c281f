"""The `palmsim` Python module against the CLI on the same scenarios: identical numbers, the same
error messages, and errors as palmsim.InputError naming the field. Run by ctest (python_module)."""
import csv
import io
import json
import os
import subprocess
import tempfile
import unittest

import palmsim

PALMSIM = os.environ["PALMSIM"]
PALM = "scenarios/palm-540b-tpuv4-6144.yaml"
SMALL = {
    "model": "palm-8b",
    "system": {"preset": "tpu-v4-pod", "chips": 64},
    "layout": {"tp": 4, "dp": 16, "microbatch": 4},
    "training": {"global_batch": 256},
}


def cli(*args):
    return subprocess.run([PALMSIM, *args], capture_output=True, text=True)


def cli_json(*args):
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class PredictMatchesTheCli(unittest.TestCase):
    def test_palm_540b_identical(self):
        self.assertEqual(palmsim.predict(PALM), cli_json("predict", PALM, "--json"))
        self.assertAlmostEqual(palmsim.predict(PALM)["mfu"], 0.462, delta=0.015)  # PaLM Table 3: 46.2 %

    def test_per_op_identical(self):
        self.assertEqual(palmsim.predict(PALM, per_op=True), cli_json("predict", PALM, "--json", "--per-op"))

    def test_overrides_equal_an_edited_file(self):
        with tempfile.TemporaryDirectory() as d:
            edited = os.path.join(d, "serial.yaml")
            with open(PALM) as f:
                text = f.read().replace("model: palm-540b", "model: {preset: palm-540b, parallel_block: false}")
            with open(edited, "w") as f:
                f.write(text)
            ours = palmsim.predict(PALM, overrides={"model.parallel_block": False})
            self.assertEqual(ours, cli_json("predict", edited, "--json"))
            self.assertGreater(ours["step_time_s"], palmsim.predict(PALM)["step_time_s"])

    def test_dict_equals_the_same_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "small.yaml")
            with open(path, "w") as f:
                json.dump(SMALL, f)  # JSON is YAML
            self.assertEqual(palmsim.predict(SMALL), cli_json("predict", path, "--json"))
            scenario = palmsim.load(SMALL).with_overrides({"layout.tp": 8, "layout.dp": 8})
            self.assertEqual(scenario.predict()["layout"]["tp"], 8)


class OtherVerbsMatchTheCli(unittest.TestCase):
    def test_simulate(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "small.yaml")
            with open(path, "w") as f:
                json.dump(SMALL, f)
            self.assertEqual(palmsim.simulate(SMALL), cli_json("simulate", path, "--json"))

    def test_search_ranking(self):
        ours = palmsim.search("scenarios/palm-62b-tpuv4.yaml", top=5)
        theirs = cli_json("search", "scenarios/palm-62b-tpuv4.yaml", "--top", "5", "--json")
        for timing in ("seconds", "layouts_per_s"):  # the CLI prints its timing on stderr
            ours.pop(timing)
            self.assertNotIn(timing, theirs)
        self.assertEqual(ours, theirs)
        self.assertEqual(len(palmsim.frame(ours)), 5)

    def test_validate_rows_and_summary(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "out.csv")
            r = cli("validate", "scenarios/published/published_runs.csv", "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out) as f:
                rows = list(csv.DictReader(f))
        ours = palmsim.validate("scenarios/published/published_runs.csv")
        self.assertEqual(len(ours["rows"]), len(rows))
        for mine, theirs in zip(ours["rows"], rows):
            for key, value in theirs.items():
                self.assertEqual(palmsim._number(value), mine[key], key)
        summary = ours["files"][0]["summary"]
        self.assertEqual(summary, ours["all_files"])  # one file
        line = "scenarios/published/published_runs.csv: rows %d, scored %d, not modelled %d, mean |err_step| %.2f %%" % (
            summary["rows"], summary["scored"], summary["not_modelled"], summary["mean_abs_err_step_pct"])
        self.assertIn(line, r.stdout)

    def test_validate_simulated_summary_is_the_cli_line(self):
        # Four rows of NeMo's long-sequence runs, two with context parallelism: all four simulate,
        # and the module's summary is the CLI's line.
        with open("scenarios/published/nemo_long_sequence_h100.csv") as f:
            lines = f.read().splitlines(True)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "four.csv")
            with open(path, "w") as f:
                f.writelines([lines[0]] + lines[3:7])
            r = cli("validate", "--simulate", path)
            self.assertEqual(r.returncode, 0, r.stderr)
            ours = palmsim.validate(path, simulate=True)
        simulated = ours["all_files_simulated"]
        self.assertEqual(simulated, ours["files"][0]["simulated_summary"])
        self.assertEqual((simulated["rows"], simulated["scored"], simulated["not_modelled"]), (4, 4, 0))
        self.assertEqual(sum(1 for row in ours["rows"] if row["sim_error"]), 0)
        line = "simulated, all files: rows 4, scored 4, not modelled 0, mean |err_step| %.2f %%" % (
            simulated["mean_abs_err_step_pct"])
        self.assertIn(line, r.stdout)

    def test_sweep_rows_are_the_cli_csv(self):
        grid = {"model.parallel_block": [True, False], "layout.tp": [6, 12, 24], "layout.dp": [256, 512, 1024]}
        args = ["sweep", PALM, "-q"]
        for key, values in grid.items():
            args += ["--set", "%s=%s" % (key, ",".join(palmsim._text(v) for v in values))]
        r = cli(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        theirs = list(csv.DictReader(io.StringIO(r.stdout)))
        ours = palmsim.sweep(PALM, grid)
        self.assertEqual(len(ours), 18)
        for mine, row in zip(ours, theirs):
            self.assertEqual({k: palmsim._number(v) for k, v in row.items()}, mine)
        legal = [row for row in ours if row["error"] is None]
        self.assertEqual(len(legal), 4)  # tp 12 x dp 512 and tp 24 x dp 256, parallel and serial
        frame = palmsim.frame(ours)
        self.assertEqual(list(frame.columns[:4]), ["combination", "model.parallel_block", "layout.tp", "layout.dp"])


class ErrorsAreTheCliMessages(unittest.TestCase):
    def check(self, overrides, field):
        with self.assertRaises(palmsim.InputError) as caught:
            palmsim.predict(PALM, overrides)
        self.assertEqual(caught.exception.field, field)
        self.assertIsInstance(caught.exception, ValueError)
        return str(caught.exception)

    def test_unknown_key_and_bad_values(self):
        self.check({"layout.tpp": 1}, "layout.tpp")
        self.check({"model.parallel_block": "maybe"}, "model.parallel_block")
        self.check({"system.preset": "tpu-v9"}, "system.preset")
        message = self.check({"layout.tp": "twelve"}, "layout.tp")
        r = cli("sweep", PALM, "--set", "layout.tp=twelve", "-q")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip(), "palmsim: error: " + message)

    def test_missing_file_and_bad_sweep(self):
        with self.assertRaises(palmsim.InputError) as caught:
            palmsim.predict("no/such.yaml")
        self.assertEqual(caught.exception.field, "scenario")
        with self.assertRaises(palmsim.InputError) as caught:
            palmsim.sweep(PALM, {"layout.tpp": [1, 2]})
        self.assertEqual(caught.exception.field, "layout.tpp")
        with self.assertRaises(TypeError):
            palmsim.predict(42)


if __name__ == "__main__":
    unittest.main()
