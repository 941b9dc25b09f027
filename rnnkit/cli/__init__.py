"""The ``rnnkit`` command: train, evaluate, predict and generate on real sequence data.

    rnnkit train                              LSTM forecast of Mauna Loa CO2 vs naive baselines
    rnnkit train --task forecast --csv F --target COL --window N --horizon N
    rnnkit train --task classify              digits read row by row (or --npy / --csv)
    rnnkit train --task text [--text FILE]    character-level language model
    rnnkit train --nproc 2 ...                data-parallel in 2 processes (or: torchrun
                                              --nproc_per_node 2 -m rnnkit train ...)
    rnnkit predict RUN_DIR [--csv F]          forecasts or classes as CSV
    rnnkit evaluate RUN_DIR                   test metrics of a finished run
    rnnkit summary RUN_DIR                    the model's table, settings and metrics
    rnnkit generate RUN_DIR --prime "def "    sample text from a text run
    rnnkit train --task translate [--tsv F]    encoder-decoder (default: dates -> ISO)
    rnnkit translate RUN_DIR "3 March 2021"   translate with a translate run (--beam N)
    rnnkit diagnose RUN_DIR                   gradient flow through time, saturation, plots
    rnnkit bench                              the speed benchmark (rnnkit.bench)

The commands are thin: they call ``fit``/``predict``/``save`` of the Python API. Bad input
(options included) gives ``error: <what is wrong>`` on stderr and exit code 1; Ctrl-C gives
exit code 130. ``rnnkit --version`` prints the version.
Heavy imports (torch, matplotlib) happen inside the commands, so ``--help`` is quick.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ._common import guarded
from .config import CELLS

__all__ = ["app", "main"]

class _OneLineErrors(TyperGroup):
    """Option and usage errors (``--window 0``, an unknown option) as one ``error:`` line and
    exit code 1, like every other bad input, instead of click's usage block and exit code 2."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from typer._click.exceptions import NoArgsIsHelpError, UsageError

        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as e:  # bare `rnnkit`: the help text
            e.show()
            sys.exit(e.exit_code)
        except UsageError as e:
            print(f"error: {' '.join(e.format_message().split())}", file=sys.stderr)
            sys.exit(1)
        except typer.Abort:
            print("Interrupted.", file=sys.stderr)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="rnnkit",
    help="Train, evaluate and use recurrent networks (RNN, GRU, LSTM) on sequence data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class TaskName(str, Enum):
    forecast = "forecast"
    classify = "classify"
    text = "text"
    translate = "translate"


# --cell's choices: the cells' names (config.CELLS)
Cell = Enum("Cell", {name: name for name in CELLS}, type=str)  # type: ignore[misc]


_DATA = "Data"
_MODEL = "Model"
_TRAINING = "Training"
_RUN = "Run folder"

Opt = typer.Option


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"rnnkit {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, Opt("--version", is_eager=True, callback=_print_version,
                                 help="print rnnkit's version and exit")] = False,
) -> None:
    """Train, evaluate and use recurrent networks (RNN, GRU, LSTM) on sequence data."""


