"""Configs: typed, validated at load, errors name the key and the file; CLI flags override."""

from __future__ import annotations

from pathlib import Path

import pytest

from pz2.config import DataConfig, ModelConfig, TrainingConfig, ValidationConfig, load_config, save_config
from pz2.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cfg", [ModelConfig(), TrainingConfig(), DataConfig(seed=3, include_real=True),
                                 ValidationConfig(max_tokens=64)])
def test_config_round_trips(cfg, tmp_path: Path) -> None:
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(type(cfg), tmp_path / "c.yaml") == cfg


def test_shipped_configs_load_and_match_the_defaults() -> None:
    shipped = load_config(TrainingConfig, REPO / "finetuning/configs/training_config.yaml")
    assert shipped == TrainingConfig()
    assert set(shipped.profiles) == {"quick", "full", "gpu24"}
    assert shipped.with_profile("quick").max_steps > 0
    gpu = shipped.with_profile("gpu24")
    assert gpu.load_in_4bit and gpu.gradient_checkpointing and gpu.batch_size * gpu.gradient_accumulation_steps == 16
    assert load_config(ModelConfig, REPO / "finetuning/configs/model_config.yaml") == ModelConfig()


@pytest.mark.parametrize(("cls", "name"), [(ModelConfig, "model_config.yaml"), (TrainingConfig, "training_config.yaml")])
def test_the_shipped_files_are_the_settings_descriptions_written_out(cls, name: str) -> None:
    """A setting is described once, in its Field: the shipped YAML is `render_config` of the defaults, every
    key under its description (`make configs` rewrites it), and every setting has one."""
    from pydantic import BaseModel

    from pz2.config import render_config

    undescribed = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for key, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{prefix}{key}.")
            elif not field.description:
                undescribed.append(prefix + key)

    walk(cls, "")
    assert undescribed == []
    text = (REPO / "finetuning" / "configs" / name).read_text(encoding="utf-8")
    assert text == render_config(cls()), f"finetuning/configs/{name} is stale: run `make configs`"


def test_a_rendered_config_reads_back_as_it_was(tmp_path: Path) -> None:
    from pz2.config import render_config

    cfg = ModelConfig(runtime={"router": {"expert_phrases": ["전문가 모드로 답해 주세요", "expert: please"]},
                               "engine": {"openai": {"api_key": "k: #1"}}}, system_prompt="Line one.\nLine two: 'x'")
    (tmp_path / "m.yaml").write_text(render_config(cfg), encoding="utf-8")
    assert load_config(ModelConfig, tmp_path / "m.yaml") == cfg


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("data:\n  per_categroy: 10\n", "`data.per_categroy`: unknown key"),
        ("data:\n  seed: many\n", "`data.seed`: Input should be a valid integer"),
        ("data:\n  per_category: 0\n", "`data.per_category`: Input should be greater than or equal to 10"),
        ("validation:\n  min_chars: 50\n  max_chars: 40\n", "`validation`: Value error, `min_chars` must be smaller"),
        ("data: [1, 2\n", "line 2: not valid YAML"),
        ("- 1\n- 2\n", "the top level must be a mapping"),
        ("profiles:\n  quick:\n    max_stepz: 5\n", "`profiles.quick.max_stepz`: unknown key"),
        ("profiles:\n  quick:\n    batch_size: 0\n", "`profiles.quick.batch_size`: Input should be greater than"),
        ("sft:\n  lora:\n    r: 0\n", "`sft.lora.r`: Input should be greater than or equal to 1"),
        ("sft:\n  learning_rate: 1.0e-4\n  batch_size: 4\n  learning_rate: 3.0e-4\n",
         "line 4: not valid YAML (the key `learning_rate` appears twice in one section)"),
    ],
)
def test_bad_file_names_key_and_file(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "training_config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(TrainingConfig, path)
    assert str(e.value).startswith(f"{path}: ")
    assert expected in str(e.value)


def test_overrides_win_and_are_blamed(tmp_path: Path) -> None:
    path = tmp_path / "training_config.yaml"
    path.write_text("data:\n  seed: 1\n  per_category: 50\n")
    cfg = load_config(TrainingConfig, path, {"data.seed": 9, "data.per_category": None})
    assert (cfg.data.seed, cfg.data.per_category) == (9, 50)  # None means "flag not given"
    with pytest.raises(ConfigError, match=r"`data.per_category`.*\(from a command-line override\)"):
        load_config(TrainingConfig, path, {"data.per_category": 5})


def test_cli_config_error_is_one_line_and_exit_1(cli, workspace) -> None:
    (workspace.configs / "training_config.yaml").write_text("data:\n  per_categroy: 10\n")
    result = cli("data", "generate")
    assert result.exit_code == 1
    assert "training_config.yaml: `data.per_categroy`: unknown key" in result.output
    assert "Traceback" not in result.output
    assert not workspace.datasets.exists(), "nothing is written when the config is bad"


def test_cli_bad_override_names_the_key(cli, workspace) -> None:
    result = cli("data", "generate", "--per-category", "3")
    assert result.exit_code == 1
    assert "`data.per_category`" in result.output and "command-line override" in result.output


def _config_field(path: str):
    """The pydantic field a dotted key names in model_config.yaml or training_config.yaml, or None."""
    from pydantic import BaseModel

    for root in (ModelConfig, TrainingConfig):
        model: type[BaseModel] | None = root
        field = None
        for part in path.split("."):
            field = model.model_fields.get(part) if model is not None else None
            if field is None:
                break
            model = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) \
                else None
        if field is not None:
            return field
    return None


def test_every_cli_option_that_names_a_config_key_names_a_real_one_with_its_values() -> None:
    """A flag's help says which config key it overrides, "(config: sft.precision)": that key exists, and a flag listing choices lists only values the key accepts (all of them, for a key
    of the `auto | ...` kind)."""
    import typing

    import typer.main

    from pz2.cli import app

    def options(command, prefix=""):
        for name, sub in getattr(command, "commands", {}).items():
            yield from options(sub, f"{prefix} {name}")
        for param in command.params:
            yield prefix.strip(), param

    seen = 0
    for command, param in options(typer.main.get_command(app)):
        help_text = getattr(param, "help", None) or ""
        for key in __import__("re").findall(r"config: ([a-z_.]+)", help_text):
            field = _config_field(key)
            assert field is not None, f"pz2 {command} --{param.name}: `{key}` is no config key"
            values = [v for v in typing.get_args(field.annotation) if isinstance(v, str)]
            listed = __import__("re").findall(r"[a-z0-9_]+", help_text.split("(config:")[0])
            if values and any(v in listed for v in values):
                words = [w for w in listed if w not in {"or", "and"}]
                assert set(words) <= set(values), f"pz2 {command} --{param.name} offers {words}, `{key}` takes {values}"
                if "auto" in values:
                    assert set(words) == set(values), f"pz2 {command} --{param.name} offers {words} of {values}"
            after = help_text.split(f"config: {key}", 1)[1]
            assert not after.startswith(","), f"pz2 {command} --{param.name} states a default beside `{key}`: " \
                "the config says it, and may say otherwise"
            seen += 1
    assert seen >= 30
