"""DiagnosticsCallback during fit, the PNG plots, and the demo on a tiny budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rnnkit as rk
from rnnkit.diagnostics import (
    DiagnosticsCallback,
    gradient_flow_plot,
    hidden_states_plot,
    saturation_history_plot,
    trace,
)
from rnnkit.diagnostics.demo import main as demo_main
from rnnkit.diagnostics.demo import run_demo

PNG = b"\x89PNG\r\n\x1a\n"


def _model(kind: str = "GRU") -> rk.Sequential:
    model = rk.Sequential([getattr(rk.layers, kind)(3, input_shape=(6, 2)), rk.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.random((16, 6, 2)).astype(np.float32), rng.random((16, 1)).astype(np.float32)


def test_callback_records_every_n_epochs_and_writes_json(tmp_path: Path) -> None:
    x, y = _data()
    model = _model()
    path = tmp_path / "history.json"
    callback = DiagnosticsCallback(x[:4], y[:4], every=2, path=path)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[callback])
    assert [r["epoch"] for r in callback.history] == [0, 2, 4]
    assert json.loads(path.read_text()) == json.loads(json.dumps(callback.history))
    record = callback.history[-1]["layers"][model.layers[0].name]
    assert len(record["grad_norm"]) == 6 and set(record["gate_saturation"]) == {"z", "r"}
    assert 0.0 <= record["saturation"] <= 1.0
    assert [m["gate"] for m in callback.history[-1]["matrices"]] == ["z", "r", "h"]
    # the records follow the weights: after training they differ from the start
    assert callback.history[0]["loss"] != callback.history[-1]["loss"]
    with pytest.raises(ValueError, match="every"):
        DiagnosticsCallback(x, y, every=0)
    with pytest.raises(ValueError, match="targets"):
        DiagnosticsCallback(x, None)


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    x, y = _data()
    model = _model("LSTM")
    mask = np.ones((16, 6), dtype=bool)
    mask[0, 4:] = False
    result = trace(model, x, y, mask=mask)
    gradient_flow_plot(result.gradient_flow(), tmp_path / "flow.png")
    hidden_states_plot(result.layers[0], tmp_path / "deep" / "hidden.png")
    callback = DiagnosticsCallback(x[:4], y[:4])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback])
    saturation_history_plot(callback.history, tmp_path / "saturation.png")
    for name in ("flow.png", "deep/hidden.png", "saturation.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert not list(tmp_path.glob("**/*.tmp"))
    with pytest.raises(ValueError, match="at least one"):
        gradient_flow_plot({}, tmp_path / "empty.png")
    with pytest.raises(ValueError, match="sample"):
        hidden_states_plot(result.layers[0], tmp_path / "x.png", sample=16)
    forward_only = trace(model, x)  # no gradient panel
    hidden_states_plot(forward_only.layers[0], tmp_path / "forward.png")
    assert (tmp_path / "forward.png").read_bytes()[:8] == PNG


def test_demo_on_a_tiny_budget_writes_plots_and_tables(tmp_path: Path) -> None:
    lines: list[str] = []
    results = run_demo(length=6, units=3, epochs=2, samples=64, out=tmp_path, log=lines.append)
    assert [r.cell for r in results] == ["SimpleRNN", "GRU", "LSTM"] and len(lines) == 3
    for r in results:
        assert len(r.val_mse) == 2 and len(r.flow_trained) == 6 and 0.0 <= r.accuracy <= 1.0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"demo.png", "results.md", "results.json", "gru_hidden_states.png",
            "lstm_saturation.png"} <= names
    assert (tmp_path / "demo.png").read_bytes()[:8] == PNG
    assert "| GRU |" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="cells"):
        run_demo(cells=["Transformer"])
    with pytest.raises(ValueError, match="length"):
        run_demo(length=1)


def test_demo_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_main(["--length", "4", "--units", "2", "--epochs", "1", "--samples", "32",
                      "--out", str(tmp_path)]) == 0
    assert "| SimpleRNN |" in capsys.readouterr().out
    assert (tmp_path / "demo.png").is_file()


def test_demo_legend_and_table_round_alike(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """An accuracy of 99.94% is 99.9% in the table and in the plot's legend (not 100%)."""
    from rnnkit.diagnostics import demo

    figures = []
    monkeypatch.setattr(demo, "save", lambda figure, path: figures.append(figure))
    results = [demo.DemoResult(cell=cell, val_mse=[0.1, 0.01], accuracy=accuracy,
                               flow_initial=[1e-3, 1.0], flow_trained=[0.3, 1.0],
                               ratio_initial=1e-3, ratio_trained=0.3, reading=[], seconds=1.0,
                               parameters=10)
               for cell, accuracy in (("GRU", 0.9994), ("LSTM", 0.9375))]
    demo.demo_plot(results, 2, tmp_path / "demo.png")
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    table = demo.results_table(results, 2)
    for shown in ("99.9%", "93.8%"):
        assert any(shown in text for text in legend), legend
        assert f"| {shown} |" in table, table
    assert not any("100%" in text for text in legend), legend
