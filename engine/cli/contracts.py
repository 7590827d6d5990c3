"""``chunkwise contracts``: the example dataset contracts that ship with chunkwise.

``chunkwise contracts show orders > orders.yaml`` writes the ``orders`` contract (for the data
``chunkwise gen orders`` makes) where a user can edit it and pass it to ``--contract``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from engine.cli.common import JsonFlag, print_json, run_job

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True,
                  help="The example dataset contracts that ship with chunkwise.")


@app.command("list")
def list_contracts(as_json: JsonFlag = False) -> None:
    """List the example contracts, with the dataset and format each describes."""

    def job() -> list[dict[str, str]]:
        from engine.contract import load_contract
        from engine.resources import contract_names, resource

        found = []
        for name in contract_names():
            contract = load_contract(str(resource(f"contracts/{name}.yaml")))
            found.append({"name": name, "dataset": contract.dataset,
                          "format": contract.format or "detected"})
        return found

    found = run_job(as_json, job)
    if as_json:
        print_json({"contracts": found})
        return
    for item in found:
        typer.echo(f"{item['name']:<12} dataset {item['dataset']}, format {item['format']}")


@app.command()
def show(name: Annotated[str, typer.Argument(help="A name from `chunkwise contracts list`.")]
         ) -> None:
    """Print the example contract NAME (YAML) on stdout: redirect it to a file to edit it."""

    def job() -> str:
        from engine.errors import UsageError
        from engine.resources import contract_names, contract_text

        names = contract_names()
        if name not in names:
            raise UsageError(f"no example contract {name!r}; there are: {', '.join(names)}")
        return contract_text(name)

    typer.echo(run_job(False, job), nl=False)
