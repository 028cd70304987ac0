"""README's two set-up commands stay true: CI runs exactly README's test command."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_starts_with_two_commands_and_ci_runs_the_second():
    commands = _readme_commands()
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_readme_library_example_runs(shared, tmp_path, monkeypatch, capsys):
    """The "As a library" block runs as written (with ../shared/data pointing at the real data)."""
    text = (ROOT / "README.md").read_text()
    code = text.split("## As a library", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("../shared/data", str(shared)), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "MSE per pixel" in out and "auroc" in out and "epoch   1/1" in out
    assert Image.open(tmp_path / "new_sheep.png").size[0] > 28 * 4
    assert (tmp_path / "runs" / "lib" / "model.safetensors").is_file()
    assert "most unlike a sheep" in out and (tmp_path / "screened" / "anomaly_scores.csv").is_file()


def test_readme_names_each_commands_library_call_as_it_is():
    """The functions README names as each command's own call exist, as do the commands."""
    import importlib
    import re

    from electric_sheep.cli import main

    text = (ROOT / "README.md").read_text()
    paragraph = text.split("Each command's own call", 1)[1].split("## ", 1)[0]
    names = re.findall(r"`((?:runs|analysis|render)\.[\w.]+)`", paragraph)
    assert len(names) >= 9, paragraph
    for name in names:
        module, _, attribute = name.rpartition(".")
        if attribute.endswith("_outputs"):  # a module of such calls
            importlib.import_module(f"electric_sheep.{name}")
        else:
            assert callable(getattr(importlib.import_module(f"electric_sheep.{module}"), attribute)), name
    commands = re.findall(r"`(?:sheep )?([a-z]+)`", paragraph)
    assert set(commands) <= set(main.commands) and len(commands) >= 12, commands
