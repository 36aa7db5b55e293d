"""`alexnet train`'s flags are generated from TrainConfig and the model registry: every
setting has one, with its type, choices and documentation; --print-config shows the
resolved settings as config.yaml holds them."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from alexnet.cli import build_parser, main
from alexnet.cli.settings import field_docs
from alexnet.engine.config import TrainConfig
from alexnet.models import list_models, model_info


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def test_every_setting_has_a_documented_flag():
    parser = _train_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    docs, groups = field_docs(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in flags, flag
        assert docs.get(f.name), f"{f.name} has no docstring (its --help text)"
        assert groups[f.name] != "settings", f"{f.name} is in no '# ---- ' section"
    help_text = parser.format_help()
    assert "--step-iterations" in help_text and "Caffe's stepsize" in help_text
    assert "{paper,torch}" in help_text  # choices from Literal types


def test_every_model_option_has_a_flag():
    parser = _train_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    for name in list_models():
        for option in model_info(name).options:
            if option != "input_size":  # the --input-size setting
                assert "--" + option.replace("_", "-") in flags, option


def _print_config(capsys, *argv) -> dict:
    assert main(["train", "--print-config", *argv]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_flags_set_settings_and_model_options(capsys, tiny_data):
    cfg = _print_config(
        capsys,
        "--data", str(tiny_data),
        "--preset", "paper",
        "--lr", "0.02",
        "--no-skip-bad",
        "--sgd-form", "torch",
        "--max-steps", "7",
        "--dropout-form", "inverted",
        "--lrn-k", "1",
        "--no-lrn-alpha-over-n",
        "--demo", "{seed: 3}",
    )  # fmt: skip
    assert cfg["lr"] == 0.02 and cfg["sgd_form"] == "torch" and cfg["max_steps"] == 7
    assert cfg["skip_bad"] is False and cfg["demo"] == {"seed": 3}
    # the preset's model options stay, the flags' are merged over them
    assert cfg["model_kwargs"] == {
        "init": "paper",
        "dropout_form": "inverted",
        "lrn_k": 1.0,
        "lrn_alpha_over_n": False,
    }
    assert cfg["normalize"] == "pixel" and cfg["resize_mode"] == "square"  # the paper preset


def test_print_config_is_config_yaml(capsys, tiny_data, tmp_path):
    out = tmp_path / "run"
    argv = ["--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--max-steps", "1"]
    argv += ["--batch-size", "4", "--workers", "0", "--device", "cpu", "--amp", "off"]
    argv += ["--normalize", "channel", "--quiet", "--width", "0.125", "--no-report"]
    printed = _print_config(capsys, *argv)
    assert not out.exists()  # nothing started
    assert main(["train", *argv]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text()) == printed


def test_choices_and_types_are_checked(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--sgd-form", "nesterov"])
    assert "invalid choice: 'nesterov'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model-kwargs", "[1, 2]"])
    assert "expected a mapping" in capsys.readouterr().err


def test_a_config_file_with_bad_values_is_reported_at_once(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("sgd_form: nesterov\nlr: fast\nresize_mode: crop\nfreeze: conv9\n")
    assert main(["train", "--config", str(bad), "--print-config"]) == 2
    err = capsys.readouterr().err
    for needle in (
        "--sgd-form must be one of paper, torch",
        "--lr must be a float",
        "--resize-mode",
    ):
        assert needle in err, needle


def test_presets_resolve_and_validate(capsys):
    for preset in ("paper", "caffe", "owt", "demo", "finetune"):
        if preset == "finetune":
            continue  # needs --init-from (tests/engine/test_finetune.py)
        cfg = _print_config(capsys, "--preset", preset, "--data", "demo")
        assert cfg["model"] in list_models()
    caffe = _print_config(capsys, "--preset", "caffe", "--data", "demo")
    assert caffe["bias_lr_mult"] == 2.0 and caffe["bias_decay_mult"] == 0.0
    assert caffe["step_iterations"] == 100_000 and caffe["max_steps"] == 450_000
    assert caffe["model_kwargs"]["lrn_window"] == "layer" and caffe["resize_mode"] == "warp"


def test_the_paper_and_caffe_presets_train_in_float32(capsys):
    """Both published recipes trained in float32 (Caffe's 57.1% is a float32 figure):
    their presets pin --amp off; bf16 is a flag over them; the others keep auto."""
    for preset in ("paper", "caffe"):
        assert _print_config(capsys, "--preset", preset, "--data", "demo")["amp"] == "off"
        cfg = _print_config(capsys, "--preset", preset, "--data", "demo", "--amp", "bf16")
        assert cfg["amp"] == "bf16"
    for preset in ("owt", "demo"):
        assert _print_config(capsys, "--preset", preset, "--data", "demo")["amp"] == "auto"


def _nullable_settings() -> list[str]:
    import typing

    from alexnet.engine.config import setting_types

    return [k for k, t in setting_types().items() if type(None) in typing.get_args(t)]


@pytest.mark.parametrize("word", ["none", "None", "null"])
def test_none_means_none_on_the_command_line_and_in_yaml(capsys, tmp_path, word):
    """Every optional setting: `--max-steps none` undoes the caffe preset's 450,000 (it was
    taken as "not given"), and `max_steps: none` in a --config file does the same."""
    names = _nullable_settings()
    assert {"max_steps", "workers", "freeze", "init_from", "eval_batches"} <= set(names)
    given = {"max_steps": 3, "workers": 1, "freeze": "conv2", "eval_batches": 2}
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(given))
    flags = [a for k in given for a in ("--" + k.replace("_", "-"), word)]
    cfg = _print_config(capsys, "--preset", "caffe", "--config", str(base), *flags)
    assert all(cfg[k] is None for k in given), cfg
    assert _print_config(capsys, "--preset", "caffe")["max_steps"] == 450_000
    assert _print_config(capsys, "--preset", "caffe", "--max-steps", word)["max_steps"] is None
    for name in names:
        f = tmp_path / f"{name}.yaml"
        f.write_text(f"{name}: {word}\n")
        assert _print_config(capsys, "--preset", "caffe", "--config", str(f))[name] is None, name


def test_resize_is_bounded_as_checkpoints_are(capsys):
    """A run may not write checkpoints that evaluate and predict would refuse."""
    assert main(["train", "--print-config", "--resize", "909"]) == 2
    err = capsys.readouterr().err
    assert "--resize (909) must be between the input size (227) and 4 x it (908)" in err
    assert _print_config(capsys, "--resize", "908")["resize"] == 908


def test_backbone_lr_mult_without_init_from_is_refused(capsys):
    """It scales the layers taken from --init-from: alone it would be silently ignored."""
    assert main(["train", "--print-config", "--backbone-lr-mult", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--backbone-lr-mult 0.1 scales the layers taken from --init-from" in err
    assert main(["train", "--print-config", "--preset", "finetune", "--data", "demo"]) == 2
    assert "it needs --init-from FILE" in capsys.readouterr().err
    finetune = ["--preset", "finetune", "--backbone-lr-mult", "1", "--data", "demo"]
    assert _print_config(capsys, *finetune)["backbone_lr_mult"] == 1.0