@app.command(no_args_is_help=False)
@guarded
def train(
    task: Annotated[TaskName | None, Opt(help="forecast (default), classify, text or translate",
                                         rich_help_panel=_DATA)] = None,
    dataset: Annotated[str | None, Opt(help="built-in data when no file is given: co2 "
                                       "(default), sunspots | digits | stdlib",
                                       rich_help_panel=_DATA)] = None,
    csv: Annotated[Path | None, Opt(help="CSV file: a series (forecast) or one sample per row "
                                    "(classify)", rich_help_panel=_DATA)] = None,
    target: Annotated[str | None, Opt(help="column to forecast / label column",
                                      rich_help_panel=_DATA)] = None,
    features: Annotated[list[str] | None, Opt("--features", help="extra input columns "
                                              "(repeat the option)", rich_help_panel=_DATA)
                        ] = None,
    date_column: Annotated[str | None, Opt(help="column of ISO dates (forecast)",
                                           rich_help_panel=_DATA)] = None,
    window: Annotated[int | None, Opt(min=1, help="input steps per sample (forecast, text)",
                                      rich_help_panel=_DATA)] = None,
    horizon: Annotated[int | None, Opt(min=1, help="steps to forecast (default 1)",
                                       rich_help_panel=_DATA)] = None,
    season: Annotated[int | None, Opt(min=1, help="season length for the seasonal-naive "
                                      "baseline (default: from the dates)",
                                      rich_help_panel=_DATA)] = None,
    relative: Annotated[bool | None, Opt("--relative/--no-relative",
                                         help="model each window relative to its last value "
                                         "(default; for trending series) or as levels",
                                         rich_help_panel=_DATA)] = None,
    npy: Annotated[Path | None, Opt(help="classify: X as .npy, (samples, steps[, features])",
                                    rich_help_panel=_DATA)] = None,
    labels: Annotated[Path | None, Opt(help="classify: labels as .npy, one per sample",
                                       rich_help_panel=_DATA)] = None,
    timesteps: Annotated[int | None, Opt(min=1, help="classify --csv: steps per row "
                                         "(default: one column per step)",
                                         rich_help_panel=_DATA)] = None,
    text: Annotated[Path | None, Opt(help="text: UTF-8 file to learn from",
                                     rich_help_panel=_DATA)] = None,
    max_chars: Annotated[int | None, Opt(min=1, help="text: use at most this many characters",
                                         rich_help_panel=_DATA)] = None,
    tsv: Annotated[Path | None, Opt(help="translate: tab-separated source/target pairs "
                                    "(default: generated dates)", rich_help_panel=_DATA)] = None,
    samples: Annotated[int | None, Opt(min=10, help="translate: pairs to generate or read "
                                       "(default 6000)", rich_help_panel=_DATA)] = None,
    cell: Annotated[Cell | None, Opt(help="recurrent cell (default lstm)",
                                     rich_help_panel=_MODEL)] = None,
    units: Annotated[int | None, Opt(min=1, help="units per recurrent layer",
                                     rich_help_panel=_MODEL)] = None,
    layers: Annotated[int | None, Opt(min=1, help="stacked recurrent layers (default 1)",
                                      rich_help_panel=_MODEL)] = None,
    bidirectional: Annotated[bool | None, Opt("--bidirectional", help="read sequences both "
                                              "ways", rich_help_panel=_MODEL)] = None,
    dropout: Annotated[float | None, Opt(min=0.0, max=0.99, help="dropout after each recurrent "
                                         "layer", rich_help_panel=_MODEL)] = None,
    embedding_dim: Annotated[int | None, Opt(min=1, help="text: embedding size",
                                             rich_help_panel=_MODEL)] = None,
    attention: Annotated[bool | None, Opt("--attention", help="translate: attention over the "
                                          "encoder's outputs", rich_help_panel=_MODEL)] = None,
    epochs: Annotated[int | None, Opt(min=1, help="epochs to train (with --resume: the new "
                                      "total)", rich_help_panel=_TRAINING)] = None,
    batch_size: Annotated[int | None, Opt(min=1, rich_help_panel=_TRAINING)] = None,
    lr: Annotated[float | None, Opt(min=0.0, help="Adam learning rate",
                                    rich_help_panel=_TRAINING)] = None,
    seed: Annotated[int | None, Opt(min=0, help="random seed (default 0): same seed, same "
                                    "run", rich_help_panel=_TRAINING)] = None,
    device: Annotated[str | None, Opt(help="cpu (default) or cuda",
                                      rich_help_panel=_TRAINING)] = None,
    nproc: Annotated[int | None, Opt(min=1, help="train data-parallel in N processes on this "
                                     "machine (gloo on cpu, nccl on cuda); for several "
                                     "machines run `torchrun ... -m rnnkit train ...`",
                                     rich_help_panel=_TRAINING)] = None,
    out: Annotated[Path | None, Opt(help="RUN_DIR to write (default runs/<task>-<time>)",
                                    rich_help_panel=_RUN)] = None,
    overwrite: Annotated[bool, Opt("--overwrite", help="replace an existing run in --out",
                                   rich_help_panel=_RUN)] = False,
    resume: Annotated[Path | None, Opt(help="continue the run in RUN_DIR from its last "
                                       "completed epoch", rich_help_panel=_RUN)] = None,
    tensorboard: Annotated[bool, Opt("--tensorboard", help="log to RUN_DIR/tensorboard "
                                     "(needs the tensorboard package)",
                                     rich_help_panel=_RUN)] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="no progress bars",
                               rich_help_panel=_RUN)] = False,
) -> None:
    """Train a model and write everything about the run to RUN_DIR.

    With no options: an LSTM forecasts the monthly Mauna Loa CO2 series (shipped with
    statsmodels) and is compared with the naive and seasonal-naive forecasts.
    """
    from .train import TrainOptions, train as run_train

    run_train(TrainOptions(
        task=task.value if task else None, dataset=dataset, csv=csv, target=target,
        features=list(features or []), date_column=date_column, window=window, horizon=horizon,
        season=season, relative=relative, npy=npy, labels=labels, timesteps=timesteps,
        text=text, max_chars=max_chars, tsv=tsv, samples=samples, attention=attention,
        cell=cell.value if cell else None, units=units,
        layers=layers, bidirectional=bidirectional, dropout=dropout,
        embedding_dim=embedding_dim, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        device=device, out=out, overwrite=overwrite, resume=resume, tensorboard=tensorboard,
        quiet=quiet, nproc=nproc))


RunDirArg = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="folder written by "
                                           "rnnkit train")]
DeviceOpt = Annotated[str | None, Opt(help="cpu (default) or cuda")]


