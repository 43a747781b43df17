"""The scheduled reproducibility jobs users adopt: valid against GitHub's and GitLab's published
schemas (check-jsonschema ships both; checked offline), and running what the README says."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from check_jsonschema import main as check_jsonschema

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "nightly-repro.yml"
GITLAB = PROJECT_ROOT / ".gitlab-ci.yml"


def _valid(schema: str, path: Path) -> bool:
    with pytest.raises(SystemExit) as done:
        check_jsonschema(["--builtin-schema", schema, str(path)])
    return done.value.code == 0


def test_the_github_workflow_is_valid_and_runs_the_nightly_repro():
    assert _valid("vendor.github-workflows", WORKFLOW)
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on:` as true
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    steps = workflow["jobs"]["repro"]["steps"]
    assert any(step.get("run") == "./noxw -s repro -- --all" for step in steps)
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "output/repro/" and upload["if"] == "always()"


def test_the_gitlab_job_is_valid_and_runs_the_nightly_repro():
    assert _valid("vendor.gitlab-ci", GITLAB)
    job = yaml.safe_load(GITLAB.read_text())["nightly-repro"]
    assert job["script"] == ["./noxw -s repro -- --all"]
    assert {"if": '$CI_PIPELINE_SOURCE == "schedule"'} in job["rules"]
    assert job["artifacts"]["reports"]["junit"] == "output/repro/junit.xml" and job["artifacts"]["when"] == "always"


def test_a_broken_workflow_is_refused(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("    runs-on: ubuntu-latest\n", "    runs_on: ubuntu-latest\n"))
    assert not _valid("vendor.github-workflows", broken)
    gitlab = tmp_path / ".gitlab-ci.yml"
    gitlab.write_text(GITLAB.read_text().replace("    when: always\n", "    when: sometimes\n"))
    assert not _valid("vendor.gitlab-ci", gitlab)
