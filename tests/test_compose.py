"""docker-compose.yaml as a deployment reads it: the services the design names, no secret in the file, every
setting documented in .env.example, nothing but the api-server published. (No container engine here: the
file is checked as YAML and against the environment it promises, not run.)"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yaml"
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_the_services_of_a_celery_deployment_with_the_simulator_as_the_call_center():
    services = compose()["services"]
    assert set(services) == {
        "postgres", "redis", "callcenter", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    }  # fmt: skip
    common = services["airflow-scheduler"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert common["AIRFLOW_CONN_CALLFILTER_DB"].endswith("@postgres:5432/callfilter")  # its own database
    assert services["airflow-worker"]["command"] == "celery worker"
    # A worker loads the plugins when it starts: its task processes inherit callfilter_preload's libraries.
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__LAZY_LOAD_PLUGINS"] == "false"
    for name in ("airflow-worker", "airflow-triggerer", "airflow-scheduler"):
        assert "callfilter-files:/opt/callfilter/files" in services[name]["volumes"]  # one shared file store


def test_only_the_api_server_is_published_and_no_secret_is_in_the_file():
    services = compose()["services"]
    assert [name for name, service in services.items() if service.get("ports")] == ["airflow-apiserver"]
    text = COMPOSE.read_text(encoding="utf-8")
    for secret in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "CALLCENTER_APP_SECRET"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (secret, uses)  # required, no default


def test_every_setting_the_file_reads_is_documented_in_the_example_env():
    text = COMPOSE.read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert set(VARIABLE.findall(text)) - {"HOSTNAME"} <= documented


def test_every_setting_of_callfilter_reaches_the_containers_and_the_example_env_shows_its_default():
    from callfilter import housekeeping, operators, params, polling, rules, sending

    read = set()  # every CALLFILTER_* setting the deployed code reads
    for path in [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "dags").glob("*.py")]:
        read |= set(re.findall(r"\"(CALLFILTER_[A-Z_]+)\"", path.read_text(encoding="utf-8")))
    read -= {"CALLFILTER_SQL_DIR"}  # where include/sql is, inside the image: not a setting
    assert len(read) >= 15, sorted(read)
    common = compose()["services"]["airflow-worker"]["environment"]
    assert read - set(common) == set()  # a setting not passed here would be ignored, whatever .env says
    example = dict(
        re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert read - set(example) == set()
    defaults = {
        params.VENDOR_CAP_ENV: params.DEFAULT_VENDOR_CAP,
        params.TRIGGERER_VENDOR_RATE_ENV: params.DEFAULT_TRIGGERER_VENDOR_RATE,
        params.TIMEZONE_ENV: params.DEFAULT_TIMEZONE,
        operators.POLL_INTERVAL_ENV: operators.DEFAULT_POLL_INTERVAL,
        operators.QUERY_TIMEOUT_ENV: operators.DEFAULT_QUERY_TIMEOUT.total_seconds(),
        sending.DIAL_SECONDS_ENV: sending.DEFAULT_DIAL_SECONDS,
        rules.RESCREEN_DELAY_ENV: rules.DEFAULT_RESCREEN_DELAY,
        rules.RESCREEN_MAX_ENV: rules.DEFAULT_RESCREEN_MAX,
        rules.VALID_RESCREEN_AGE_ENV: "",
        polling.MAX_RUNS_ENV: polling.DEFAULT_MAX_RUNS,
        housekeeping.RETENTION_ENV: housekeeping.DEFAULT_RETENTION_DAYS,
    }
    shown = {name: example[name] for name in defaults}
    assert shown == {
        name: value if isinstance(value, str) else f"{value:g}" for name, value in defaults.items()
    }


def test_compose_config_accepts_the_file_with_the_example_env(tmp_path):
    import shutil
    import subprocess

    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        command = ["docker", "compose"]
    else:
        pytest.skip("no docker compose (nor docker-compose) on this machine: only the file's own checks ran")
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    checked = subprocess.run(
        [*command, "--env-file", str(env), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
