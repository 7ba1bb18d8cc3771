"""config/prometheus/: the scrape config and rule files are valid for Prometheus' own checker,
the alert rules pass their promtool unit tests (each alert fires where it should and stays
quiet where it should not), and every series the rules read is one the service exposes."""

from __future__ import annotations

import re
import subprocess

import yaml

from batchsvc.metrics import Metrics
from tests.helpers.promtool import promtool
from tests.helpers.repository import ROOT

FOLDER = ROOT / "config" / "prometheus"


def _run(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=FOLDER, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_scrape_config_and_its_rule_files_are_valid() -> None:
    assert "2 rule files found" in _run("check", "config", "prometheus.yml")


def test_the_alerts_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    tests = sorted(str(path.relative_to(FOLDER)) for path in (FOLDER / "tests").glob("*.yml"))
    assert tests
    assert "SUCCESS" in _run("test", "rules", *tests)


def test_every_alert_has_a_firing_and_a_quiet_test() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((FOLDER / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in (FOLDER / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case["exp_alerts"] else quiet).add(case["alertname"])
    assert alerts and fired == alerts and quiet == alerts


def test_the_rules_read_only_series_the_service_exposes() -> None:
    exposed = {"up"}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    for family in Metrics().registry.collect():
        exposed.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    recorded: set[str] = set()
    read: set[str] = set()
    for name in ("recording.yml", "alerts.yml"):
        for group in yaml.safe_load((FOLDER / name).read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    recorded.add(rule["record"])
                read.update(re.findall(r"\b(batchsvc[_:][a-z0-9_:]*)", rule["expr"]))
    unknown = read - recorded - exposed
    assert not unknown, unknown


def test_no_rule_file_is_left_out_of_the_scrape_config() -> None:
    config = yaml.safe_load((FOLDER / "prometheus.yml").read_text())
    rule_files = {path.name for path in FOLDER.glob("*.yml")} - {"prometheus.yml"}
    assert set(config["rule_files"]) == rule_files
    [job] = config["scrape_configs"]
    assert job["job_name"] == "batchsvc"  # BatchsvcDown reads up{job="batchsvc"}
