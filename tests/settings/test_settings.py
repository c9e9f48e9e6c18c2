"""Settings: one class reads every BRANDBATCH_* variable, validates it with an error naming the
variable, its value and what is allowed, and README.md documents each one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from settings import Settings, SettingsError, load_settings, settings_table, unknown_variables, variable
from tests.source_literals import REPO, literals_matching

NAME = re.compile(r"^BRANDBATCH_[A-Z0-9_]*$")


def variable_names_outside_settings(root: Path) -> list[str]:
    """Every literal (f-string pieces included) outside settings/ that is a variable name:
    reading one is the settings module's job."""
    return literals_matching(root, NAME, "settings/")


def test_only_the_settings_module_names_a_variable():
    assert variable_names_outside_settings(REPO) == []


def test_the_check_finds_a_variable_read_elsewhere(tmp_path: Path):
    (tmp_path / "render").mkdir()
    (tmp_path / "render" / "x.py").write_text('import os\nos.environ.get("BRANDBATCH_DEVICE")\n'
                                              'f"BRANDBATCH_{1}"\n', encoding="utf-8")
    assert variable_names_outside_settings(tmp_path) == ["render/x.py:2: 'BRANDBATCH_DEVICE'",
                                                         "render/x.py:3: 'BRANDBATCH_'"]


def test_the_readme_table_documents_every_variable():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme
    assert all(f"`{variable(name)}`" in settings_table() for name in Settings.model_fields)


def test_defaults_and_empty_values_are_unset():
    settings = load_settings({"BRANDBATCH_DEVICE": "", "BRANDBATCH_SHARD_SIZE": "  "})
    assert (settings.device, settings.shard_size, settings.batch_invariant, settings.c2pa_alg) == (None, 16, True,
                                                                                                   "es256")
    assert settings.cache == Path.home() / ".cache" / "brandbatch"


def test_values_are_parsed_from_a_mapping_and_from_the_environment_alike(monkeypatch: pytest.MonkeyPatch):
    env = {"BRANDBATCH_DEVICE": "cuda:1", "BRANDBATCH_SHARD_SIZE": "6", "BRANDBATCH_VAE_TILING": "true",
           "BRANDBATCH_GPU_LEASE_SECONDS": "75.5", "BRANDBATCH_C2PA_ALG": "ES384", "BRANDBATCH_STYLES": "/s"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_env, from_mapping = load_settings(), load_settings(env)
    given = {name for name in Settings.model_fields if variable(name) in env}
    assert from_env.model_dump(include=given) == from_mapping.model_dump(include=given)
    assert (from_env.device, from_env.shard_size, from_env.vae_tiling, from_env.gpu_lease_seconds,
            from_env.c2pa_alg, from_env.styles) == ("cuda:1", 6, True, 75.5, "es384", Path("/s"))


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("BRANDBATCH_TORCH_THREADS", "two", "a whole number >= 1"),
    ("BRANDBATCH_SHARD_SIZE", "0", "a whole number >= 1"),
    ("BRANDBATCH_SHARD_STALE_SECONDS", "30", "a number >= 45"),
    ("BRANDBATCH_GPU_LEASE_SECONDS", "soon", "a number >= 60"),
    ("BRANDBATCH_VAE_SLICING", "maybe", r"1/0 \(true/false\)"),
    ("BRANDBATCH_DEVICE", "gpu", "cpu, cuda, cuda:N or mps"),
    ("BRANDBATCH_DEVICE", "cuda:x", "cpu, cuda, cuda:N or mps"),
    ("BRANDBATCH_SHARD_DEPLOYMENT", "render-shard", "FLOW/DEPLOYMENT"),
    ("BRANDBATCH_C2PA_ALG", "md5", "one of es256, es384"),
])
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(name, value, allowed):
    shown = value.lower() if name == "BRANDBATCH_C2PA_ALG" else value  # algorithms are case-insensitive
    with pytest.raises(SettingsError, match=rf"^\${name} must be {allowed}.* but is '{shown}'$"):
        load_settings({name: value})


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({"BRANDBATCH_SHARD_SIZE": "0", "BRANDBATCH_COMPILE": "perhaps"})
    assert str(caught.value).splitlines() == ["$BRANDBATCH_COMPILE must be 1/0 (true/false) but is 'perhaps'",
                                              "$BRANDBATCH_SHARD_SIZE must be a whole number >= 1 but is '0'"]


def test_unknown_variables_are_named_with_the_closest_setting():
    assert unknown_variables({"BRANDBATCH_DEVCE": "cpu", "BRANDBATCH_DEVICE": "cpu", "PATH": "/bin",
                              "BRANDBATCH_ZZZ": "1"}) == [
        "$BRANDBATCH_DEVCE is not a brandbatch setting (did you mean $BRANDBATCH_DEVICE?)",
        "$BRANDBATCH_ZZZ is not a brandbatch setting"]


def test_the_command_line_checks_settings_before_any_command(monkeypatch: pytest.MonkeyPatch):
    from flows.cli import app

    result = CliRunner().invoke(app, ["styles", "list"], env={"BRANDBATCH_SHARD_SIZE": "0"})
    assert result.exit_code == 1
    assert "$BRANDBATCH_SHARD_SIZE must be a whole number >= 1 but is '0'" in result.output
    result = CliRunner().invoke(app, ["styles", "list"], env={"BRANDBATCH_SHARD_SIZ": "8"})
    assert result.exit_code == 0 and "did you mean $BRANDBATCH_SHARD_SIZE?" in result.output


def test_settings_follow_the_environment_as_it_changes(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BRANDBATCH_SHARD_SIZE", "7")
    first = load_settings()
    assert first.shard_size == 7 and load_settings() is first  # read once per set of variables
    monkeypatch.setenv("BRANDBATCH_SHARD_SIZE", "9")
    assert load_settings().shard_size == 9
    monkeypatch.setenv("BRANDBATCH_SHARD_SIZE", "0")
    with pytest.raises(SettingsError, match="SHARD_SIZE must be a whole number >= 1 but is '0'"):
        load_settings()