@app.command()
@guarded
def predict(
    run_dir: RunDirArg,
    csv: Annotated[Path | None, Opt(help="new data (default for forecasts: the run's own "
                                    "series)")] = None,
    npy: Annotated[Path | None, Opt(help="classify: sequences as .npy")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="CSV file to write (default: "
                                       "stdout)")] = None,
    all_windows: Annotated[bool, Opt("--all-windows", help="forecast: one row per window, not "
                                     "only from the end of the data")] = False,
    device: DeviceOpt = None,
) -> None:
    """Forecasts (forecast runs) or classes (classify runs) for new data, as CSV."""
    from . import commands

    commands.predict(run_dir, csv, npy, output, all_windows, device)


@app.command()
@guarded
def evaluate(run_dir: RunDirArg, device: DeviceOpt = None) -> None:
    """Test metrics of a finished run, next to its baselines."""
    from . import commands

    commands.evaluate(run_dir, device)


@app.command()
@guarded
def summary(run_dir: RunDirArg) -> None:
    """The model's layer table, the run's settings and its final metrics."""
    from . import commands

    commands.summary(run_dir)


@app.command()
@guarded
def generate(
    run_dir: RunDirArg,
    prime: Annotated[str, Opt(help="text to start from")] = "def ",
    length: Annotated[int, Opt(min=0, help="characters to generate")] = 300,
    temperature: Annotated[float, Opt(min=0.0, help="sampling temperature; 0 = most likely "
                                      "character")] = 0.8,
    seed: Annotated[int | None, Opt(min=0, help="seed for repeatable samples")] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="file to write (default: "
                                       "stdout)")] = None,
    device: DeviceOpt = None,
) -> None:
    """Sample text from a character-level model (a run of --task text)."""
    from . import commands

    commands.generate(run_dir, prime, length, temperature, seed, output, device)


@app.command()
@guarded
def translate(
    run_dir: RunDirArg,
    texts: Annotated[list[str], typer.Argument(metavar="TEXT...", help="text(s) to translate")],
    beam: Annotated[int, Opt(min=1, help="beam search width (1 = greedy)")] = 1,
    device: DeviceOpt = None,
) -> None:
    """Translate text with a --task translate run (greedy, or beam search with --beam N).

    Each TEXT gets its line(s) on stdout; a TEXT that cannot be translated (a character the
    model never saw) gets an ``error:`` line on stderr naming it, the others are still
    translated, and the exit code is 1."""
    from ._common import load_trained, say
    from .tasks.translate import translate as run_translate

    _, _, model, preprocessing = load_trained(run_dir, device)
    failed = 0
    for number, item in enumerate(run_translate(model, preprocessing, list(texts), beam), 1):
        if item.warning:
            say(f"warning: input {number} ({item.source[:40]!r}): {item.warning}")
        if item.error:
            print(f"error: input {number} ({item.source[:40]!r}): {item.error}", file=sys.stderr)
            failed += 1
        for rank, (translation, score) in enumerate(item.results):
            shown = f"{item.source}\t{translation}"
            if score is not None:
                shown += f"\t{rank + 1}\t{score:.4f}"
            print(shown)
    if failed:
        raise typer.Exit(1)


@app.command()
@guarded
def diagnose(
    run_dir: Annotated[Path | None, typer.Argument(metavar="[RUN_DIR]", help="folder written "
                                                   "by rnnkit train")] = None,
    samples: Annotated[int, Opt(min=1, help="validation sequences to trace")] = 64,
    demo: Annotated[bool, Opt("--demo", help="instead: SimpleRNN vs GRU vs LSTM on the "
                              "adding problem, same budget")] = False,
    length: Annotated[int, Opt(min=2, help="--demo: steps per sequence")] = 50,
    epochs: Annotated[int, Opt(min=1, help="--demo: epochs per model")] = 12,
    out: Annotated[Path | None, Opt(help="--demo: folder for plots and tables (default "
                                    "diagnostics-demo)")] = None,
    device: DeviceOpt = None,
) -> None:
    """Gradient flow through time and state saturation of a trained run, as plots and a
    plain-language reading."""
    from . import diagnosis as command

    if demo:
        if run_dir is not None:
            raise ValueError("give either RUN_DIR or --demo, not both")
        command.demo(length, epochs, out)
    elif run_dir is None:
        raise ValueError("missing RUN_DIR (a folder written by rnnkit train), or pass --demo")
    else:
        command.diagnose(run_dir, samples, device)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@guarded
def bench(ctx: typer.Context) -> None:
    """Run the speed benchmark (python -m rnnkit.bench); extra arguments are passed to it."""
    from . import commands

    code = commands.bench(list(ctx.args))
    if isinstance(code, int) and code:
        raise typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: ``rnnkit = "rnnkit.cli:main"``."""
    app(args=argv, prog_name="rnnkit")
