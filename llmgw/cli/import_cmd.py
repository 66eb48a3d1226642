"""`llmgw import litellm FILE [--out F]`: turn another gateway's configuration into a profile.

Contract: the translation is :mod:`llmgw.tools.litellm_import`; this module reads the file (YAML, ``safe_load``
only), prints the profile (stdout) or writes it (``--out``, never over an existing file without ``--force``), and
prints what did not map to stderr. A file that cannot be read, is not YAML or is not a LiteLLM config is one error
line and exit 1; a profile that does not load with llmgw's own reader is reported as a bug, exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from ..tools.litellm_import import ImportBug, NotALiteLLMConfig, env_names, one_line, render, translate
from .common import err_console, fail, plural

app = typer.Typer(
    help="Import another gateway's configuration as a profile.\n\n"
         "Example: llmgw import litellm config.yaml --out llmgw.toml",
    no_args_is_help=True, rich_markup_mode=None)

MAX_CONFIG_BYTES = 16 * 1024 * 1024


def read_yaml(file: Path) -> Any:
    """The parsed YAML document, or exit 1 with one line naming the problem."""
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            fail(f"{file}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MB; not a LiteLLM config")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{file}: file not found")
    except IsADirectoryError:
        fail(f"{file}: is a directory, not a file")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror}")
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        fail(f"{file}: invalid YAML{where}: {exc.problem or exc.context or 'cannot parse'}")
    except yaml.YAMLError as exc:
        fail(f"{file}: invalid YAML: {' '.join(str(exc).split())}")


@app.command("litellm", short_help="Turn a LiteLLM proxy config (YAML) into a profile.")
def import_litellm(
    file: Path = typer.Argument(..., metavar="FILE", help="The LiteLLM proxy config.yaml."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="FILE",
                                    help="Write the profile here (default: print it)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Turn a LiteLLM proxy config into an llmgw profile: each model_name becomes an alias whose targets are its
    deployments (load-balanced), router_settings.fallbacks are appended to them, os.environ/NAME keys become
    env:NAME, and a literal key becomes env: of a suggested variable (never copied). What has no equivalent is
    listed on stderr, one line per setting.

    Example: llmgw import litellm config.yaml --out llmgw.toml
    """
    if out is not None and out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it")
    if out is not None and out.exists() and file.exists() and out.resolve() == file.resolve():
        fail(f"--out {out} is the LiteLLM config itself; write the profile to another file")
    data = read_yaml(file)
    try:
        profile, report = translate(data)
        text = render(profile, report, file.name)
    except NotALiteLLMConfig as exc:
        fail(f"{file}: {exc}")
    except ImportBug as exc:
        fail(f"{exc} (a bug in `llmgw import litellm`; please report it with the config, keys removed)")
    if report:
        err_console.print(f"not mapped as it was ({len(report)}):", markup=False, highlight=False)
        for line in report:
            err_console.print(f"  {one_line(line)}", markup=False, highlight=False, soft_wrap=True)
    if not profile["models"]:
        err_console.print("warning: no deployment could be imported; the profile has no model aliases",
                          markup=False, highlight=False)
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{out}: cannot write: {exc.strerror}")
    names = env_names(profile)
    needs = f"; it reads {', '.join(names)} from the environment" if names else ""
    err_console.print(one_line(f"wrote {out} ({plural(len(profile['models']), 'model alias', 'model aliases')})"
                               f"{needs}; next: llmgw check --profile {out}"),
                      markup=False, highlight=False, soft_wrap=True)
